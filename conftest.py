"""Pytest configuration: quieter TensorFlow logs for the test suite."""

import os

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
