"""A stateless toy model with known per-action rewards, for testing planners.

Every step, action `a` earns `rewards[a]` and ends the episode (termination,
discount 0) when `terminal[a]`. The observation never changes, so with a
network of fixed logits and values the advantages of every particle are known
in closed form: a one-step bandit when all actions are terminal, a
zero-reward absorbing chain when none is and rewards are zero.
"""

from typing import Sequence

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
