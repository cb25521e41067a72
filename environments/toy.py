"""Stateless toy models with known answers, for testing planners.

`ToyModel` (discrete): every step, action `a` earns `rewards[a]` and ends the
episode (termination, discount 0) when `terminal[a]`. The observation never
changes, so with a network of fixed logits and values the advantages of every
particle are known in closed form: a one-step bandit when all actions are
terminal, a zero-reward absorbing chain when none is and rewards are zero.

`QuadraticBandit` (continuous): one step with reward -k * ||a - c||^2, whose
SPO target under a Gaussian prior is a known Gaussian.
"""

from typing import Optional, Sequence

import numpy as np
import tensorflow as tf
from tf_agents.specs import tensor_spec

from environments import model as model_lib


class ToyModel(model_lib.EnvironmentModel):
  """Per-action rewards and terminations; state is the step count."""

  def __init__(self, rewards: Sequence[float], terminal: Sequence[bool],
               name: str = 'toy_model'):
    """Creates the model.

    Args:
      rewards: reward of each action, length A >= 1.
      terminal: whether each action terminates the episode, length A.
      name: name of the module.

    Raises:
      ValueError: if the lengths differ or are 0.
    """
    super().__init__(name=name)
    if not rewards or len(rewards) != len(terminal):
      raise ValueError('rewards and terminal must have the same length >= 1, '
                       f'got {len(rewards)} and {len(terminal)}.')
    self._rewards = tf.constant(rewards, tf.float32)
    self._terminal = tf.constant(terminal, tf.bool)
    self._num_actions = len(rewards)

  def observation_spec(self):
    return tensor_spec.TensorSpec((1,), tf.float32, name='observation')

  def action_spec(self):
    return tensor_spec.BoundedTensorSpec((), tf.int32, 0,
                                         self._num_actions - 1, name='action')

  def reset(self, batch_size, seed):
    del seed
    return tf.zeros([batch_size], tf.int32)

  def step(self, state, action):
    done = tf.gather(self._terminal, action)
    return model_lib.ModelStep(
        state=state + 1,
        reward=tf.gather(self._rewards, action),
        discount=1.0 - tf.cast(done, tf.float32),
        done=done)

  def observe(self, state):
    return tf.zeros([tf.shape(state)[0], 1], tf.float32)

  def state_from_observation(self, observation):
    return tf.zeros([tf.shape(observation)[0]], tf.int32)


class QuadraticBandit(model_lib.EnvironmentModel):
  """A one-step continuous bandit: reward -k * ||a - c||^2, then the end.

  With a Gaussian prior N(mu, sigma^2) and V = 0 the advantage of action a is
  its reward, so the SPO target pi * exp(A / eta) / Z is the Gaussian with
  precision 1 / sigma^2 + 2k / eta and mean
  (mu / sigma^2 + 2k c / eta) / precision, per action dimension.
  Actions are unbounded (a `TensorSpec`), so the policy is not squashed.
  """

  def __init__(self, curvature: float, centre: Sequence[float],
               name: str = 'quadratic_bandit'):
    """Creates the model.

    Args:
      curvature: k > 0.
      centre: c, the best action, length D >= 1.
      name: name of the module.

    Raises:
      ValueError: for k <= 0 or an empty centre.
    """
    super().__init__(name=name)
    if not curvature > 0 or not centre:
      raise ValueError('curvature must be > 0 and centre non-empty, got '
                       f'{curvature} and {centre}.')
    self._curvature = float(curvature)
    self._centre = tf.constant(centre, tf.float32)

  def observation_spec(self):
    return tensor_spec.TensorSpec((1,), tf.float32, name='observation')

  def action_spec(self):
    return tensor_spec.TensorSpec(self._centre.shape, tf.float32,
                                  name='action')

  def reset(self, batch_size, seed):
    del seed
    return tf.zeros([batch_size], tf.int32)

  def step(self, state, action):
    reward = -self._curvature * tf.reduce_sum(
        tf.square(action - self._centre), axis=-1)
    done = tf.ones_like(state, tf.bool)
    return model_lib.ModelStep(state=state + 1, reward=reward,
                               discount=tf.zeros_like(reward), done=done)

  def observe(self, state):
    return tf.zeros([tf.shape(state)[0], 1], tf.float32)

  def state_from_observation(self, observation):
    return tf.zeros([tf.shape(observation)[0]], tf.int32)


