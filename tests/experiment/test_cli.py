"""Tests for launch.cli.run: what an operator reads from every binary."""

import os

from absl import app
import pytest

from launch import cli
from tests import conftest
from tf_spo import experiment

BINARIES = sorted(
    'launch.' + name[:-3] for name in os.listdir(
        os.path.join(conftest.REPO_ROOT, 'launch'))
    if name.endswith('.py') and name not in ('__init__.py', 'cli.py'))


@pytest.mark.parametrize('binary', BINARIES)
def test_help_exits_0_with_the_docstring_and_the_binarys_flags(binary):
  result = conftest.run_cli(binary, '--help')
  assert result.returncode == 0, result.stderr
  doc, flags_text = result.stdout.split('\nflags:\n')
  first_line = doc.strip().splitlines()[0]
  module = __import__(binary, fromlist=['run'])
  assert first_line == module.__doc__.strip().splitlines()[0]
  assert '--[no]verbose' in flags_text
  # Only the binary's own flags: none of TensorFlow's or absl's.
  assert 'logtostderr' not in flags_text
  assert result.stderr == ''


def test_help_prints_the_docstring_as_written():
  """absl's help %-formats the docstring: '95% s' became the program path."""
  result = conftest.run_cli('launch.report', '-h')
  assert result.returncode == 0
  assert '95% stratified bootstrap' in result.stdout


def test_helpfull_lists_every_librarys_flags_and_exits_0():
  result = conftest.run_cli('launch.export', '--helpfull')
  assert result.returncode == 0
  assert '--[no]logtostderr' in result.stdout and '--root_dir' in result.stdout


def test_an_unexpected_error_is_one_line_with_its_traceback_in_a_file(
    tmp_path):
  """A root_dir under a regular file: an OSError, not a flag check."""
  (tmp_path / 'file').write_text('')
  root_dir = tmp_path / 'file' / 'run'
  result = conftest.run_cli('launch.train', f'--root_dir={root_dir}',
                            '--total_env_steps=512')
  assert result.returncode == 1
  [line] = result.stderr.splitlines()
  prefix = 'error: NotADirectoryError: [Errno 20] Not a directory: '
  assert line.startswith(prefix), line
  assert line.endswith('; --verbose prints it)')
  path = line.split('(traceback in ')[1].split(';')[0]
  with open(path) as f:
    assert 'Traceback (most recent call last)' in f.read()
  os.remove(path)
  with pytest.raises(NotADirectoryError):
    conftest.run_cli('launch.train', f'--root_dir={root_dir}',
                     '--total_env_steps=512', '--verbose')


def test_a_full_disk_is_one_line(tmp_path, monkeypatch):
  """ENOSPC where the run writes: one line, even with no room for a file."""
  def full_disk(*args, **kwargs):
    raise OSError(28, 'No space left on device')

  monkeypatch.setattr(experiment, 'train', full_disk)
  monkeypatch.setattr('tempfile.NamedTemporaryFile', full_disk)
  result = conftest.run_cli('launch.train', f'--root_dir={tmp_path}',
                            '--total_env_steps=512')
  assert result.returncode == 1
  assert result.stderr == (
      'error: OSError: [Errno 28] No space left on device\n')


def test_flag_errors_word_a_value_error_as_a_usage_error():
  with conftest.temporary_flags():
    cli.define_setting_flags()
    with pytest.raises(app.UsageError) as error, cli.flag_errors(
        prefix='--variant a: '):
      raise ValueError('time_limit must be >= 1, got 0.')
    assert str(error.value) == (
        '--variant a: --time_limit must be >= 1, got 0.')
    # Other errors are not flag errors: they pass through as they are.
    with pytest.raises(KeyError), cli.flag_errors():
      raise KeyError('time_limit')
