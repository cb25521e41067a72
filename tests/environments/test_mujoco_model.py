"""The MuJoCo planning model against gymnasium's own v5 environments."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from environments import model as model_lib
from environments import mujoco_model
from environments import mujoco_tasks
from tf_spo import config as config_lib
from tf_spo import networks
from tf_spo import search

TASKS = ('halfcheetah', 'ant', 'humanoid')
TIME_LIMIT = 60


@pytest.fixture(scope='module', params=TASKS)
def model(request):
  return mujoco_model.MujocoModel(mujoco_tasks.task(request.param),
                                  time_limit=TIME_LIMIT, num_threads=2)


def _state(particles, steps):
  """The TF planning state of a numpy batch of particles."""
  return {'physics': tf.constant(particles.physics),
          'observation': tf.constant(particles.observation),
          'position': tf.constant(particles.position),
          'steps': tf.constant([steps], tf.int32)}


def test_matches_gymnasium_over_200_steps(model):
  """From the real env's state, the model predicts env.step to 1e-6."""
  simulator = model.simulator
  task = simulator.task
  env = mujoco_model.make_gym_env(task, TIME_LIMIT)
  env.action_space.seed(1)
  observation, _ = env.reset(seed=1)
  data = env.unwrapped.data
  steps = 0
  ends = {'terminated': 0, 'truncated': 0}
  for t in range(200):
    if t == 100 and task.name != 'halfcheetah':
      # Lift the torso above the healthy range: the next step terminates.
      qpos = data.qpos.copy()
      qpos[2] = 2.5
      env.unwrapped.set_state(qpos, data.qvel.copy())
      observation = env.unwrapped._get_obs()
    particles = simulator.particles_of(data, observation)
    action = env.action_space.sample()
    predicted = simulator.step(particles, action[None])
    model_step = model.step(_state(particles, steps), action[None])
    observation, reward, terminated, truncated, _ = env.step(action)
    steps += 1
    np.testing.assert_allclose(predicted.particles.observation[0],
                               observation, rtol=0, atol=1e-6)
    assert abs(predicted.reward[0] - reward) <= 1e-6
    assert predicted.terminated[0] == terminated
    np.testing.assert_allclose(
        model_step.state['observation'].numpy()[0], observation, rtol=0,
        atol=1e-6)
    assert model_step.reward.numpy()[0] == np.float32(predicted.reward[0])
    assert model_step.discount.numpy()[0] == (0.0 if terminated else 1.0)
    assert model_step.done.numpy()[0] == (terminated or truncated)
    if terminated or truncated:
      ends['terminated' if terminated else 'truncated'] += 1
      observation, _ = env.reset()
      steps = 0
  env.close()
  if task.name != 'halfcheetah':
    assert ends['terminated'] >= 1
  if task.name != 'humanoid':
    assert ends['truncated'] >= 1


def test_reset_matches_gymnasium_reset(model):
  """A reset particle observes what gymnasium's reset returns."""
  simulator = model.simulator
  env = mujoco_model.make_gym_env(simulator.task, TIME_LIMIT)
  observation, _ = env.reset(seed=3)
  particles = simulator.particles_of(env.unwrapped.data)
  np.testing.assert_array_equal(particles.observation[0], observation)
  env.close()


def test_step_is_deterministic_and_thread_count_free(model):
  simulator = model.simulator
  particles = simulator.reset(np.random.default_rng(0), 6)
  action = np.random.default_rng(1).uniform(
      -1, 1, [6, simulator.action_size]).astype(np.float32)
  first = simulator.step(particles, action)
  second = simulator.step(particles, action)
  single = mujoco_model.ParticleSimulator(simulator.task, num_threads=1)
  third = single.step(particles, action)
  for other in (second, third):
    for a, b in zip(tf.nest.flatten(first), tf.nest.flatten(other)):
      np.testing.assert_array_equal(a, b)


def test_reset_noise_is_seeded(model):
  state = model.reset(4, tf.constant([5, 0], tf.int64))
  again = model.reset(4, tf.constant([5, 0], tf.int64))
  other = model.reset(4, tf.constant([6, 0], tf.int64))
  np.testing.assert_array_equal(state['physics'], again['physics'])
  assert not np.array_equal(state['physics'], other['physics'])
  assert state['steps'].numpy().tolist() == [0] * 4
  # The noise differs per episode and stays within the task's scale.
  qpos = state['physics'].numpy()[:, 1:1 + model.simulator.model.nq]
  init = model.simulator.model.qpos0
  scale = model.simulator.task.reset_noise_scale
  assert np.all(np.abs(qpos - init) <= scale)
  assert not np.array_equal(qpos[0], qpos[1])


