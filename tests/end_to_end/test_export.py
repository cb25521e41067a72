"""The exported SavedModels (launch/export.py) load and act without tf-spo."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from tf_agents.trajectories import time_step as ts

from environments import pendulum
from environments import rubiks_cube
from tests import conftest
from tf_spo import experiment

# Runs in a fresh interpreter that imports TensorFlow only: loads each
# SavedModel of the JSON list of [SavedModel, .npz] pairs and acts on its
# observation. The .npz holds the observation's tensors keyed by their input
# names in the signature.
LOAD_AND_ACT = r"""
import json, sys
import numpy as np
import tensorflow as tf
actions = []
for saved_model, observation_path in json.loads(sys.argv[1]):
  observation = dict(np.load(observation_path))
  policy = tf.saved_model.load(saved_model)
  n = next(iter(observation.values())).shape[0]
  outputs = policy.signatures['action'](
      **{'0/step_type': tf.zeros([n], tf.int32),
         '0/reward': tf.zeros([n], tf.float32),
         '0/discount': tf.ones([n], tf.float32)},
      **{name: tf.constant(value) for name, value in observation.items()})
  actions.append(outputs['action'].numpy().tolist())
project = [m for m in sys.modules if m.split('.')[0] in
           ('tf_spo', 'environments', 'launch', 'tf_agents')]
