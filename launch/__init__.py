"""Command-line entry points: train, evaluate, export, benchmark."""
