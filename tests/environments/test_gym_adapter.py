"""Tests for environments.gym_adapter: gymnasium's MuJoCo envs, batched."""

import types

import numpy as np
import pytest
import tensorflow as tf
from tf_agents.environments import tf_py_environment
from tf_agents.environments import utils as env_utils
from tf_agents.specs import tensor_spec
from tf_agents.trajectories import time_step as ts

from environments import gym_adapter
from environments import model as model_lib
from environments import mujoco_model
from environments import mujoco_tasks

FIRST, MID, LAST = (int(step_type) for step_type in (
    ts.StepType.FIRST, ts.StepType.MID, ts.StepType.LAST))


def make_model(name, time_limit):
  return mujoco_model.MujocoModel(mujoco_tasks.task(name),
                                  time_limit=time_limit)


@pytest.fixture(name='cheetah', scope='module')
def fixture_cheetah():
  return make_model('halfcheetah', time_limit=20)


@pytest.fixture(name='short_cheetah', scope='module')
def fixture_short_cheetah():
  return make_model('halfcheetah', time_limit=5)


@pytest.fixture(name='ant', scope='module')
def fixture_ant():
  return make_model('ant', time_limit=20)


def random_actions(env, rng):
  """float32 [num_envs, nu] uniform actions within the bounds."""
  spec = env.action_spec()
  return rng.uniform(spec.minimum, spec.maximum,
                     (env.batch_size,) + spec.shape).astype(np.float32)


def to_tensors(nest):
  return tf.nest.map_structure(tf.convert_to_tensor, nest)


def assert_nests_equal(x, y):
  tf.nest.assert_same_structure(x, y)
  for a, b in zip(tf.nest.flatten(x), tf.nest.flatten(y)):
    np.testing.assert_array_equal(a, b)


def test_specs_mirror_the_model(ant):
  env = gym_adapter.GymnasiumEnvironment(ant, num_envs=3)
  assert env.batched and env.batch_size == 3
  model_spec = ant.observation_spec()
  spec = env.observation_spec()
  assert isinstance(spec, model_lib.PlanningObservation)
  assert type(spec.planning_state) is dict
  tf.nest.assert_same_structure(spec, model_spec)
  for array_spec, model_leaf in zip(tf.nest.flatten(spec),
                                    tf.nest.flatten(model_spec)):
    assert array_spec == tensor_spec.to_array_spec(model_leaf)
  assert env.action_spec() == tensor_spec.to_array_spec(ant.action_spec())
  np.testing.assert_array_equal(env.action_spec().minimum,
                                env.gym_envs[0].action_space.low)
  np.testing.assert_array_equal(env.action_spec().maximum,
                                env.gym_envs[0].action_space.high)
  assert env.reward_spec().dtype == env.discount_spec().dtype == np.float32
  assert isinstance(env.gym_envs, tuple) and len(env.gym_envs) == 3
  env.close()


@pytest.mark.parametrize('name', ['cheetah', 'ant'])
def test_validate_py_environment(name, request):
  model = request.getfixturevalue(name)
  env = gym_adapter.GymnasiumEnvironment(model, num_envs=2, seed=1)
  env_utils.validate_py_environment(env, episodes=2)
  env.close()


