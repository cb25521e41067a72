"""Tests for environments.pendulum, against gymnasium's Pendulum-v1."""

import types

import gymnasium
from gymnasium.envs.classic_control import pendulum as gymnasium_pendulum
import numpy as np
import pytest
import tensorflow as tf
from tf_agents.specs import tensor_spec
from tf_agents.trajectories import time_step as ts

from environments import model as model_lib
from environments import pendulum
from tests.support import model_checks

NUM_EPISODES = 4
TIME_LIMIT = 200
# Gymnasium computes in float64 (NumPy 1.x promotes its float32 scalars with
# Python floats), the model in float32, and the sin and cos of NumPy, Eigen
# and XLA differ in the last float32 bit; see the tests for what each bound
# covers.
ONE_STEP_ATOL = 1e-5
FREE_RUNNING_ATOL = 1e-2


@pytest.fixture(name='model', scope='module')
def fixture_model():
  return pendulum.Pendulum()


as_numpy = model_checks.as_numpy


def gymnasium_envs(num_episodes, g):
  """Gymnasium Pendulum-v1 environments, one per episode, reset."""
  envs = [gymnasium.make('Pendulum-v1', g=g) for _ in range(num_episodes)]
  for i, env in enumerate(envs):
    env.reset(seed=100 + i)
  return envs


def test_specs(model):
  spec = model.observation_spec()
  assert isinstance(spec, model_lib.PlanningObservation)
  assert spec.network_input == tensor_spec.BoundedTensorSpec(
      (3,), tf.float32, [-1.0, -1.0, -8.0], [1.0, 1.0, 8.0],
      name='observation')
  assert spec.planning_state == {
      'theta': tf.TensorSpec((), tf.float32, name='theta'),
      'theta_dot': tf.TensorSpec((), tf.float32, name='theta_dot'),
      'steps': tf.TensorSpec((), tf.int32, name='steps'),
  }
  assert model.network_input_spec() == spec.network_input
  assert model.action_spec() == tensor_spec.BoundedTensorSpec(
      (1,), tf.float32, -2.0, 2.0, name='action')
  # The specs are gymnasium's spaces.
  env = gymnasium.make('Pendulum-v1')
  np.testing.assert_array_equal(spec.network_input.minimum,
                                env.observation_space.low)
  np.testing.assert_array_equal(spec.network_input.maximum,
                                env.observation_space.high)
  np.testing.assert_array_equal(model.action_spec().minimum,
                                env.action_space.low)
  np.testing.assert_array_equal(model.action_spec().maximum,
                                env.action_space.high)
  assert env.spec.max_episode_steps == TIME_LIMIT == model.time_limit


def test_observe_matches_specs(model):
  state = model.reset(5, tf.constant([0, 1]))
  observation = model.observe(state)
  spec = model.observation_spec()
  tf.nest.assert_same_structure(observation, spec)
  for tensor, tensor_spec_ in zip(tf.nest.flatten(observation),
                                  tf.nest.flatten(spec)):
    assert tensor.dtype == tensor_spec_.dtype
    assert tensor.shape == [5] + tensor_spec_.shape
  assert observation.planning_state is state


@pytest.mark.parametrize('g', [10.0, 9.81])
def test_matches_gymnasium(g):
  """Steps batched episodes in the model and one gymnasium env per episode.

  Before every step gymnasium's state is set to the model's, so each step
  compares one transition from the same state, to float32 rounding; the
  episodes run for the whole time limit and gymnasium's own TimeLimit
  wrapper decides truncation.
  """
  model = pendulum.Pendulum(g=g)
  state = model.reset(NUM_EPISODES, tf.constant([3, 4]))
  envs = gymnasium_envs(NUM_EPISODES, g)
  rng = np.random.default_rng(5)
  actions = rng.uniform(-2.5, 2.5,
                        (TIME_LIMIT, NUM_EPISODES, 1)).astype(np.float32)
  assert (np.abs(actions) > 2.0).mean() > 0.1  # Clipping is exercised.

  def set_gymnasium_states(state):
    theta, theta_dot = state['theta'].numpy(), state['theta_dot'].numpy()
    for i, env in enumerate(envs):
      env.unwrapped.state = np.array([theta[i], theta_dot[i]])

  set_gymnasium_states(state)
  for i, env in enumerate(envs):
    np.testing.assert_array_equal(
        env.unwrapped._get_obs(),  # pylint: disable=protected-access
        model.observe(state).network_input[i].numpy())
  for t in range(TIME_LIMIT):
    set_gymnasium_states(state)
    model_step = model.step(state, tf.constant(actions[t]))
    state = model_step.state
    observation = model.observe(state).network_input.numpy()
    reward, discount, done = as_numpy(
        (model_step.reward, model_step.discount, model_step.done))
    np.testing.assert_array_equal(state['steps'].numpy(), t + 1)
    np.testing.assert_array_equal(discount, 1.0)
    for i, env in enumerate(envs):
      gym_observation, gym_reward, terminated, truncated, _ = env.step(
          actions[t, i])
      np.testing.assert_allclose(observation[i], gym_observation, rtol=0,
                                 atol=ONE_STEP_ATOL, err_msg=f'step {t}')
      np.testing.assert_allclose(reward[i], gym_reward, rtol=0,
                                 atol=ONE_STEP_ATOL, err_msg=f'step {t}')
      assert not terminated
      assert truncated == (t == TIME_LIMIT - 1)
      assert done[i] == truncated, f'step {t}'


