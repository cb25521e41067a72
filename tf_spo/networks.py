"""Policy/value network of SPO and TRT-SMC, for discrete and continuous actions.

A shared torso with a policy head, a value head (paper 000, appendix A.2.2)
and optionally a Q-value head (paper 001, eq. 9): integer (categorical)
observations such as cube stickers are embedded, float observations are
flattened, then a residual MLP torso feeds one-layer heads. The outputs are a
named `NetworkOutput`; the policy head gives the parameters of the action
space's TFP distribution (`tf_spo.action_spaces`).
"""

from typing import Any, NamedTuple

import numpy as np
import tensorflow as tf
from tf_agents.networks import network
from tf_agents.specs import tensor_spec

from tf_spo import action_spaces

# Smallest standard deviation of a Gaussian policy: keeps its log-density
# and the M-step's weighted likelihood finite.
MIN_SCALE = 1e-3


class NetworkOutput(NamedTuple):
  """Named outputs of a policy/value network for a batch of M inputs.

  Attributes:
    policy: parameters of the policy distribution: logits [M, A] for
      discrete actions, `GaussianParams` ([M, D] loc and scale) for
      continuous ones. `action_spaces.for_spec(spec).distribution(policy)`
      is the TFP distribution.
    value: [M] float32 state values V(s).
    q: input of `q_values`, or () without a Q head: Q-values [M, A] for
      discrete actions, critic features [M, F] for continuous ones.
  """
  policy: Any
  value: tf.Tensor
  q: Any = ()


class _ResidualBlock(tf.keras.layers.Layer):
  """x + Dense(relu(Dense(x))), then relu."""

  def __init__(self, units: int, **kwargs):
    super().__init__(**kwargs)
    self._hidden = tf.keras.layers.Dense(units, activation='relu')
    self._output = tf.keras.layers.Dense(units)

  def call(self, inputs):
    return tf.keras.activations.relu(
        inputs + self._output(self._hidden(inputs)))


class PolicyValueNetwork(network.Network):
  """Maps network inputs to a `NetworkOutput` (policy, value[, Q]).

  Integer observations with a bounded spec are treated as categorical
  features and embedded; others are cast to float and flattened. Discrete
  actions get a logits head and, with `q_head`, Q-values of every action;
  continuous actions get a diagonal Gaussian head (softplus scale) and, with
  `q_head`, a critic Q(s, a) on the torso features and the action.
  """

  def __init__(self,
               observation_spec: tensor_spec.TensorSpec,
               action_spec: tensor_spec.TensorSpec,
               torso_units: int = 256,
               num_residual_blocks: int = 2,
               head_units: int = 256,
               embedding_dim: int = 4,
               q_head: bool = False,
               initial_scale: float = 1.0,
               name: str = 'PolicyValueNetwork'):
    """Creates the network.

    Args:
      observation_spec: spec of one network input (no batch dimension).
      action_spec: scalar discrete `BoundedTensorSpec`, or float spec [D].
      torso_units: width of the residual torso (>= 1).
      num_residual_blocks: residual blocks in the torso (>= 0).
      head_units: width of the hidden layer of each head (>= 1).
      embedding_dim: embedding size of categorical observation entries.
      q_head: also output Q-values (needed by the twisted proposal).
      initial_scale: Gaussian policies: standard deviation of the
        pre-squash actions at initialisation (> MIN_SCALE).
      name: network name.

    Raises:
      ValueError: naming `action_spec` for an action spec no action space
        serves, or the size argument out of range.
    """
    super().__init__(input_tensor_spec=observation_spec, state_spec=(),
                     name=name)
    self._action_space = action_spaces.for_spec(action_spec)
    for arg, value, low in (('torso_units', torso_units, 1),
                            ('num_residual_blocks', num_residual_blocks, 0),
                            ('head_units', head_units, 1),
                            ('embedding_dim', embedding_dim, 1)):
      if value < low:
        raise ValueError(f'--{arg} must be >= {low}, got {value}.')
    if not initial_scale > MIN_SCALE:
      raise ValueError(f'--initial_scale must be > {MIN_SCALE}, got '
                       f'{initial_scale}.')
    self._categorical = observation_spec.dtype.is_integer
    if self._categorical:
      self._obs_minimum = int(observation_spec.minimum.min())
      num_categories = (int(observation_spec.maximum.max()) -
                        self._obs_minimum + 1)
      self._embedding = tf.keras.layers.Embedding(num_categories, embedding_dim)
    self._flatten = tf.keras.layers.Flatten()
    self._torso_input = tf.keras.layers.Dense(torso_units, activation='relu')
    self._blocks = [_ResidualBlock(torso_units)
                    for _ in range(num_residual_blocks)]
    discrete = self._action_space.is_discrete
    policy_size = (self._action_space.num_actions if discrete
                   else 2 * self._action_space.action_size)
    self._policy_head = tf.keras.Sequential([
        tf.keras.layers.Dense(head_units, activation='relu'),
        tf.keras.layers.Dense(policy_size)])
    self._value_head = tf.keras.Sequential([
        tf.keras.layers.Dense(head_units, activation='relu'),
        tf.keras.layers.Dense(1)])
    self._scale_offset = float(np.log(np.expm1(initial_scale - MIN_SCALE)))
    self._q_head = None
    if q_head:
      self._q_head = tf.keras.Sequential([
          tf.keras.layers.Dense(head_units, activation='relu'),
          tf.keras.layers.Dense(self._action_space.num_actions or 1)])
      if not discrete:
        # Q(s, a) is called outside `call`; build it with the network.
        self._q_head.build(
            (None, torso_units + self._action_space.action_size))

  @property
  def has_q_head(self) -> bool:
    return self._q_head is not None

  @property
  def action_space(self) -> action_spaces.ActionSpace:
    return self._action_space

  def call(self, observation, step_type=None, network_state=(),
           training=False):
    """Returns (`NetworkOutput`, network_state) for inputs [M, ...]."""
    del step_type, training
    if self._categorical:
      x = self._embedding(tf.cast(observation, tf.int32) - self._obs_minimum)
    else:
      x = tf.cast(observation, tf.float32)
    x = self._torso_input(self._flatten(x))
    for block in self._blocks:
      x = block(x)
    policy = self._policy_head(x)
    if not self._action_space.is_discrete:
      loc, raw_scale = tf.split(policy, 2, axis=-1)
      policy = action_spaces.GaussianParams(
          loc, tf.nn.softplus(raw_scale + self._scale_offset) + MIN_SCALE)
    value = tf.squeeze(self._value_head(x), axis=-1)
    q = ()
    if self._q_head is not None:
      q = self._q_head(x) if self._action_space.is_discrete else x
    return NetworkOutput(policy, value, q), network_state

  def q_values(self, q, actions: tf.Tensor) -> tf.Tensor:
    """Q(s, a) of K environment actions per input.

    Args:
      q: `NetworkOutput.q` of M inputs.
      actions: [M, K] discrete or [M, K, D] continuous environment actions.

    Returns:
      [M, K] float32 Q-values.
    """
    if self._action_space.is_discrete:
      return tf.gather(q, actions, batch_dims=1)
    features = tf.broadcast_to(
        q[:, None], tf.concat([tf.shape(actions)[:2], tf.shape(q)[1:]], 0))
    inputs = tf.concat([features, tf.cast(actions, tf.float32)], axis=-1)
    return tf.squeeze(self._q_head(inputs), axis=-1)
