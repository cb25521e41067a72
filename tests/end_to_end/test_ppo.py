"""Tests of the PPO baseline: tf_spo/ppo.py and --algorithm=ppo."""

import contextlib
import csv
import io
import os

import numpy as np
import pytest
import tensorflow as tf
from tf_agents.agents.ppo import ppo_agent
from tf_agents.specs import tensor_spec
from tf_agents.trajectories import time_step as ts

from environments import model as model_lib
from environments import registry
from launch import cli
from tests.support import checkpoints
from tf_spo import experiment
from tf_spo.experiment import builders

CUBE = dict(
    algorithm='ppo', num_envs=8, rollout_length=4, total_env_steps=128,
    num_epochs=2, torso_units=32, head_units=16, num_residual_blocks=1,
    min_scramble=1, max_scramble=2, eval_scramble=2, eval_episodes=8,
    eval_interval=64, checkpoint_interval=64, log_interval=64)


def cube_settings(**overrides):
  return experiment.resolve_settings('rubiks_cube', 'cpu',
                                     dict(CUBE, **overrides))


def pendulum_settings(**overrides):
  return experiment.resolve_settings('pendulum', 'cpu', dict(
      algorithm='ppo', num_envs=4, rollout_length=16, total_env_steps=256,
      num_epochs=2, torso_units=16, head_units=16, num_residual_blocks=0,
      time_limit=50, eval_episodes=4, eval_interval=256,
      checkpoint_interval=256, log_interval=128, **overrides))


def build_agent(settings, seed=None):
  """The run's agent on its environment's specs, and that environment."""
  model = experiment.make_model(settings)
  env = registry.entry(settings['env']).make_env(
      model, settings['num_envs'], settings['seed'])
  agent = experiment.make_agent(settings, model, env.time_step_spec(),
                                env.action_spec(), seed=seed)
  return agent, env


def kernel_shapes(module):
  return [tuple(v.shape) for v in module.trainable_variables
          if 'kernel' in v.name]


def test_discrete_agent_one_hot_encodes_the_cube_and_resumes_its_stream(
    tmp_path):
  tf.keras.utils.set_random_seed(0)
  agent, env = build_agent(cube_settings())
  assert agent.policy is agent.network_policy
  assert agent.collect_data_spec.policy_info == {'dist_params': {
      'logits': tensor_spec.TensorSpec([18], tf.float32,
                                       'CategoricalProjectionNetwork_logits')}}
  # 54 stickers x 6 colours; (torso 32) x (1 block + 1), head 16; 18 logits.
  assert kernel_shapes(agent.actor_net) == [
      (324, 32), (32, 32), (32, 16), (16, 18)]
  assert kernel_shapes(agent._value_net) == [
      (324, 32), (32, 32), (32, 16), (16, 1)]
  time_step = env.current_time_step()
  collect = agent.collect_policy.action(time_step)
  greedy = agent.policy.action(time_step).action
  np.testing.assert_array_equal(
      greedy, tf.argmax(collect.info['dist_params']['logits'], axis=-1))

  # A restored agent continues the collect policy's random stream.
  checkpoint = tf.train.Checkpoint(agent=agent).save(str(tmp_path / 'agent'))
  expected = [agent.collect_policy.action(time_step).action
              for _ in range(3)]
  tf.keras.utils.set_random_seed(1)
  restored, _ = build_agent(cube_settings(), seed=7)
  tf.train.Checkpoint(agent=restored).restore(checkpoint).assert_consumed()
  actual = [restored.collect_policy.action(time_step).action
            for _ in range(3)]
  np.testing.assert_array_equal(actual, expected)
  assert not all(np.array_equal(a, expected[0]) for a in expected[1:])


def test_continuous_agent_ignores_the_planning_state():
  tf.keras.utils.set_random_seed(0)
  agent, env = build_agent(pendulum_settings(initial_scale=0.5))
  assert isinstance(env.time_step_spec().observation,
                    model_lib.PlanningObservation)
  # The networks read the 3 floats of the network input only.
  assert kernel_shapes(agent.actor_net)[0] == (3, 16)
  assert kernel_shapes(agent._value_net)[0] == (3, 16)
  time_step = env.current_time_step()
  state = time_step.observation.planning_state
  moved = time_step._replace(observation=time_step.observation._replace(
      planning_state=dict(state, theta=state['theta'] + 1.0,
                          theta_dot=-state['theta_dot'],
                          steps=state['steps'] + 17)))
  params = [agent.collect_policy.distribution(step).info['dist_params']
            for step in (time_step, moved)]
  for name in ('loc', 'scale'):
    np.testing.assert_array_equal(params[0][name], params[1][name])
  np.testing.assert_allclose(params[0]['scale'], 0.5, rtol=1e-6)
  greedy = agent.policy.action(time_step).action
  np.testing.assert_array_equal(greedy, params[0]['loc'])
  assert np.all(np.abs(greedy) < 2.0)
  exported = agent.export_network_policy()
  assert exported.time_step_spec.observation == (
      env.time_step_spec().observation.network_input)
  network_step = ts.restart(time_step.observation.network_input, 4)
  np.testing.assert_array_equal(exported.action(network_step).action, greedy)


