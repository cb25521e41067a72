"""Shared fixtures and set-up of the test session.

A tiny end-to-end training run and a 2-replica MirroredStrategy used by
several tests, the session's 2 logical CPU devices, and the pytest-xdist
groups that keep the tests sharing a fixture on one worker.
"""

import collections
import contextlib
import importlib
import io
import json
import os
import subprocess
import sys

from absl import app
from absl import flags
import pytest
import tensorflow as tf

from tf_spo import experiment

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

# Two logical CPU devices for the MirroredStrategy tests, set before any test
# runs a TensorFlow op (a process can't change its devices afterwards). Ops
# without a strategy still run on the first.
tf.config.set_logical_device_configuration(
    tf.config.list_physical_devices('CPU')[0],
    [tf.config.LogicalDeviceConfiguration()] * 2)

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A run small enough for the test suite: a few seconds of training, of any
# task (TINY_ANY_TASK_FLAGS) or of the cube (TINY_FLAGS).
TINY_ANY_TASK_FLAGS = (
    '--total_env_steps=1024', '--num_envs=16', '--rollout_length=8',
    '--sequence_length=4', '--batch_size=8', '--num_epochs=2',
    '--eval_episodes=16', '--eval_interval=512', '--checkpoint_interval=512',
    '--log_interval=512', '--torso_units=32', '--head_units=32',
    '--num_residual_blocks=1', '--num_particles=4', '--depth=2',
    '--resample_period=1')
TINY_FLAGS = TINY_ANY_TASK_FLAGS + (
    '--min_scramble=1', '--max_scramble=2', '--eval_scramble=3',
    # The cube's preset evaluates with a 16 x 4 search; tiny runs with
    # their own 4 x 2 one.
    '--eval_num_particles=0', '--eval_depth=0', '--eval_resample_period=0')


def tiny_settings(**overrides):
  """Settings of `TINY_FLAGS` on the defaults, with `overrides`."""
  settings = dict(experiment.DEFAULTS)
  for flag in TINY_FLAGS:
    name, value = flag[2:].split('=')
    settings[name] = type(experiment.DEFAULTS[name])(value)
  settings.update(overrides)
  return settings


CliResult = collections.namedtuple('CliResult', 'returncode stdout stderr')


def run_cli(module, *args):
  """Runs `python -m module args` in this process.

  The binary's `run()` defines its flags, parses `args` and calls its main;
  the flags it defined are removed afterwards, so binaries run one after
  another. Exits are returned as a process's would be: `SystemExit` with a
  message prints it on stderr and returns 1.
  """
  stdout, stderr = io.StringIO(), io.StringIO()
  argv = sys.argv
  sys.argv = [module.replace('.', '/') + '.py', *args]
  returncode = 0
  try:
    with temporary_flags(), contextlib.redirect_stdout(stdout), \
        contextlib.redirect_stderr(stderr):
      try:
        importlib.import_module(module).run()
      except SystemExit as exit_:
        if isinstance(exit_.code, str):
          print(exit_.code, file=sys.stderr)
          returncode = 1
        else:
          returncode = exit_.code or 0
  finally:
    sys.argv = argv
  return CliResult(returncode, stdout.getvalue(), stderr.getvalue())


@contextlib.contextmanager
def temporary_flags():
  """Flags defined inside the block are removed, and parsing undone, after."""
  app.define_help_flags()
  before = set(flags.FLAGS)
  try:
    yield flags.FLAGS
  finally:
    for name in set(flags.FLAGS) - before:
      delattr(flags.FLAGS, name)
    flags.FLAGS.unparse_flags()


def run_module(module, *args, timeout=600):
  """Runs `python -m module args` from the repo root; returns the result."""
  return subprocess.run(
      [sys.executable, '-m', module, *args], cwd=REPO_ROOT,
      capture_output=True, text=True, timeout=timeout,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2'))


@pytest.fixture(scope='session')
def two_cpu_strategy():
  """A MirroredStrategy over the session's 2 logical CPUs, built once."""
  return experiment.make_strategy(
      tiny_settings(strategy='mirrored', num_replicas=2))


@pytest.fixture(scope='session')
def tiny_run(tmp_path_factory):
  """Root dir and summary of a finished tiny `launch.train` run."""
  root_dir = str(tmp_path_factory.mktemp('tiny_run'))
  result = run_module('launch.train', f'--root_dir={root_dir}', *TINY_FLAGS)
  assert result.returncode == 0, result.stderr[-3000:]
  with open(os.path.join(root_dir, 'summary.json')) as f:
    summary = json.load(f)
  return root_dir, summary, result.stdout


@pytest.hookimpl(tryfirst=True)  # Before xdist reads the groups.
def pytest_collection_modifyitems(items):
  """Keeps the tests sharing a fixture of ours on one pytest-xdist worker.

  `python -m pytest tests` runs on 2 workers (setup.cfg: `-n 2 --dist
  loadgroup`). A test that uses one of our session fixtures (the tiny run)
  or module fixtures (a module's trained runs) joins that fixture's group, so
  that each is built once, on the worker that runs its group.
  """
  for item in items:
    groups = sorted(
        name if definitions[-1].scope == 'session' else item.module.__name__
        for name, definitions in item._fixtureinfo.name2fixturedefs.items()  # pylint: disable=protected-access
        if definitions[-1].scope in ('session', 'module')
        and definitions[-1].func.__module__.startswith('tests.'))
    if groups:
      item.add_marker(pytest.mark.xdist_group(groups[0]))