def test_free_running_trajectories_stay_close_to_gymnasium(model):
  """Without resynchronising, float32 rounding drifts only slowly."""
  state = model.reset(NUM_EPISODES, tf.constant([6, 7]))
  envs = gymnasium_envs(NUM_EPISODES, 10.0)
  for i, env in enumerate(envs):
    env.unwrapped.state = np.array(
        [state['theta'][i].numpy(), state['theta_dot'][i].numpy()])
  rng = np.random.default_rng(8)
  actions = rng.uniform(-2.5, 2.5,
                        (TIME_LIMIT, NUM_EPISODES, 1)).astype(np.float32)
  for t in range(TIME_LIMIT):
    model_step = model.step(state, tf.constant(actions[t]))
    state = model_step.state
    observation = model.observe(state).network_input.numpy()
    for i, env in enumerate(envs):
      gym_observation, gym_reward, _, truncated, _ = env.step(actions[t, i])
      np.testing.assert_allclose(observation[i], gym_observation, rtol=0,
                                 atol=FREE_RUNNING_ATOL, err_msg=f'step {t}')
      np.testing.assert_allclose(model_step.reward[i].numpy(), gym_reward,
                                 rtol=0, atol=FREE_RUNNING_ATOL)
      assert model_step.done[i].numpy() == truncated


def test_edge_cases_match_gymnasium():
  """Speed clipping, large and negative angles, and torque clipping."""
  theta = np.array([np.pi / 2, -np.pi / 2, 10.0, -10.0, np.pi, -np.pi, 0.0,
                    3 * np.pi], np.float32)
  theta_dot = np.array([7.9, -7.9, 8.0, -8.0, 0.5, -0.5, 0.0, 1.0],
                       np.float32)
  actions = np.array([[2.0], [-2.0], [5.0], [-5.0], [0.0], [1.0], [0.0],
                      [-3.0]], np.float32)
  model = pendulum.Pendulum()
  state = {'theta': tf.constant(theta), 'theta_dot': tf.constant(theta_dot),
           'steps': tf.zeros([len(theta)], tf.int32)}
  model_step = model.step(state, tf.constant(actions))
  new_theta_dot = model_step.state['theta_dot'].numpy()
  assert new_theta_dot[0] == 8.0 and new_theta_dot[1] == -8.0
  env = gymnasium.make('Pendulum-v1').unwrapped
  env.reset(seed=0)
  for i in range(len(theta)):
    env.state = np.array([theta[i], theta_dot[i]])
    _, gym_reward, _, _, _ = env.step(actions[i])
    np.testing.assert_allclose(model_step.reward[i].numpy(), gym_reward,
                               rtol=0, atol=ONE_STEP_ATOL)
    np.testing.assert_allclose(
        [model_step.state['theta'][i].numpy(), new_theta_dot[i]], env.state,
        rtol=0, atol=ONE_STEP_ATOL)
  # The wrapped angle of the upright pendulum costs nothing.
  assert model_step.reward[6].numpy() == 0.0


def test_angle_normalize_matches_gymnasium():
  x = np.linspace(-20.0, 20.0, 10001, dtype=np.float32)
  normalized = pendulum.angle_normalize(tf.constant(x)).numpy()
  expected = gymnasium_pendulum.angle_normalize(x.astype(np.float64))
  np.testing.assert_allclose(normalized, expected, rtol=0, atol=1e-5)
  assert normalized.min() >= -np.float32(np.pi)
  assert normalized.max() <= np.float32(np.pi)


