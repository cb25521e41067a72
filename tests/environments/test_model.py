"""Tests for environments.model: ModelEnvironment and ModelPyEnvironment."""

import numpy as np
import pytest
import tensorflow as tf
from tf_agents.drivers import dynamic_step_driver
from tf_agents.metrics import tf_metrics
from tf_agents.policies import random_tf_policy
from tf_agents.trajectories import time_step as ts
from tf_agents.utils import common

from environments import model as model_lib
from environments import rubiks_cube

BATCH_SIZE = 4
FIRST, MID, LAST = ts.StepType.FIRST, ts.StepType.MID, ts.StepType.LAST


@pytest.fixture(name='cube', scope='module')
def fixture_cube():
  return rubiks_cube.RubiksCube(min_scramble=1, max_scramble=1, time_limit=3)


@pytest.fixture(name='env')
def fixture_env(cube):
  return model_lib.ModelEnvironment(cube, batch_size=BATCH_SIZE, seed=0)


def solving_actions(cube, observation):
  """Returns int32 [B], the move solving each one-move-scrambled cube."""
  state = cube.state_from_observation(observation)
  batch_size = observation.shape[0]
  rewards = np.stack([
      cube.step(state, tf.fill([batch_size], action)).reward
      for action in range(18)], axis=1)
  np.testing.assert_array_equal(rewards.sum(axis=1), 1.0)
  return tf.constant(np.argmax(rewards, axis=1), tf.int32)


def assert_time_steps_equal(actual, expected):
  tf.nest.map_structure(np.testing.assert_array_equal, actual, expected)


def test_specs(cube, env):
  assert env.time_step_spec() == ts.time_step_spec(cube.observation_spec())
  assert env.observation_spec() == cube.observation_spec()
  assert env.action_spec() == cube.action_spec()
  assert env.batch_size == BATCH_SIZE
  assert env.batched
  assert env.model is cube


def test_reset_returns_first_time_steps(cube, env):
  for time_step in (env.current_time_step(), env.reset()):
    np.testing.assert_array_equal(time_step.step_type, [FIRST] * BATCH_SIZE)
    np.testing.assert_array_equal(time_step.reward, np.zeros(BATCH_SIZE))
    np.testing.assert_array_equal(time_step.discount, np.ones(BATCH_SIZE))
    assert time_step.observation.shape == (BATCH_SIZE, 6, 3, 3)
    assert not np.any(cube.is_solved(
        tf.reshape(time_step.observation, [BATCH_SIZE, 54])))
  assert_time_steps_equal(env.current_time_step(), time_step)


def test_solving_ends_the_episode_and_the_next_step_restarts(cube, env):
  time_step = env.reset()
  time_step = env.step(solving_actions(cube, time_step.observation))
  np.testing.assert_array_equal(time_step.step_type, [LAST] * BATCH_SIZE)
  np.testing.assert_array_equal(time_step.reward, np.ones(BATCH_SIZE))
  np.testing.assert_array_equal(time_step.discount, np.zeros(BATCH_SIZE))
  np.testing.assert_array_equal(
      cube.is_solved(tf.reshape(time_step.observation, [BATCH_SIZE, 54])),
      [True] * BATCH_SIZE)
  # The action is ignored: every cube is a new one-move scramble.
  time_step = env.step(tf.zeros([BATCH_SIZE], tf.int32))
  np.testing.assert_array_equal(time_step.step_type, [FIRST] * BATCH_SIZE)
  np.testing.assert_array_equal(time_step.reward, np.zeros(BATCH_SIZE))
  np.testing.assert_array_equal(time_step.discount, np.ones(BATCH_SIZE))
  solving_actions(cube, time_step.observation)
  assert_time_steps_equal(env.current_time_step(), time_step)


def test_only_finished_episodes_restart(cube, env):
  observation = env.reset().observation
  solving = solving_actions(cube, observation)
  # Environment 0 solves its cube; the others turn the next face over.
  actions = tf.where(tf.range(BATCH_SIZE) == 0, solving, (solving + 3) % 18)
  time_step = env.step(actions)
  np.testing.assert_array_equal(time_step.step_type, [LAST, MID, MID, MID])
  np.testing.assert_array_equal(time_step.reward, [1.0, 0.0, 0.0, 0.0])
  np.testing.assert_array_equal(time_step.discount, [0.0, 1.0, 1.0, 1.0])
  previous = time_step.observation
  time_step = env.step(actions)
  np.testing.assert_array_equal(time_step.step_type, [FIRST, MID, MID, MID])
  expected = cube.observe(cube.step(cube.state_from_observation(previous),
                                    actions).state)
  np.testing.assert_array_equal(time_step.observation[1:], expected[1:])
  assert not np.array_equal(time_step.observation[0], expected[0])
  # The time limit ends the episodes that are still running.
  time_step = env.step(actions)
  np.testing.assert_array_equal(time_step.step_type, [MID, LAST, LAST, LAST])
  np.testing.assert_array_equal(time_step.reward, np.zeros(BATCH_SIZE))
  np.testing.assert_array_equal(time_step.discount, [1.0, 0.0, 0.0, 0.0])