def test_truncation_then_restart(short_cheetah):
  env = gym_adapter.GymnasiumEnvironment(short_cheetah, num_envs=2, seed=2)
  rng = np.random.default_rng(0)
  time_step = env.reset()
  np.testing.assert_array_equal(time_step.step_type, [FIRST] * 2)
  np.testing.assert_array_equal(time_step.reward, [0.0] * 2)
  np.testing.assert_array_equal(time_step.discount, [1.0] * 2)
  np.testing.assert_array_equal(
      time_step.observation.planning_state['steps'], [0, 0])
  for step in range(1, 6):
    time_step = env.step(random_actions(env, rng))
    expected = LAST if step == 5 else MID
    np.testing.assert_array_equal(time_step.step_type, [expected] * 2)
    np.testing.assert_array_equal(time_step.discount, [1.0] * 2)
    np.testing.assert_array_equal(
        time_step.observation.planning_state['steps'], [step] * 2)
  time_step = env.step(random_actions(env, rng))
  np.testing.assert_array_equal(time_step.step_type, [FIRST] * 2)
  np.testing.assert_array_equal(time_step.reward, [0.0] * 2)
  np.testing.assert_array_equal(time_step.discount, [1.0] * 2)
  np.testing.assert_array_equal(
      time_step.observation.planning_state['steps'], [0, 0])
  time_step = env.step(random_actions(env, rng))
  np.testing.assert_array_equal(time_step.step_type, [MID] * 2)
  env.close()


def test_termination(ant):
  env = gym_adapter.GymnasiumEnvironment(ant, num_envs=2, seed=3)
  rng = np.random.default_rng(0)
  env.reset()
  # Lift env 1's torso above the healthy range: its next step terminates.
  unwrapped = env.gym_envs[1].unwrapped
  qpos = unwrapped.data.qpos.copy()
  qpos[2] = 1.5
  unwrapped.set_state(qpos, unwrapped.data.qvel.copy())
  time_step = env.step(random_actions(env, rng))
  np.testing.assert_array_equal(time_step.step_type, [MID, LAST])
  np.testing.assert_array_equal(time_step.discount, [1.0, 0.0])
  time_step = env.step(random_actions(env, rng))
  np.testing.assert_array_equal(time_step.step_type, [MID, FIRST])
  np.testing.assert_array_equal(time_step.discount, [1.0, 1.0])
  np.testing.assert_array_equal(time_step.reward[1], 0.0)
  np.testing.assert_array_equal(
      time_step.observation.planning_state['steps'], [2, 0])
  env.close()


def test_model_predicts_the_next_step_exactly(ant):
  """From the carried planning state, the model predicts env.step."""
  env = gym_adapter.GymnasiumEnvironment(ant, num_envs=2, seed=4)
  rng = np.random.default_rng(1)
  time_step = env.reset()
  step_types = set()
  # Past the time limit: checks the predicted truncation, and the states
  # after gymnasium's later (unseeded) resets.
  for _ in range(30):
    action = random_actions(env, rng)
    predicted = ant.step(to_tensors(time_step.observation.planning_state),
                         tf.constant(action))
    predicted_observation = ant.observe(predicted.state)
    was_last = time_step.is_last()
    time_step = env.step(action)
    stepped = ~was_last
    np.testing.assert_array_equal(time_step.step_type[was_last], FIRST)
    expected_type = np.where(predicted.done.numpy(), LAST, MID)
    np.testing.assert_array_equal(time_step.step_type[stepped],
                                  expected_type[stepped])
    step_types.update(time_step.step_type.tolist())
    np.testing.assert_allclose(
        time_step.observation.network_input[stepped],
        predicted_observation.network_input.numpy()[stepped],
        rtol=0, atol=1e-6)
    state = time_step.observation.planning_state
    predicted_state = tf.nest.map_structure(lambda t: t.numpy(),
                                            predicted.state)
    for key in ('observation', 'physics', 'position'):
      np.testing.assert_allclose(state[key][stepped],
                                 predicted_state[key][stepped],
                                 rtol=0, atol=1e-6)
    np.testing.assert_array_equal(state['steps'][stepped],
                                  predicted_state['steps'][stepped])
    np.testing.assert_allclose(time_step.reward[stepped],
                               predicted.reward.numpy()[stepped],
                               rtol=0, atol=1e-5)
    np.testing.assert_array_equal(time_step.discount[stepped],
                                  predicted.discount.numpy()[stepped])
  assert step_types == {FIRST, MID, LAST}
  env.close()


def run(env, actions):
  """The time steps of a reset and one step per action."""
  return [env.reset()] + [env.step(action) for action in actions]