def test_ppo_settings_are_validated():
  for overrides, message in (
      ({'rollout_length': 1}, '--rollout_length must be >= 2 with '
       '--algorithm=ppo'),
      ({'strategy': 'mirrored'}, "--strategy must be 'default' with "
       '--algorithm=ppo'),
      ({'ppo_clip_ratio': 0.0}, '--ppo_clip_ratio must be in (0, 1), '
       'got 0.0'),
      ({'ppo_entropy_coef': -0.1}, '--ppo_entropy_coef must be >= 0'),
      ({'ppo_num_minibatches': 0}, '--ppo_num_minibatches must be >= 1'),
      ({'ppo_num_minibatches': 3}, '--ppo_num_minibatches must be a divisor '
       'of num_envs * rollout_length = 32, got 3'),
      ({'network': 'mlp', 'conv_channels': '4'},
       '--conv_channels needs --network=residual')):
    with pytest.raises(ValueError) as error:
      experiment.validate_settings(cube_settings(**overrides))
    assert message in cli.flag_wording(error.value, experiment.DEFAULTS)
  # The replay settings do not apply to PPO.
  experiment.validate_settings(cube_settings(replay_capacity=1))


def test_runs_from_before_the_baseline_settings_resume_as_spo(tmp_path):
  added = (experiment.settings.PPO_SETTINGS +
           experiment.settings.GUMBEL_SETTINGS + ('algorithm',))
  old = {name: value for name, value in experiment.DEFAULTS.items()
         if name not in added}
  experiment.write_settings(str(tmp_path), old)
  settings = experiment.read_settings(str(tmp_path))
  assert settings['algorithm'] == 'spo'
  assert settings['ppo_clip_ratio'] == 0.2
  assert settings['num_sampled_actions'] == 16
  # Their search configuration reads back (launch.scaling builds Gumbel
  # searches from an SPO run's settings).
  experiment.search_config(dict(settings, algorithm='gumbel'))
  # The same flags resume it.
  experiment.write_settings(str(tmp_path), dict(experiment.DEFAULTS))
  with pytest.raises(ValueError, match=r"algorithm='spo' \(now 'ppo'\)"):
    experiment.write_settings(str(tmp_path), dict(experiment.DEFAULTS,
                                                  algorithm='ppo'))


def test_loop_trains_once_on_exactly_the_newest_rollout(tmp_path):
  settings = cube_settings()
  run = experiment.build_run(settings, str(tmp_path))
  loop = experiment.make_loop(run)
  assert loop.train_steps_per_iteration == 1
  calls = tf.Variable(0)

  def fake_train(experience):
    calls.assign_add(1)
    return experience

  run.agent.train = fake_train
  model = run.model
  rollouts = []
  for iteration in (1, 2):
    first = run.env.current_time_step()
    experience = experiment.run_iteration(loop, num_epochs=5).loss_info
    rollouts.append(experience)
    assert int(calls.numpy()) == iteration  # once, not num_epochs times
    assert experience.step_type.shape == (8, 4)
    assert int(run.replay_buffer.num_frames()) == 32
    # The rollout starts where the environments stood before the collect...
    np.testing.assert_array_equal(experience.observation[:, 0],
                                  first.observation)
    np.testing.assert_array_equal(experience.step_type[:, 0],
                                  first.step_type)
    # ...and its steps follow each other in time order (a LAST step is
    # followed by a new episode).
    for t in range(3):
      stepped = model.observe(model.step(
          model.state_from_observation(experience.observation[:, t]),
          experience.action[:, t]).state)
      last = (experience.step_type[:, t] == ts.StepType.LAST).numpy()
      np.testing.assert_array_equal(
          stepped.numpy()[~last], experience.observation[:, t + 1][~last])
  assert int(run.env_steps.numpy()) == 64
  assert not np.array_equal(rollouts[0].observation, rollouts[1].observation)