def test_reset_distribution(model):
  state = as_numpy(model.reset(100_000, tf.constant([1, 2])))
  theta, theta_dot = state['theta'], state['theta_dot']
  assert theta.dtype == theta_dot.dtype == np.float32
  assert state['steps'].dtype == np.int32
  np.testing.assert_array_equal(state['steps'], 0)
  pi = np.float32(np.pi)
  assert theta.min() >= -pi and theta.max() <= pi
  assert theta.min() < -pi + 0.01 and theta.max() > pi - 0.01
  assert theta_dot.min() >= -1.0 and theta_dot.max() <= 1.0
  assert theta_dot.min() < -0.99 and theta_dot.max() > 0.99
  # Roughly uniform and independent.
  np.testing.assert_allclose(np.histogram(theta, 10)[0] / len(theta), 0.1,
                             atol=0.01)
  np.testing.assert_allclose(np.histogram(theta_dot, 10)[0] / len(theta),
                             0.1, atol=0.01)
  assert abs(np.corrcoef(theta, theta_dot)[0, 1]) < 0.02


def test_reset_is_deterministic_in_the_seed(model):
  first = as_numpy(model.reset(64, tf.constant([1, 2])))
  again = as_numpy(model.reset(64, tf.constant([1, 2], tf.int64)))
  other = as_numpy(model.reset(64, tf.constant([1, 3])))
  tf.nest.map_structure(np.testing.assert_array_equal, first, again)
  assert not np.any(first['theta'] == other['theta'])
  assert not np.any(first['theta_dot'] == other['theta_dot'])


def test_xla_with_unknown_batch_size_matches_eager(model):
  num_steps = 5
  rollout = model_checks.rollout_fn(model, num_steps)
  compiled = model_checks.compiled_rollout_fn(model, num_steps)
  rng = np.random.default_rng(9)
  for batch_size in (1, 7):
    seed = tf.constant([11, batch_size], tf.int64)
    actions = tf.constant(rng.uniform(
        -2.5, 2.5, (num_steps, batch_size, 1)).astype(np.float32))
    expected = as_numpy(rollout(seed, actions))
    actual = as_numpy(compiled(seed, actions))
    # XLA's sin and cos may differ from Eigen's in the last bit.
    model_checks.assert_nests_equal(expected, actual, float_tolerance=1e-6)
    # The reset itself is bit-exact.
    model_checks.assert_nests_equal(expected[0].planning_state,
                                    actual[0].planning_state)


def test_model_environment_truncates_after_time_limit():
  time_limit = 3
  env = model_lib.ModelEnvironment(
      pendulum.Pendulum(time_limit=time_limit), batch_size=2, seed=0)
  action = tf.constant([[1.0], [-1.0]])
  time_step = env.current_time_step()
  assert isinstance(time_step.observation, model_lib.PlanningObservation)
  np.testing.assert_array_equal(time_step.step_type, ts.StepType.FIRST)
  for t in range(1, time_limit + 1):
    time_step = env.step(action)
    assert isinstance(time_step.observation, model_lib.PlanningObservation)
    assert time_step.observation.network_input.shape == (2, 3)
    np.testing.assert_array_equal(time_step.observation.planning_state['steps'],
                                  t)
    np.testing.assert_array_equal(time_step.discount, 1.0)
    np.testing.assert_array_equal(
        time_step.step_type,
        ts.StepType.LAST if t == time_limit else ts.StepType.MID)
  time_step = env.step(action)
  np.testing.assert_array_equal(time_step.step_type, ts.StepType.FIRST)
  np.testing.assert_array_equal(time_step.observation.planning_state['steps'],
                                0)
  time_step = env.step(action)
  np.testing.assert_array_equal(time_step.step_type, ts.StepType.MID)


@pytest.mark.parametrize('time_limit', [0, -1])
def test_invalid_time_limit_raises(time_limit):
  with pytest.raises(ValueError, match='time_limit must be >= 1'):
    pendulum.Pendulum(time_limit=time_limit)


class _ConstantTorque:
  """A policy object that always applies one torque."""

  def __init__(self, torque):
    self.torque = torque

  def action(self, time_step):
    batch = tf.shape(time_step.observation.network_input)[0]
    return types.SimpleNamespace(action=tf.fill([batch, 1], self.torque))


def test_play_gymnasium_returns_gymnasiums_own_rewards():
  """Constant torque: the returns of the model from gymnasium's starts."""
  model = pendulum.Pendulum()
  returns = pendulum.play_gymnasium(_ConstantTorque(0.5), model, 3, seed=7)
  starts = []
  for index in range(3):
    env = gymnasium.make('Pendulum-v1')
    env.reset(seed=7 + index)
    starts.append(env.unwrapped.state)
  theta, theta_dot = np.array(starts, np.float32).T
  state = {'theta': tf.constant(theta), 'theta_dot': tf.constant(theta_dot),
           'steps': tf.zeros([3], tf.int32)}
  expected = np.zeros(3)
  for _ in range(200):
    step = model.step(state, tf.fill([3, 1], 0.5))
    expected += step.reward.numpy()
    state = step.state
  np.testing.assert_allclose(returns, expected, rtol=1e-3)
