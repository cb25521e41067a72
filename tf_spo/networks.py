"""Policy/value network of SPO and TRT-SMC for discrete actions.

A shared torso with a policy head, a value head (paper 000, appendix A.2.2)
and optionally a Q-value head (paper 001, eq. 9): integer (categorical)
observations such as cube stickers are embedded, float observations are
flattened, then a residual MLP torso feeds one-layer heads.
"""


import tensorflow as tf
from tf_agents.networks import network
from tf_agents.specs import tensor_spec


class _ResidualBlock(tf.keras.layers.Layer):
  """x + Dense(relu(Dense(x))), then relu."""

  def __init__(self, units: int, **kwargs):
    super().__init__(**kwargs)
    self._hidden = tf.keras.layers.Dense(units, activation='relu')
    self._output = tf.keras.layers.Dense(units)

  def call(self, inputs):
    return tf.keras.activations.relu(inputs + self._output(self._hidden(inputs)))


class PolicyValueNetwork(network.Network):
  """Maps observations to (logits [B, A], values [B][, Q-values [B, A]]).

  Integer observations with a bounded spec are treated as categorical
  features and embedded; others are cast to float and flattened.
  """

  def __init__(self,
               observation_spec: tensor_spec.TensorSpec,
               action_spec: tensor_spec.BoundedTensorSpec,
               torso_units: int = 256,
               num_residual_blocks: int = 2,
               head_units: int = 256,
               embedding_dim: int = 4,
               q_head: bool = False,
               name: str = 'PolicyValueNetwork'):
    """Creates the network.

    Args:
      observation_spec: spec of one observation (no batch dimension).
      action_spec: scalar discrete `BoundedTensorSpec` of the actions.
      torso_units: width of the residual torso (>= 1).
      num_residual_blocks: residual blocks in the torso (>= 0).
      head_units: width of the hidden layer of each head (>= 1).
      embedding_dim: embedding size of categorical observation entries.
      q_head: also output Q-values (needed by the twisted proposal).
      name: network name.

    Raises:
      ValueError: for a non-discrete or non-scalar action spec, or
        non-positive sizes.
    """
    super().__init__(input_tensor_spec=observation_spec, state_spec=(),
                     name=name)
    if (not tensor_spec.is_discrete(action_spec) or action_spec.shape.rank
        != 0):
      raise ValueError('action_spec must be a scalar discrete '
                       f'BoundedTensorSpec, got {action_spec}.')
    for arg, value, low in (('torso_units', torso_units, 1),
                            ('num_residual_blocks', num_residual_blocks, 0),
                            ('head_units', head_units, 1),
                            ('embedding_dim', embedding_dim, 1)):
      if value < low:
        raise ValueError(f'--{arg} must be >= {low}, got {value}.')
    num_actions = int(action_spec.maximum) - int(action_spec.minimum) + 1
    self._categorical = observation_spec.dtype.is_integer
    if self._categorical:
      self._obs_minimum = int(observation_spec.minimum.min())
      num_categories = int(observation_spec.maximum.max()) - self._obs_minimum + 1
      self._embedding = tf.keras.layers.Embedding(num_categories, embedding_dim)
    self._flatten = tf.keras.layers.Flatten()
    self._torso_input = tf.keras.layers.Dense(torso_units, activation='relu')
    self._blocks = [_ResidualBlock(torso_units)
                    for _ in range(num_residual_blocks)]
    self._policy_head = tf.keras.Sequential([
        tf.keras.layers.Dense(head_units, activation='relu'),
        tf.keras.layers.Dense(num_actions)])
    self._value_head = tf.keras.Sequential([
        tf.keras.layers.Dense(head_units, activation='relu'),
        tf.keras.layers.Dense(1)])
    self._q_head = tf.keras.Sequential([
        tf.keras.layers.Dense(head_units, activation='relu'),
        tf.keras.layers.Dense(num_actions)]) if q_head else None

  @property
  def has_q_head(self) -> bool:
    return self._q_head is not None

  def call(self, observation, step_type=None, network_state=(),
           training=False):
    """Returns ((logits, values[, q_values]), network_state)."""
    del step_type, training
    if self._categorical:
      x = self._embedding(tf.cast(observation, tf.int32) - self._obs_minimum)
    else:
      x = tf.cast(observation, tf.float32)
    x = self._torso_input(self._flatten(x))
    for block in self._blocks:
      x = block(x)
    logits = self._policy_head(x)
    value = tf.squeeze(self._value_head(x), axis=-1)
    if self._q_head is None:
      return (logits, value), network_state
    return (logits, value, self._q_head(x)), network_state