def test_minibatches_partition_each_epoch_of_the_rollout(monkeypatch,
                                                        tmp_path):
  # 2 epochs x 4 minibatches of a rollout of 4 envs x 16 steps: each epoch
  # shuffles the 64 transitions into 4 disjoint minibatches of 16, each step
  # is TF-Agents' own on the advantages of the whole rollout, and the
  # observation normaliser takes the rollout once.
  settings = pendulum_settings(network='mlp', mlp_units=16, mlp_layers=2,
                               normalize_observations=True,
                               ppo_num_minibatches=4)
  run = experiment.build_run(settings, str(tmp_path))
  loop = experiment.make_loop(run)
  loop.collect()
  experience = run.replay_buffer.newest_steps(16)
  agent = run.agent
  # The collect policy records the values the advantages start from.
  assert set(experience.policy_info) == {'dist_params', 'value_prediction'}
  expected = agent._preprocess(experience).policy_info
  rows = {experience.observation.network_input[b, t].numpy().tobytes():
          (b, t) for b in range(4) for t in range(16)}
  assert len(rows) == 64
  steps = []
  one_step = ppo_agent.PPOAgent._train

  def recording(self, minibatch, weights):
    steps.append(minibatch)
    # Per-env weights reach each transition of the env.
    np.testing.assert_array_equal(weights, [
        [1.0 + rows[x.tobytes()][0]]
        for x in minibatch.observation.network_input[:, 0].numpy()])
    return one_step(self, minibatch, weights)

  monkeypatch.setattr(ppo_agent.PPOAgent, '_train', recording)
  agent.train(experience, weights=tf.constant([1.0, 2.0, 3.0, 4.0]))
  assert len(steps) == 8
  assert int(agent.train_step_counter.numpy()) == 8
  epochs = []
  for minibatch in steps:
    assert minibatch.step_type.shape == (16, 1)
    where = [rows[x.tobytes()]
             for x in minibatch.observation.network_input[:, 0].numpy()]
    for key in ('advantage', 'return', 'value_prediction'):
      np.testing.assert_array_equal(
          minibatch.policy_info[key][:, 0],
          [expected[key][b, t] for b, t in where])
    epochs.append(where)
  for epoch in (epochs[:4], epochs[4:]):
    assert sorted(row for rows_ in epoch for row in rows_) == sorted(
        rows.values())
  assert epochs[:4] != epochs[4:]
  assert float(agent.normalizer.count.numpy()) == 64


def train_quietly(settings, root_dir, **kwargs):
  """`experiment.train`, and what it printed."""
  out = io.StringIO()
  with contextlib.redirect_stdout(out):
    summary = experiment.train(settings, root_dir, **kwargs)
  return summary, out.getvalue()


@pytest.fixture(scope='module')
def cube_runs(tmp_path_factory):
  """A tiny PPO cube run stopped at 64 env steps and resumed, and one not."""
  resumed = str(tmp_path_factory.mktemp('resumed'))
  full = str(tmp_path_factory.mktemp('full'))
  settings = minibatch_cube_settings()
  assert train_quietly(settings, resumed, stop_after_env_steps=64)[0] == {}
  summary, stdout = train_quietly(settings, resumed)
  train_quietly(settings, full)
  return resumed, full, summary, stdout


def minibatch_cube_settings():
  return cube_settings(ppo_num_minibatches=2, ppo_learning_rate_decay=True)


