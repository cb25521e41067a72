"""Tests of the Reverb actor-learner path.

tf_spo.reverb_replay and launch.distributed.
"""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import reverb
import tensorflow as tf
from tf_agents.trajectories import trajectory as trajectory_lib

from environments import registry
from tests import conftest
from tf_spo import experiment
from tf_spo import reverb_replay
from tf_spo.experiment import distributed as roles
from tf_spo.experiment import run as run_lib

# A tiny cube run: 2 gradient steps per 32 env steps, 128 train steps in all.
# The paper's search and M-step: the cube's cpu preset (message passing, roots
# without replacement, eta solved, a 16 x 4 evaluation search) made this
# multi-process test 1.6x slower on 2 cores.
TINY_FLAGS = ('--preset=paper', '--torso_units=32', '--head_units=32',
              '--num_residual_blocks=1',
              '--num_envs=8', '--rollout_length=4', '--batch_size=8',
              '--num_epochs=2', '--num_particles=4', '--depth=2',
              '--resample_period=2', '--sequence_length=5',
              '--replay_capacity=2048', '--total_env_steps=2048',
              '--eval_interval=2048', '--eval_episodes=8',
              '--checkpoint_interval=512', '--log_interval=512',
              '--envs_per_item=4')


def _step_spec():
  return trajectory_lib.Trajectory(
      step_type=tf.TensorSpec([], tf.int32),
      observation=tf.TensorSpec([2], tf.float32),
      action=tf.TensorSpec([], tf.int32),
      policy_info=(),
      next_step_type=tf.TensorSpec([], tf.int32),
      reward=tf.TensorSpec([], tf.float32),
      discount=tf.TensorSpec([], tf.float32))


def _batched_step(t, num_envs):
  """Step t of every env, with values that name the env and the step."""
  env = np.arange(num_envs)
  return trajectory_lib.Trajectory(
      step_type=np.full(num_envs, t % 3, np.int32),
      observation=np.stack([env, np.full(num_envs, t)], -1).astype(np.float32),
      action=(10 * env + t).astype(np.int32),
      policy_info=(),
      next_step_type=np.full(num_envs, (t + 1) % 3, np.int32),
      reward=np.full(num_envs, t, np.float32),
      discount=np.ones(num_envs, np.float32))


def _written_windows(length, num_envs, envs_per_item, steps):
  """An in-process server holding the observer's items of `steps` steps."""
  signature = reverb_replay.item_spec(_step_spec(), length, envs_per_item)
  server = reverb.Server([
      reverb.Table(reverb_replay.EXPERIENCE_TABLE, reverb.selectors.Fifo(),
                   reverb.selectors.Fifo(), 1000,
                   reverb.rate_limiters.MinSize(1), max_times_sampled=1,
                   signature=signature)])
  client = reverb.Client(f'localhost:{server.port}')
  observer = reverb_replay.SequenceObserver(
      client, reverb_replay.EXPERIENCE_TABLE, length, num_envs,
      envs_per_item=envs_per_item)
  for t in range(steps):
    observer(_batched_step(t, num_envs))
  observer.flush()
  observer.close()
  return server, client


@pytest.mark.parametrize('envs_per_item', [1, 2])
def test_sequence_observer_writes_every_window_of_each_env(envs_per_item):
  """Env i's stream gives the windows t..t+T-1, across episode boundaries."""
  length, num_envs, steps = 3, 4, 6
  server, client = _written_windows(length, num_envs, envs_per_item, steps)
  groups = num_envs // envs_per_item
  items = client.server_info()[reverb_replay.EXPERIENCE_TABLE].current_size
  assert items == groups * (steps - length + 1)
  windows = []
  for sample in client.sample(reverb_replay.EXPERIENCE_TABLE,
                              num_samples=items, emit_timesteps=False,
                              unpack_as_table_signature=True):
    action = sample.data.action
    assert action.shape == (length, envs_per_item)
    windows += [tuple(action[:, j]) for j in range(envs_per_item)]
  # Each group's writer streams on its own: compare regardless of order.
  expected = [tuple(10 * env + np.arange(t - length + 1, t + 1))
              for t in range(length - 1, steps) for env in range(num_envs)]
  assert sorted(windows) == sorted(expected)
  server.stop()


