"""Helpers shared by the tests; no tests here.

Builders of agents, run directories and checkpoints comparisons, reference
data writers, and modules run in processes of their own.
"""
