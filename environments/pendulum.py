"""Gymnasium's `Pendulum-v1` as an `EnvironmentModel`.

The inverted pendulum swing-up: a pendulum hangs from a fixed pivot and a
bounded torque at the pivot must swing it up and keep it upright (theta = 0,
angles measured from upright). The dynamics, reward, start distribution and
time limit are those of gymnasium's `PendulumEnv` wrapped in its 200-step
`TimeLimit`, computed in float32 with the same order of operations, so each
step agrees with gymnasium to float32 rounding (gymnasium computes in
float64 under NumPy 1.x).

The observation [cos theta, sin theta, theta_dot] does not determine the step
count, so the model observes a `PlanningObservation` that carries its state.
"""

import gymnasium as gym
import numpy as np
import tensorflow as tf
from tf_agents.specs import tensor_spec
from tf_agents.trajectories import time_step as ts

from environments import model as model_lib

# The constants of gymnasium's PendulumEnv.
_MAX_SPEED = 8.0
_MAX_TORQUE = 2.0
_DT = 0.05
_MASS = 1.0
_LENGTH = 1.0
# Episodes start with theta ~ U[-pi, pi], theta_dot ~ U[-1, 1].
_MAX_INITIAL_SPEED = 1.0
# An explicit algorithm: with 'auto_select', XLA-compiled and uncompiled
# stateless sampling differ for the same seed.
_RNG_ALG = 'philox'
# Uniform floats are drawn as integers in [-2^23, 2^23), scaled.
_UNIFORM_BITS = 23


def _uniform_symmetric(shape, seed, bound):
  """Draws float32 samples uniformly from a grid on [-bound, bound).

  The grid has 2^24 evenly spaced points starting at -bound.

  Float `stateless_uniform` draws different numbers under XLA than eagerly in
  TF 2.15, even with an explicit algorithm, while integer draws agree, so
  integers are drawn and scaled by a single (FMA-free) multiplication.

  Args:
    shape: The shape of the result, a list of Python ints or int32 scalars.
    seed: int64 [2], the stateless random seed.
    bound: Python float > 0.

  Returns:
    float32 tensor of shape `shape` with values in [-bound, bound).
  """
  ticks = tf.random.stateless_uniform(
      shape, seed, minval=-2**_UNIFORM_BITS, maxval=2**_UNIFORM_BITS,
      dtype=tf.int32, alg=_RNG_ALG)
  return tf.cast(ticks, tf.float32) * (bound / 2**_UNIFORM_BITS)


def angle_normalize(x):
  """Wraps angles into [-pi, pi), as gymnasium's `angle_normalize`.

  Args:
    x: float32 [...], angles in radians.

  Returns:
    float32 [...], `((x + pi) % (2 pi)) - pi` with a floored modulo.
  """
  return tf.math.floormod(x + np.pi, 2 * np.pi) - np.pi