def test_experience_dataset_splits_items_into_env_sequences():
  """[items, T, G] items become [batch, T] windows of one env each."""
  length, num_envs, envs_per_item = 3, 4, 2
  server, _ = _written_windows(length, num_envs, envs_per_item, steps=5)
  dataset = reverb_replay.experience_dataset(
      _step_spec(), f'localhost:{server.port}', batch_size=4,
      sequence_length=length, envs_per_item=envs_per_item)
  trajectory, _ = next(iter(dataset))
  assert trajectory.observation.shape == (4, length, 2)
  for row, action in zip(trajectory.observation.numpy(),
                         trajectory.action.numpy()):
    env, start = int(row[0, 0]), int(row[0, 1])
    np.testing.assert_array_equal(row[:, 0], env)
    np.testing.assert_array_equal(row[:, 1], start + np.arange(length))
    np.testing.assert_array_equal(action, 10 * env + row[:, 1])
  with pytest.raises(ValueError, match='batch_size=3'):
    reverb_replay.experience_dataset(
        _step_spec(), f'localhost:{server.port}', batch_size=3,
        sequence_length=length, envs_per_item=envs_per_item)
  server.stop()


def test_sequence_observer_rejects_a_wrong_batch():
  server = reverb.Server([reverb.Table.queue('q', 10)])
  client = reverb.Client(f'localhost:{server.port}')
  with pytest.raises(ValueError, match='sequence_length'):
    reverb_replay.SequenceObserver(client, 'q', 0, 2)
  with pytest.raises(ValueError, match='envs_per_item=2 must divide'):
    reverb_replay.SequenceObserver(client, 'q', 2, 3, envs_per_item=2)
  observer = reverb_replay.SequenceObserver(client, 'q', 2, 3)
  with pytest.raises(ValueError, match='batch 3'):
    observer(_batched_step(0, 2))
  server.stop()


def test_schedule_keeps_the_single_process_ratio():
  settings = experiment.resolve_settings('rubiks_cube', 'cpu', {})
  schedule = roles.Schedule(settings)
  per_iteration = settings['num_envs'] * settings['rollout_length']
  assert schedule.train_steps(10 * per_iteration) == (
      10 * settings['num_epochs'])
  assert schedule.env_steps(10 * settings['num_epochs']) == 10 * per_iteration
  assert schedule.samples_per_insert == pytest.approx(
      settings['num_epochs'] * settings['batch_size'] / per_iteration)


def test_actors_get_distinct_seeds_and_experience():
  """Two actors of a run, and actors of two runs, never share a seed."""
  settings = experiment.resolve_settings('rubiks_cube', 'cpu', {})
  seeds = {roles.actor_seed(dict(settings, seed=seed), actor_id)
           for seed in range(3) for actor_id in range(100)}
  assert len(seeds) == 300
  model = experiment.make_model(settings)
  first = [
      registry.entry('rubiks_cube').make_py_env(
          model, 4, roles.actor_seed(settings, k)).reset().observation
      for k in range(2)]
  assert not np.array_equal(first[0], first[1])


def _wait_for(predicate, timeout_s, what):
  deadline = time.time() + timeout_s
  while not predicate():
    if time.time() > deadline:
      raise AssertionError(f'timed out waiting for {what}')
    time.sleep(0.5)


def _read(path):
  with open(path) as f:
    return f.read()