print(json.dumps({'actions': actions, 'project_modules': project}))
"""


def save_observation(path, observation):
  """Saves an observation nest keyed by its signature input names."""
  def named(prefix, nest):
    if isinstance(nest, tuple) and hasattr(nest, '_fields'):
      nest = nest._asdict()
    if isinstance(nest, dict):
      return {k: v for key, value in nest.items()
              for k, v in named(f'{prefix}/{key}', value).items()}
    return {prefix: np.asarray(nest)}
  np.savez(path, **named('0/observation', observation))


def cube_observations(path, batch=12):
  cube = rubiks_cube.RubiksCube(1, 7)
  observation = cube.observe(cube.reset(batch, tf.constant([99, 0]))).numpy()
  save_observation(path, observation)
  return observation


def load_and_act(*pairs):
  """Actions of each (SavedModel, observation .npz) pair, in one new process.

  Asserts that the process imported no module of tf-spo or TF-Agents.
  """
  result = subprocess.run(
      [sys.executable, '-c', LOAD_AND_ACT, json.dumps(pairs)],
      cwd='/', capture_output=True, text=True, timeout=300,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', PYTHONPATH=''))
  assert result.returncode == 0, result.stderr[-3000:]
  output = json.loads(result.stdout.strip().splitlines()[-1])
  assert output['project_modules'] == []
  return output['actions']


def test_saved_models_act_in_a_fresh_process(tiny_run, tmp_path):
  root_dir, summary, _ = tiny_run
  observation_path = str(tmp_path / 'observation.npz')
  observation = cube_observations(observation_path)

  search, again, network = load_and_act(
      *((summary['saved_models'][kind], observation_path)
        for kind in ('search', 'search', 'network')))
  for actions in (search, again, network):
    assert len(actions) == 12
    assert all(0 <= a < 18 for a in actions)
  # The search policy's random stream is part of the SavedModel: every load
  # acts the same, and as the checkpointed policy does.
  assert search == again
  run = experiment.restore_run(root_dir)
  time_step = ts.restart(tf.constant(observation), 12)
  np.testing.assert_array_equal(run.agent.policy.action(time_step).action,
                                search)
  output, _ = run.agent._network(observation)  # pylint: disable=protected-access
  np.testing.assert_array_equal(np.argmax(output.policy.numpy(), -1),
                                network)


def test_trt_smc_run_compiles_and_exports(tmp_path):
  """All TRT-SMC switches on: trains, exports and acts in a fresh process."""
  root_dir = tmp_path / 'trt'
  result = conftest.run_cli('launch.train', f'--root_dir={root_dir}',
                            '--preset=trt_smc', *conftest.TINY_FLAGS)
  assert result.returncode == 0, result.stderr[-3000:]
  with open(root_dir / 'config.json') as f:
    settings = json.load(f)
  assert settings['proposal_alpha'] == 0.1
  assert settings['policy_inference'] == 'message_passing'
  assert settings['revived_resampling'] and settings['search_value_weight']
  observation_path = str(tmp_path / 'observation.npz')
  cube_observations(observation_path)
  [actions] = load_and_act((str(root_dir / 'policy' / 'search'),
                            observation_path))
  assert all(0 <= a < 18 for a in actions)


def test_gumbel_run_trains_and_exports_its_search(tmp_path):
  """--algorithm=gumbel: same loop, M-step and export, no temperature."""
  root_dir = tmp_path / 'gumbel'
  result = conftest.run_cli(
      'launch.train', f'--root_dir={root_dir}', '--algorithm=gumbel',
      '--num_simulations=8', '--max_num_considered_actions=4',
      *conftest.TINY_FLAGS)
  assert result.returncode == 0, result.stderr[-3000:]
  run = experiment.restore_run(str(root_dir))
  assert run.agent.train_step_counter.numpy() > 0
  # Gumbel MuZero has no eta: its dual is never trained.
  assert run.agent.eta.numpy() == pytest.approx(run.settings['initial_eta'])
  info = run.replay_buffer.gather_all().policy_info
  assert sorted(info) == ['search_policy', 'search_value', 'visit_entropy']
  np.testing.assert_allclose(info['search_policy'].numpy().sum(-1), 1.0,
                             rtol=1e-5)
  # The evaluation search has no noise: the SavedModel in a fresh process
  # acts as the restored policy does.
  observation_path = str(tmp_path / 'observation.npz')
  observation = cube_observations(observation_path)
  [exported] = load_and_act((str(root_dir / 'policy' / 'search'),
                             observation_path))
  time_step = ts.restart(tf.constant(observation), 12)
  np.testing.assert_array_equal(run.agent.policy.action(time_step).action,
                                exported)


def test_export_cli_writes_both_policies(tiny_run, tmp_path):
  root_dir, _, _ = tiny_run
  result = conftest.run_cli('launch.export', f'--root_dir={root_dir}',
                            f'--output_dir={tmp_path}')
  assert result.returncode == 0, result.stderr[-3000:]
  for kind in ('search', 'network'):
    assert os.path.exists(tmp_path / kind / 'saved_model.pb')
  assert 'exported train step' in result.stdout


def _error_lines(stderr):
  """The lines our entry points print on a bad path flag (libraries' aside)."""
  return [line for line in stderr.splitlines() if line.startswith('error: ')]


def test_export_cli_rejects_a_dir_without_a_run(tmp_path):
  result = conftest.run_cli('launch.export', f'--root_dir={tmp_path}')
  assert result.returncode == 1
  assert 'Traceback' not in result.stderr
  assert _error_lines(result.stderr) == [
      f'error: --root_dir {tmp_path} has no config.json: is it the root_dir '
      'of a launch.train run?']


@pytest.mark.parametrize('flag, path, reason', [
    ('root_dir', 'missing', 'is not a directory.'),
    ('root_dir', 'run_without_checkpoint', 'has no checkpoint'),
    ('saved_model', 'missing', 'does not exist.'),
    ('saved_model', 'run_without_checkpoint', 'is not a SavedModel directory'),
])
def test_evaluate_cli_names_the_bad_path_flag_in_one_line(tmp_path, flag, path,
                                                          reason):
  run_dir = tmp_path / 'run_without_checkpoint'
  experiment.write_settings(str(run_dir), dict(experiment.DEFAULTS))
  result = conftest.run_cli('launch.evaluate',
                            f'--{flag}={tmp_path / path}')
  assert result.returncode == 1
  assert 'Traceback' not in result.stderr
  [line] = _error_lines(result.stderr)
  assert line.startswith(f'error: --{flag} {tmp_path / path} {reason}'), line


def test_pendulum_run_exports_continuous_policies(tmp_path):
  """Continuous SPO trains, and both SavedModels act in bounds elsewhere."""
  root_dir = tmp_path / 'pendulum'
  result = conftest.run_cli(
      'launch.train', '--env=pendulum', f'--root_dir={root_dir}',
      *conftest.TINY_ANY_TASK_FLAGS, '--time_limit=16')
  assert result.returncode == 0, result.stderr[-3000:]
  with open(root_dir / 'summary.json') as f:
    summary = json.load(f)
  assert summary['env'] == 'pendulum' and summary['env_steps'] == 1024
  assert -16 * 16.3 <= summary['search_mean_return'] <= 0
  assert 'search_solve_rate' not in summary

  model = pendulum.Pendulum(time_limit=16)
  observation = model.observe(model.reset(6, tf.constant([3, 0])))
  path = str(tmp_path / 'observation.npz')
  save_observation(path, observation)
  network_path = str(tmp_path / 'network_input.npz')
  save_observation(network_path, observation.network_input)
  search, network = load_and_act(
      (summary['saved_models']['search'], path),
      (summary['saved_models']['network'], network_path))
  for acted in (search, network):
    actions = np.array(acted)
    assert actions.shape == (6, 1) and actions.dtype == np.float64
    assert np.all(np.abs(actions) <= 2.0)
  # The exported greedy search acts as the checkpointed one.
  run = experiment.restore_run(str(root_dir))
  np.testing.assert_allclose(
      run.agent.policy.action(ts.restart(observation, 6)).action,
      search, atol=1e-6)
  # The network policy reads the network input only: its greedy action is
  # the squashed mean.
  output, _ = run.agent._network(observation.network_input)  # pylint: disable=protected-access
  np.testing.assert_allclose(2.0 * np.tanh(output.policy.loc.numpy()),
                             network, atol=1e-5)
  # launch.evaluate tells the network-input-only SavedModel from the search,
  # and plays the task a SavedModel names without --env.
  for kind, env_flag in (('search', ('--env=pendulum',)), ('network', ())):
    result = conftest.run_cli(
        'launch.evaluate', *env_flag,
        f'--saved_model={summary["saved_models"][kind]}',
        '--num_episodes=2', '--time_limit=4')
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'env=pendulum' in result.stdout
    assert 'mean_return' in result.stdout and 'solve_rate' not in result.stdout
  network = summary['saved_models']['network']
  with pytest.raises(ValueError, match=(
      f'^env=rubiks_cube is not the task of the SavedModel at {network}, '
      'pendulum: pass env=pendulum or none.$')):
    experiment.load_saved_policy(network, 'rubiks_cube')