class Pendulum(model_lib.EnvironmentModel):
  """Swinging up a pendulum by a bounded torque (gymnasium's `Pendulum-v1`).

  State: dict with 'theta', float32 [B], the angle from upright in radians
  (not wrapped), 'theta_dot', float32 [B], the angular velocity, and 'steps',
  int32 [B], the number of steps taken in the episode. Action: float32 [B, 1],
  the torque, clipped to [-2, 2]. Observation: a `PlanningObservation` whose
  network input is float32 [B, 3], [cos theta, sin theta, theta_dot], and
  whose planning state is the state. Episodes start at theta ~ U[-pi, pi] and
  theta_dot ~ U[-1, 1]. The reward is -(theta^2 + 0.1 theta_dot^2 +
  0.001 u^2), with theta wrapped into [-pi, pi) and computed from the state
  before the step. Episodes never terminate: they are truncated (done, with
  discount 1.0) after `time_limit` steps.
  """

  def __init__(self, time_limit=200, g=10.0, name='pendulum'):
    """Creates the model.

    Args:
      time_limit: Python int >= 1, the number of steps per episode.
      g: Python float, the acceleration of gravity.
      name: Name of the module.

    Raises:
      ValueError: If `time_limit` is out of range.
    """
    if time_limit < 1:
      raise ValueError(f'time_limit must be >= 1, got {time_limit}.')
    super().__init__(name=name)
    self._time_limit = time_limit
    self._g = g
    # Computed in Python floats (float64), as gymnasium does, and rounded to
    # float32 once when multiplied with a tensor.
    self._gravity_coefficient = 3 * g / (2 * _LENGTH)
    self._torque_coefficient = 3.0 / (_MASS * _LENGTH**2)

  @property
  def time_limit(self):
    """The number of steps after which an episode is truncated."""
    return self._time_limit

  @property
  def g(self):
    """The acceleration of gravity."""
    return self._g

  def observation_spec(self):
    return model_lib.PlanningObservation(
        network_input=tensor_spec.BoundedTensorSpec(
            (3,), tf.float32, [-1.0, -1.0, -_MAX_SPEED],
            [1.0, 1.0, _MAX_SPEED], name='observation'),
        planning_state={
            'theta': tensor_spec.TensorSpec((), tf.float32, name='theta'),
            'theta_dot': tensor_spec.TensorSpec(
                (), tf.float32, name='theta_dot'),
            'steps': tensor_spec.TensorSpec((), tf.int32, name='steps'),
        })

  def action_spec(self):
    return tensor_spec.BoundedTensorSpec(
        (1,), tf.float32, -_MAX_TORQUE, _MAX_TORQUE, name='action')

  def reset(self, batch_size, seed):
    # Cast so that int32 and int64 seeds of the same value agree.
    theta_seed, theta_dot_seed = tf.unstack(
        tf.random.experimental.stateless_split(
            tf.cast(seed, tf.int64), 2, alg=_RNG_ALG))
    return {'theta': _uniform_symmetric([batch_size], theta_seed, np.pi),
            'theta_dot': _uniform_symmetric([batch_size], theta_dot_seed,
                                            _MAX_INITIAL_SPEED),
            'steps': tf.zeros([batch_size], tf.int32)}

  def step(self, state, action):
    theta, theta_dot = state['theta'], state['theta_dot']
    u = tf.clip_by_value(action[:, 0], -_MAX_TORQUE, _MAX_TORQUE)
    costs = (tf.square(angle_normalize(theta)) + 0.1 * tf.square(theta_dot) +
             0.001 * tf.square(u))
    new_theta_dot = theta_dot + (
        self._gravity_coefficient * tf.sin(theta) +
        self._torque_coefficient * u) * _DT
    new_theta_dot = tf.clip_by_value(new_theta_dot, -_MAX_SPEED, _MAX_SPEED)
    new_theta = theta + new_theta_dot * _DT
    steps = state['steps'] + 1
    done = steps >= self._time_limit
    return model_lib.ModelStep(
        state={'theta': new_theta, 'theta_dot': new_theta_dot,
               'steps': steps},
        reward=-costs,
        discount=tf.ones_like(costs),
        done=done,
    )

  def observe(self, state):
    theta = state['theta']
    network_input = tf.stack(
        [tf.cos(theta), tf.sin(theta), state['theta_dot']], axis=-1)
    return model_lib.PlanningObservation(
        network_input=network_input, planning_state=state)


def play_gymnasium(policy, model: 'Pendulum', num_episodes: int, seed: int,
                   network_input_only: bool = False) -> np.ndarray:
  """Plays a policy in gymnasium's own `Pendulum-v1`, one episode per env.

  `num_episodes` gymnasium environments, reset with seeds seed, seed + 1,
  ...; at each step the policy sees what `Pendulum.observe` would show of
  the environment's true state (gymnasium's observation, and the state it
  plans from), and gymnasium steps with its action and its own reward.

  Args:
    policy: anything with `action(time_step)` returning a step with
      `.action` [B, 1]: a `TFPolicy` or a policy loaded from a SavedModel.
    model: the `Pendulum` whose `observe` shows the states.
    num_episodes: episodes, played as one batch.
    seed: seed of the first environment's reset.
    network_input_only: give the policy only the network input (an exported
      network policy).

  Returns:
    [num_episodes] float64 episode returns (200 steps each).
  """
  envs = [gym.make('Pendulum-v1') for _ in range(num_episodes)]
  for index, env in enumerate(envs):
    env.reset(seed=seed + index)
  returns = np.zeros(num_episodes)
  for step in range(envs[0].spec.max_episode_steps):
    theta, theta_dot = np.array([env.unwrapped.state for env in envs]).T
    state = {'theta': tf.constant(theta, tf.float32),
             'theta_dot': tf.constant(theta_dot, tf.float32),
             'steps': tf.fill([num_episodes], step)}
    observation = model.observe(state)
    if network_input_only:
      observation = observation.network_input
    time_step = (ts.transition(observation, tf.zeros([num_episodes]),
                               tf.ones([num_episodes])) if step
                 else ts.restart(observation, num_episodes))
    action = policy.action(time_step).action
    for index, env in enumerate(envs):
      _, reward, _, _, _ = env.step(np.asarray(action[index], np.float32))
      returns[index] += reward
  return returns