@pytest.mark.slow
def test_loopback_run_survives_killed_actor_and_learner(tmp_path):
  """2 actors train, export and stop; SIGKILLed actor and learner rejoin.

  The learner trains on a 2-replica MirroredStrategy (2 logical CPUs),
  before and after its restart from the checkpoint.
  """
  root = str(tmp_path / 'run')
  launcher = subprocess.Popen(
      [sys.executable, '-m', 'launch.distributed', f'--root_dir={root}',
       '--num_actors=2', '--strategy=mirrored', '--num_replicas=2',
       *TINY_FLAGS],
      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
      cwd=conftest.REPO_ROOT)
  logs = os.path.join(root, 'logs')
  checkpoints = os.path.join(root, 'learner', 'train', 'checkpoints')
  try:
    _wait_for(lambda: tf.train.latest_checkpoint(checkpoints) is not None,
              300, 'a learner checkpoint')
    with open(os.path.join(logs, 'pids.json')) as f:
      pids = json.load(f)
    os.kill(pids['actor_0'], signal.SIGKILL)
    # The learner keeps training on actor 1's data meanwhile.
    before = tf.train.latest_checkpoint(checkpoints)
    _wait_for(lambda: tf.train.latest_checkpoint(checkpoints) != before,
              300, 'a newer learner checkpoint after the actor was killed')
    os.kill(pids['learner'], signal.SIGKILL)
    output, _ = launcher.communicate(timeout=600)
  finally:
    if launcher.poll() is None:
      launcher.kill()
  assert launcher.returncode == 0, output
  assert 'actor_0 exited with code -9; restarting it' in output
  assert 'learner exited with code -9; restarting it' in output
  assert _read(os.path.join(logs, 'actor_0.log')).count(
      '[actor 0] collecting, seed 1') == 2
  learner_log = _read(os.path.join(logs, 'learner.log'))
  assert ('[learner] starting at train step 0 of 128 on 2 replicas'
          in learner_log)
  resumed = [line for line in learner_log.splitlines()
             if line.startswith('[learner] resumed at train step')]
  assert len(resumed) == 1 and int(resumed[0].split()[5]) > 0
  assert resumed[0].endswith('of 128 on 2 replicas')
  with open(os.path.join(root, 'summary.json')) as f:
    summary = json.load(f)
  # The same keys as launch.train's summary, and the collection's counters.
  assert summary['train_steps'] == 128 and summary['env_steps'] == 2048
  assert 0 <= summary['search_solve_rate'] <= 1
  assert 0 <= summary['network_solve_rate'] <= 1
  assert set(summary['by_eval_scramble']) == {'3', '7'}
  assert summary['distributed']['collected_env_steps'] > 0
  for kind in ('search', 'network'):
    assert tf.saved_model.contains_saved_model(
        os.path.join(root, 'policy', kind))
  rows = _read(os.path.join(root, 'eval.csv')).splitlines()
  assert rows[-1].split(',')[2] == '128'
  # A restarted replay server (here in this process) reloads the tables
  # checkpointed at the end.
  settings = run_lib.read_settings(root)
  server = roles.make_replay_server(settings, root, None,
                                    roles.envs_per_item(settings, 4))
  try:
    info = reverb.Client(f'localhost:{server.port}').server_info()
    # 128 train steps of 8 sequences at 0.5 sequences per env step need
    # about 2,000 env steps; the table keeps up to its capacity of 2,048
    # env steps, 4 per item.
    items = info[reverb_replay.EXPERIENCE_TABLE].current_size
    assert 1_750 < 4 * items <= 2_048
    assert info[reverb_replay.VARIABLE_TABLE].current_size == 1
  finally:
    server.stop()


def test_cli_reports_bad_distributed_flags(tmp_path):
  # A process of its own: the mirrored strategy configures the CPU devices
  # before TensorFlow starts.
  result = conftest.run_module(
      'launch.distributed', f'--root_dir={tmp_path}', '--role=learner',
      '--replay_server_address=localhost:1', '--strategy=mirrored',
      '--num_replicas=2', '--batch_size=8', '--envs_per_item=8')
  assert result.returncode != 0
  assert ("--envs_per_item must divide each replica's batch, batch_size / "
          'num_replicas = 4, got 8.') in result.stderr
  assert 'Traceback' not in result.stderr
  assert not os.listdir(tmp_path)


def test_cli_refuses_on_policy_ppo(tmp_path):
  result = conftest.run_cli(
      'launch.distributed', f'--root_dir={tmp_path}', '--role=learner',
      '--replay_server_address=localhost:1', '--algorithm=ppo')
  assert result.returncode != 0
  assert '--algorithm=ppo trains on-policy' in result.stderr
  assert 'Traceback' not in result.stderr
  assert not os.listdir(tmp_path)


def test_a_second_learner_or_evaluator_on_a_run_is_refused(tmp_path):
  """The learner holds the run's writer lock, the evaluator eval.csv's."""
  root_dir = str(tmp_path)
  settings = dict(experiment.DEFAULTS)
  for lock_file, role in ((run_lib.LOCK_FILE, roles.learner),
                          (run_lib.EVAL_LOCK_FILE, roles.evaluator)):
    args = (settings, root_dir, 'localhost:1') + (
        (4,) if role is roles.learner else ())
    with run_lib.locked(root_dir, lock_file), pytest.raises(
        experiment.RunInUseError,
        match=f'root_dir={root_dir} is in use by process {os.getpid()} '):
      role(*args)