def test_tf_function_matches_eager_and_seeds_matter(cube):
  eager_env = model_lib.ModelEnvironment(cube, BATCH_SIZE, seed=1)
  graph_env = model_lib.ModelEnvironment(cube, BATCH_SIZE, seed=1)
  other_env = model_lib.ModelEnvironment(cube, BATCH_SIZE, seed=2)
  graph_step = tf.function(graph_env.step)
  for i in range(5):
    actions = tf.constant([i, 2 * i, 3 * i, 17], tf.int32)
    expected = eager_env.step(actions)
    assert_time_steps_equal(graph_step(actions), expected)
    assert_time_steps_equal(graph_env.current_time_step(), expected)
  assert graph_step.experimental_get_tracing_count() == 1
  assert_time_steps_equal(tf.function(graph_env.reset)(), eager_env.reset())
  assert not np.array_equal(other_env.reset().observation,
                            eager_env.reset().observation)


def test_dynamic_step_driver_in_tf_function(env):
  policy = random_tf_policy.RandomTFPolicy(env.time_step_spec(),
                                           env.action_spec())
  num_episodes = tf_metrics.NumberOfEpisodes()
  env_steps = tf_metrics.EnvironmentSteps()
  driver = dynamic_step_driver.DynamicStepDriver(
      env, policy, observers=[num_episodes, env_steps],
      num_steps=4 * BATCH_SIZE)
  time_step, _ = common.function(driver.run)()
  assert time_step.observation.shape == (BATCH_SIZE, 6, 3, 3)
  assert env_steps.result().numpy() >= 4 * BATCH_SIZE
  # With a time limit of 3 every environment finishes at least one episode.
  assert num_episodes.result().numpy() >= BATCH_SIZE
  assert_time_steps_equal(env.current_time_step(), time_step)


def test_checkpoint_round_trip_continues_identically(cube, env, tmp_path):
  actions = [tf.constant([i, i + 5, i + 9, 17 - i], tf.int32)
             for i in range(6)]
  for action in actions[:2]:
    env.step(action)
  saved_time_step = env.current_time_step()
  path = tf.train.Checkpoint(env=env).save(str(tmp_path / 'ckpt'))
  continued = [env.step(action) for action in actions[2:]]

  restored_env = model_lib.ModelEnvironment(cube, BATCH_SIZE, seed=0)
  restored_env.step(actions[0])  # Changes the state, to be overwritten.
  tf.train.Checkpoint(env=restored_env).restore(path).assert_consumed()
  assert_time_steps_equal(restored_env.current_time_step(), saved_time_step)
  for action, expected in zip(actions[2:], continued):
    assert_time_steps_equal(restored_env.step(action), expected)
  # The episodes restarted after the checkpoint were drawn identically.
  step_types = np.stack([t.step_type for t in continued])
  assert np.any(step_types == FIRST)


def test_py_environment_replays_the_tf_environment_exactly(cube):
  """Same model, batch and seed: the same episodes, as NumPy arrays."""
  tf_env = model_lib.ModelEnvironment(cube, batch_size=BATCH_SIZE, seed=3)
  py_env = model_lib.ModelPyEnvironment(cube, batch_size=BATCH_SIZE, seed=3)
  assert py_env.batched and py_env.batch_size == BATCH_SIZE
  expected, actual = tf_env.reset(), py_env.reset()
  actions = np.random.default_rng(0).integers(0, 18, size=(12, BATCH_SIZE))
  step_types = []
  for action in actions:
    assert_time_steps_equal(actual, expected)
    expected = tf_env.step(tf.constant(action, tf.int32))
    actual = py_env.step(action)
    assert all(isinstance(x, np.ndarray) for x in tf.nest.flatten(actual))
    step_types.append(actual.step_type)
  assert_time_steps_equal(actual, expected)
  # The 3-step limit ended and restarted episodes along the way.
  assert set(np.concatenate(step_types).tolist()) == {
      int(FIRST), int(MID), int(LAST)}


def test_py_environment_seeds_give_different_episodes(cube):
  first = model_lib.ModelPyEnvironment(cube, batch_size=16, seed=0).reset()
  again = model_lib.ModelPyEnvironment(cube, batch_size=16, seed=0).reset()
  other = model_lib.ModelPyEnvironment(cube, batch_size=16, seed=1).reset()
  np.testing.assert_array_equal(first.observation, again.observation)
  assert not np.array_equal(first.observation, other.observation)