def test_seeds(short_cheetah):
  rng = np.random.default_rng(2)
  envs = [gym_adapter.GymnasiumEnvironment(short_cheetah, num_envs=2, seed=s)
          for s in (7, 7, 8)]
  actions = [random_actions(envs[0], rng) for _ in range(9)]
  runs = [run(env, actions) for env in envs]
  # Same seed: the same trajectories, across gymnasium's unseeded resets.
  assert_nests_equal(runs[0], runs[1])
  assert runs[0][6].is_first().all()
  # Different seeds, and different environments of one run, start apart.
  first = [r[0].observation.network_input for r in runs]
  assert not np.array_equal(first[0], first[2])
  assert not np.array_equal(first[0][0], first[0][1])
  # The action spaces are seeded likewise.
  samples = [[env.action_space.sample() for env in e.gym_envs] for e in envs]
  assert_nests_equal(samples[0], samples[1])
  assert not np.array_equal(samples[0][0], samples[2][0])
  assert not np.array_equal(samples[0][0], samples[0][1])
  for env in envs:
    env.close()


def test_tf_py_environment(cheetah):
  py_env = gym_adapter.GymnasiumEnvironment(cheetah, num_envs=2)
  env = tf_py_environment.TFPyEnvironment(py_env)
  assert env.batch_size == 2
  assert env.time_step_spec() == ts.time_step_spec(cheetah.observation_spec())
  assert env.action_spec() == cheetah.action_spec()
  time_step = env.reset()
  assert time_step.observation.planning_state['physics'].dtype == tf.float64
  time_step = env.step(tf.zeros([2, cheetah.simulator.action_size]))
  np.testing.assert_array_equal(time_step.step_type.numpy(), [MID] * 2)
  assert time_step.observation.network_input.shape == [
      2, cheetah.simulator.observation_size]
  np.testing.assert_array_equal(
      time_step.observation.planning_state['steps'].numpy(), [1, 1])
  env.close()


def test_bad_arguments(cheetah):
  with pytest.raises(ValueError, match='num_envs'):
    gym_adapter.GymnasiumEnvironment(cheetah, num_envs=0)
  env = gym_adapter.GymnasiumEnvironment(cheetah, num_envs=2)
  env.reset()
  with pytest.raises(ValueError, match='shape'):
    env.step(np.zeros([3, cheetah.simulator.action_size], np.float32))
  env.close()


class _ObservationPolicy:
  """Acts tanh(obs[:nu]) on the network input; a known function to replay."""

  def __init__(self, nu, network_input_only):
    self._nu = nu
    self._network_input_only = network_input_only

  def action(self, time_step):
    observation = time_step.observation
    if not self._network_input_only:
      observation = observation.network_input
    return types.SimpleNamespace(action=tf.tanh(observation[:, :self._nu]))


@pytest.mark.parametrize('name,network_input_only', [
    ('cheetah', True), ('ant', False)])
def test_play_gymnasium_returns_gymnasiums_own_returns(
    name, network_input_only, request):
  """The returns of gymnasium stepped by hand from the same seeded resets."""
  model = request.getfixturevalue(name)
  nu = model.action_spec().shape[0]
  policy = _ObservationPolicy(nu, network_input_only)
  returns = gym_adapter.play_gymnasium(policy, model, 3, seed=5,
                                       network_input_only=network_input_only)
  expected = np.zeros(3)
  for index in range(3):
    env = mujoco_model.make_gym_env(model.simulator.task, model.time_limit)
    observation, _ = env.reset(seed=gym_adapter.env_seed(5, index))
    done = False
    while not done:
      action = np.tanh(observation[:nu].astype(np.float32))
      observation, reward, terminated, truncated, _ = env.step(action)
      expected[index] += reward
      done = terminated or truncated
    env.close()
  np.testing.assert_allclose(returns, expected, rtol=1e-5)
  assert not np.allclose(returns, returns[0])