class RandomTree(model_lib.EnvironmentModel):
  """A complete A-ary tree of height H with seeded rewards, logits, values.

  Nodes are numbered heap-style (root 0, child a of node k is k * A + 1 + a);
  the state and the observation ([1] float32) are the node. Action a at node
  k earns `rewards[k, a]`; the episode ends on reaching depth H. `logits`
  [nodes, A] and `values` [nodes] are a fixed prior and critic for the
  search (a network reading them by node), so the exact SPO target of a
  depth-H search is enumerable: `exact_target`.
  """

  def __init__(self, num_actions: int, height: int, seed: int = 0,
               reward_scale: float = 1.0, value_scale: float = 1.0,
               logit_scale: float = 1.0, name: str = 'random_tree'):
    """Creates the tree.

    Args:
      num_actions: A >= 1.
      height: H >= 1, actions from the root to a leaf.
      seed: seed of the tables.
      reward_scale: std of the normal rewards.
      value_scale: std of the normal values (0 at the leaves).
      logit_scale: std of the normal prior logits.
      name: name of the module.

    Raises:
      ValueError: for A < 1 or H < 1.
    """
    super().__init__(name=name)
    if num_actions < 1 or height < 1:
      raise ValueError('num_actions and height must be >= 1, got '
                       f'{num_actions} and {height}.')
    self.num_actions, self.height = num_actions, height
    self.num_inner = sum(num_actions**d for d in range(height))
    num_nodes = self.num_inner + num_actions**height
    rng = np.random.default_rng(seed)
    self.rewards = (reward_scale * rng.normal(
        size=[num_nodes, num_actions])).astype(np.float32)
    self.logits = (logit_scale * rng.normal(
        size=[num_nodes, num_actions])).astype(np.float32)
    self.values = (value_scale * rng.normal(size=[num_nodes])).astype(
        np.float32)
    self.values[self.num_inner:] = 0.0

  def observation_spec(self):
    return tensor_spec.TensorSpec((1,), tf.float32, name='observation')

  def action_spec(self):
    return tensor_spec.BoundedTensorSpec((), tf.int32, 0,
                                         self.num_actions - 1, name='action')

  def reset(self, batch_size, seed):
    del seed
    return tf.zeros([batch_size], tf.int32)

  def step(self, state, action):
    index = tf.stack([state, action], axis=-1)
    child = state * self.num_actions + 1 + action
    done = child >= self.num_inner
    return model_lib.ModelStep(
        state=child, reward=tf.gather_nd(self.rewards, index),
        discount=1.0 - tf.cast(done, tf.float32), done=done)

  def observe(self, state):
    return tf.cast(state, tf.float32)[:, None]

  def state_from_observation(self, observation):
    return tf.cast(observation[:, 0], tf.int32)

  def exact_target(self, eta: float, discount: float,
                   horizon: Optional[int] = None) -> np.ndarray:
    """The exact SPO target q(a_0) of a depth-h search from the root.

    q(a_0) is proportional to the sum over the paths of h steps from the
    root starting with a_0 of pi(path) * exp(sum_t A_t / eta), with
    A_t = r_t + discount * V(s_{t+1}) - V(s_t) (V = 0 at the leaves).

    Args:
      eta: the temperature.
      discount: the discount of the advantages.
      horizon: h in [1, H], the search's depth (or its policy target's
        horizon); None: H.

    Returns:
      [A] float64 probabilities.
    """
    horizon = horizon or self.height
    if not 1 <= horizon <= self.height:
      raise ValueError(f'horizon: expected in [1, {self.height}], got '
                       f'{horizon}.')
    actions = np.arange(self.num_actions)

    def log_masses(node, depth):
      """Per first action a: log sum of pi(path) exp(sum A / eta)."""
      children = node * self.num_actions + 1 + actions
      log_pi = self.logits[node] - np.logaddexp.reduce(self.logits[node])
      advantage = (self.rewards[node] + discount * self.values[children]
                   - self.values[node])
      if depth + 1 == horizon:
        below = np.zeros(self.num_actions)
      else:
        below = np.array([np.logaddexp.reduce(log_masses(c, depth + 1))
                          for c in children])
      return (log_pi.astype(np.float64) + advantage / eta + below)

    root = log_masses(0, 0)
    return np.exp(root - np.logaddexp.reduce(root))
