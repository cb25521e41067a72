"""A run directory under faults (tf_spo/experiment/run.py, checkpoints.py).

Damaged checkpoints, a garbage state file, reruns, two writers, readers and
the leftovers of interrupted saves.
"""

import glob
import hashlib
import os
import shutil

import pytest
import tensorflow as tf

from tests.support.checkpoints import assert_same_checkpoint
from tests.support.checkpoints import checkpoint_tensors
from tf_spo import experiment
from tf_spo.experiment import run as run_lib


@pytest.fixture
def finished_run(tiny_run, tmp_path):
  """A copy of the session's finished tiny run (ckpt-512, ckpt-1024)."""
  root_dir = str(tmp_path / 'run')
  shutil.copytree(tiny_run[0], root_dir)
  return root_dir, checkpoint_tensors(tiny_run[0])


def eval_steps(root_dir):
  with open(os.path.join(root_dir, 'eval.csv')) as f:
    return [int(line.split(',')[0]) for line in f.read().splitlines()[1:]]


def snapshot(root_dir):
  """Every file under `root_dir` with its size, mtime and content hash."""
  files = {}
  for directory, _, names in os.walk(root_dir):
    for name in names:
      path = os.path.join(directory, name)
      with open(path, 'rb') as f:
        digest = hashlib.sha256(f.read()).hexdigest()
      files[path] = (os.path.getsize(path), os.path.getmtime(path), digest)
  return files


def newest_data_file(root_dir):
  latest = tf.train.latest_checkpoint(os.path.join(root_dir, 'checkpoints'))
  assert latest.endswith('ckpt-1024')
  [data] = glob.glob(latest + '.data-*')
  return latest, data


def truncate(data):
  """What an interrupted copy or a full disk leaves."""
  with open(data, 'r+b') as f:
    f.truncate(os.path.getsize(data) // 2)


def flip_bytes(data):
  """Flipped bytes in the middle of the values."""
  with open(data, 'r+b') as f:
    f.seek(os.path.getsize(data) // 2)
    chunk = f.read(64)
    f.seek(os.path.getsize(data) // 2)
    f.write(bytes(b ^ 0xFF for b in chunk))


@pytest.mark.parametrize('damage, error', [
    (truncate, 'IndexError: Read less bytes than requested'),
    (flip_bytes, 'Checksum does not match'),
])
def test_damaged_newest_checkpoint_resumes_from_the_previous(
    finished_run, capsys, damage, error):
  root_dir, expected = finished_run
  latest, data = newest_data_file(root_dir)
  damage(data)
  # Redoes 512 -> 1024.
  experiment.train(experiment.read_settings(root_dir), root_dir)
  stdout = capsys.readouterr().out
  [line] = [line for line in stdout.splitlines()
            if line.startswith('[checkpoint]')]
  assert line.startswith(f'[checkpoint] {latest} is unreadable (')
  assert error in line and len(line) < 400
  assert 'resumed from' in stdout and 'ckpt-512 at env_steps=512' in stdout
  assert os.path.exists(data + '.unreadable')
  assert_same_checkpoint(root_dir, expected)
  assert eval_steps(root_dir) == [0, 512, 1024]


def test_garbage_state_file_uses_the_checkpoints_present(finished_run,
                                                         capsys):
  root_dir, expected = finished_run
  state = os.path.join(root_dir, 'checkpoints', 'checkpoint')
  with open(state, 'wb') as f:
    f.write(b'\x00\xffnot a checkpoint state')
  summary = experiment.train(experiment.read_settings(root_dir), root_dir)
  stdout = capsys.readouterr().out
  assert (f'[checkpoint] {state} is unreadable; using the checkpoints '
          'present: ckpt-512, ckpt-1024.') in stdout
  assert 'resumed from' in stdout and 'at env_steps=1024' in stdout
  assert summary['env_steps'] == 1024
  assert_same_checkpoint(root_dir, expected)
  # A finished run run again adds no eval.csv row.
  assert eval_steps(root_dir) == [0, 512, 1024]


def test_second_writer_is_refused_naming_the_holder(finished_run):
  root_dir, _ = finished_run
  with run_lib.locked(root_dir), pytest.raises(experiment.RunInUseError,
                     match=f'root_dir={root_dir} is in use by process '
                     f'{os.getpid()} '):
    experiment.train(experiment.read_settings(root_dir), root_dir)
  # Released with its holder.
  experiment.train(experiment.read_settings(root_dir), root_dir)
  assert eval_steps(root_dir) == [0, 512, 1024]


def test_readers_change_nothing_in_the_run_dir(finished_run, tmp_path):
  root_dir, expected = finished_run
  before = snapshot(root_dir)
  run = experiment.restore_run(root_dir)
  assert run.checkpointer is None
  experiment.export_policies(run.agent, run.model, str(tmp_path / 'export'),
                             run.settings['env'])
  assert snapshot(root_dir) == before
  # Even with a damaged newest checkpoint, which it reads around.
  _, data = newest_data_file(root_dir)
  truncate(data)
  before = snapshot(root_dir)
  run = experiment.restore_run(root_dir)
  assert int(run.env_steps.numpy()) == 512
  assert snapshot(root_dir) == before
  del expected


def test_leftovers_of_interrupted_saves_are_removed(finished_run):
  root_dir, expected = finished_run
  directory = os.path.join(root_dir, 'checkpoints')
  # An older checkpoint the state file no longer lists, one newer than it
  # (killed before the state file was written), and a save's temp dir.
  for number in (256, 2048):
    for path in glob.glob(os.path.join(directory, 'ckpt-512.*')):
      shutil.copy(path, path.replace('ckpt-512', f'ckpt-{number}'))
  os.makedirs(os.path.join(directory, 'ckpt-2048_temp', 'part-00000'))
  experiment.train(experiment.read_settings(root_dir), root_dir)
  assert sorted(os.listdir(directory)) == sorted(
      ['checkpoint'] + [os.path.basename(p) for p in
                        glob.glob(os.path.join(directory, 'ckpt-512.*')) +
                        glob.glob(os.path.join(directory, 'ckpt-1024.*'))])
  assert_same_checkpoint(root_dir, expected)


def test_a_relative_root_dir_reads_and_repairs_the_same_checkpoints(
    finished_run, monkeypatch):
  root_dir, expected = finished_run
  monkeypatch.chdir(os.path.dirname(root_dir))
  relative = os.path.basename(root_dir)
  assert int(experiment.restore_run(relative).env_steps.numpy()) == 1024
  summary = experiment.train(experiment.read_settings(relative), relative)
  assert summary['env_steps'] == 1024  # Nothing retrained.
  assert_same_checkpoint(root_dir, expected)
  assert sorted(os.listdir(os.path.join(relative, 'checkpoints'))) == sorted(
      ['checkpoint'] + [os.path.basename(p) for p in glob.glob(
          os.path.join(root_dir, 'checkpoints', 'ckpt-*'))])
  assert eval_steps(root_dir) == [0, 512, 1024]