def test_specs_match_observe(model):
  state = model.reset(2, tf.constant([0, 0], tf.int64))
  observation = model.observe(state)
  spec = model.observation_spec()
  tf.nest.assert_same_structure(observation, spec)
  for value, value_spec in zip(tf.nest.flatten(observation),
                               tf.nest.flatten(spec)):
    assert value.dtype == value_spec.dtype
    assert value.shape[1:] == value_spec.shape
  assert model.action_spec().shape == [model.simulator.action_size]
  assert not model.xla_compatible


def test_non_finite_and_diverged_particles_terminate():
  simulator = mujoco_model.ParticleSimulator(mujoco_tasks.task('ant'))
  particles = simulator.reset(np.random.default_rng(0), 4)
  physics = particles.physics.copy()
  physics[0, 3] = np.nan                      # non-finite state
  physics[1, 1 + simulator.model.nq] = 1e12   # diverges: MuJoCo resets it
  particles = particles._replace(physics=physics)
  action = np.zeros([4, simulator.action_size], np.float32)
  action[2, 0] = np.inf                       # non-finite action
  result = simulator.step(particles, action)
  assert result.terminated.tolist() == [True, True, True, False]
  assert result.reward[:3].tolist() == [0.0, 0.0, 0.0]
  assert np.all(result.particles.observation[:3] == 0.0)
  for values in result.particles:
    assert np.isfinite(values).all()
  assert np.isfinite(result.reward).all()


def test_search_with_a_non_finite_root_keeps_finite_weights():
  model = mujoco_model.MujocoModel(mujoco_tasks.task('halfcheetah'),
                                   time_limit=TIME_LIMIT)
  state = model.reset(3, tf.constant([0, 0], tf.int64))
  physics = state['physics'].numpy()
  physics[1, 2] = np.inf
  state = dict(state, physics=tf.constant(physics))
  network = networks.PolicyValueNetwork(
      model.network_input_spec(), model.action_spec(), torso_units=16,
      num_residual_blocks=0, head_units=16)
  network.create_variables()
  config = config_lib.SearchConfig(num_particles=4, depth=3,
                                   resample_period=1)
  output = search.smc_search(
      model.observe(state), model, lambda x: network(x)[0],
      tf.constant(1.0), config, tf.constant([0, 1], tf.int64))
  for value in (output.atom_weights, output.value, output.root_value):
    assert np.isfinite(value.numpy()).all()
  np.testing.assert_allclose(output.atom_weights.numpy().sum(-1), 1.0,
                             atol=1e-5)


def test_self_check_detects_a_different_task():
  """A task differing from gymnasium's (as another version would) fails."""
  changed = dataclasses.replace(mujoco_tasks.task('halfcheetah'),
                                ctrl_cost_weight=0.2)
  with pytest.raises(RuntimeError, match=r'disagrees with gymnasium .* the '
                     r'reward of step 0'):
    mujoco_model.MujocoModel(changed)


def test_bad_arguments_name_the_argument():
  with pytest.raises(ValueError, match='env must be one of the MuJoCo'):
    mujoco_tasks.task('walker')
  with pytest.raises(ValueError, match='num_threads'):
    mujoco_model.ParticleSimulator(mujoco_tasks.task('ant'), num_threads=0)
  with pytest.raises(ValueError, match='time_limit'):
    mujoco_model.MujocoModel(mujoco_tasks.task('ant'), time_limit=0)


def test_model_environment_runs_the_simulator():
  """The model also serves as a TF-Agents environment (evaluation)."""
  model = mujoco_model.MujocoModel(mujoco_tasks.task('halfcheetah'),
                                   time_limit=3)
  env = model_lib.ModelEnvironment(model, batch_size=2, seed=0)
  action = tf.zeros([2, model.simulator.action_size])
  step_types = [int(env.step(action).step_type[0]) for _ in range(4)]
  assert step_types == [1, 1, 2, 0]