def test_cube_run_evaluates_checkpoints_and_exports_the_network(cube_runs):
  root_dir, _, summary, stdout = cube_runs
  assert summary['algorithm'] == 'ppo'
  assert summary['env_steps'] == 128
  # 4 iterations of 32 env steps x 2 epochs x 2 minibatches.
  assert summary['train_steps'] == 16
  # PPO has no search: no search_ key, only the network's scores.
  assert not [key for key in summary if key.startswith('search')]
  assert set(summary['saved_models']) == {'network'}
  assert 0 <= summary['network_solve_rate'] <= 1
  assert summary['network_mean_length'] > 0
  assert summary['checkpoint'].endswith('ckpt-128')
  assert '[train] env_steps=128/128 train_steps=16 ' in stdout
  assert 'clip_fraction=' in stdout and 'eta=' not in stdout
  with open(os.path.join(root_dir, 'eval.csv')) as f:
    rows = list(csv.DictReader(f))
  assert [int(row['env_steps']) for row in rows] == [0, 64, 128]
  assert list(rows[0]) == list(experiment.eval_columns(
      minibatch_cube_settings())) == [
      'env_steps', 'wall_clock_s', 'train_steps', 'network_solve_rate',
      'network_mean_return', 'network_mean_length']

  # The exported policy loads with plain TF and acts on the network input
  # as the restored agent's greedy policy acts on the full observations.
  loaded = tf.saved_model.load(summary['saved_models']['network'])
  run = experiment.restore_run(root_dir)
  assert int(run.agent.train_step_counter.numpy()) == 16
  # The learning rate fell linearly from 1e-3 to 0 over the 16 steps.
  assert int(run.agent._optimizer.iterations.numpy()) == 16
  schedule = builders.ppo_learning_rate(run.settings)
  np.testing.assert_allclose([schedule(0), schedule(8), schedule(16)],
                             [1e-3, 5e-4, 0.0], rtol=1e-6)
  model = experiment.make_model(run.settings, evaluation=True)
  state = model.reset(5, tf.constant([3, 0], tf.int64))
  observation = model.observe(state)
  exported = loaded.action(
      ts.restart(model_lib.network_input(observation), 5), ()).action
  np.testing.assert_array_equal(
      exported, run.agent.policy.action(ts.restart(observation, 5)).action)


def test_resumed_cube_run_ends_as_the_uninterrupted_one(cube_runs):
  resumed, full, _, _ = cube_runs
  checkpoints.assert_same_checkpoint(resumed,
                                     checkpoints.checkpoint_tensors(full))


def test_pendulum_mlp_run_trains_normalises_and_exports_the_network(
    tmp_path):
  settings = pendulum_settings(
      initial_scale=3.0, network='mlp', mlp_units=16, mlp_layers=2,
      normalize_observations=True)
  summary, _ = train_quietly(settings, str(tmp_path))
  assert summary['env_steps'] == 256
  assert summary['train_steps'] == 8  # 4 iterations x 2 epochs
  assert set(summary['saved_models']) == {'network'}
  # 50 steps, each costing at most pi^2 + 0.1 * 8^2 + 0.001 * 2^2.
  assert -50 * 16.3 <= summary['network_mean_return'] <= 0.0
  run = experiment.restore_run(str(tmp_path))
  assert kernel_shapes(run.agent.actor_net) == [(3, 16), (16, 16), (16, 1)]
  # Every trained observation, 4 rollouts of 4 envs x 16 steps, was counted.
  assert float(run.agent.normalizer.count.numpy()) == 256
  # The trajectories keep the sampled actions, beyond the bounds too.
  actions = run.replay_buffer.newest_steps(16).action.numpy()
  assert actions.shape == (4, 16, 1) and np.any(np.abs(actions) > 2.0)
  loaded = tf.saved_model.load(summary['saved_models']['network'])
  observation = tf.constant([[1.0, 0.0, 0.0], [0.0, 1.0, -3.0]])
  action = loaded.action(ts.restart(observation, 2), ()).action.numpy()
  assert action.shape == (2, 1) and np.all(np.abs(action) <= 2.0)
  np.testing.assert_allclose(
      action, run.agent.export_network_policy().action(
          ts.restart(observation, 2)).action, atol=1e-6)


def test_eval_csv_of_a_ppo_run_from_before_drops_its_search_copies(tmp_path):
  # A PPO run written before its eval.csv lost the search_ copies resumes
  # into the new columns, its rows kept.
  old = ('env_steps,wall_clock_s,train_steps,search_solve_rate,'
         'network_solve_rate,search_mean_return,network_mean_return,'
         'search_mean_length\n0,0.0,0,0.5,0.5,-1.0,-1.0,20.0\n'
         '64,1.5,4,0.75,0.75,-0.5,-0.5,18.0\n')
  (tmp_path / 'eval.csv').write_text(old)
  columns = experiment.eval_columns(cube_settings())
  experiment.EvalLog(str(tmp_path), columns)
  assert (tmp_path / 'eval.csv').read_text() == (
      'env_steps,wall_clock_s,train_steps,network_solve_rate,'
      'network_mean_return,network_mean_length\n0,0.0,0,0.5,-1.0,20.0\n'
      '64,1.5,4,0.75,-0.5,18.0\n')
  # An eval.csv without the run's columns is someone else's.
  (tmp_path / 'eval.csv').write_text('env_steps,other\n0,1\n')
  with pytest.raises(ValueError,
                     match=r"has no columns \['network_mean_length'"):
    experiment.EvalLog(str(tmp_path), columns)
