"""Policy/value networks of SPO and TRT-SMC, discrete and continuous actions.

`PolicyValueNetwork`: a shared torso with a policy head, a value head (paper
000, appendix A.2.2) and optionally a Q-value head (paper 001, eq. 9):
integer (categorical) observations such as cube stickers are embedded, float
observations are flattened, then a residual MLP torso feeds one-layer heads.
`MlpActorCriticNetwork`: separate actor and critic MLPs (paper 000, appendix
A.3, for continuous control), optionally reading observations normalised by
a running `ObservationNormalizer`. The outputs are a named `NetworkOutput`;
the policy head gives the parameters of the action space's TFP distribution
(`tf_spo.action_spaces`).
"""

from typing import Any, NamedTuple, Optional, Sequence

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


def _policy_size(action_space: action_spaces.ActionSpace) -> int:
  """Width of the policy head: A logits, or D locs and D raw scales."""
  if action_space.is_discrete:
    return action_space.num_actions
  return 2 * action_space.action_size


def _scale_offset(initial_scale: float) -> float:
  """The raw-scale offset giving `initial_scale` at a zero head output.

  Raises:
    ValueError: naming `initial_scale` unless it is > MIN_SCALE.
  """
  if not initial_scale > MIN_SCALE:
    raise ValueError(f'initial_scale must be > {MIN_SCALE}, got '
                     f'{initial_scale}.')
  return float(np.log(np.expm1(initial_scale - MIN_SCALE)))


def _check_loc_bound(loc_bound: float) -> float:
  """`loc_bound` if >= 0; raises ValueError naming it otherwise."""
  if not loc_bound >= 0.0:
    raise ValueError(f'loc_bound must be >= 0, got {loc_bound}.')
  return float(loc_bound)


def _policy_params(action_space, head_output, scale_offset, loc_bound):
  """The policy head's output as the action space's parameters.

  Args:
    action_space: the network's action space.
    head_output: [M, A] logits, or [M, 2 * D] Gaussian loc and raw scale.
    scale_offset: added to the raw scale before the softplus, so that a
      zero raw scale gives the initial standard deviation.
    loc_bound: b > 0 maps the raw loc x to b * tanh(x / b), so the
      pre-squash mean stays in (-b, b); 0 leaves it unbounded.

  Returns:
    The logits, or `GaussianParams` with scale > MIN_SCALE.
  """
  if action_space.is_discrete:
    return head_output
  loc, raw_scale = tf.split(head_output, 2, axis=-1)
  if loc_bound > 0.0:
    loc = loc_bound * tf.tanh(loc / loc_bound)
  return action_spaces.GaussianParams(
      loc, tf.nn.softplus(raw_scale + scale_offset) + MIN_SCALE)


class _ResidualBlock(tf.keras.layers.Layer):
  """x + f(relu(f(x))), then relu, with f a Dense or a 3x3 'same' Conv2D."""

  def __init__(self, units: int, conv: bool = False, **kwargs):
    super().__init__(**kwargs)
    make = ((lambda **kw: tf.keras.layers.Conv2D(units, 3, padding='same',
                                                 **kw)) if conv else
            (lambda **kw: tf.keras.layers.Dense(units, **kw)))
    self._hidden = make(activation='relu')
    self._output = make()

  def call(self, inputs):
    return tf.keras.activations.relu(
        inputs + self._output(self._hidden(inputs)))


class _PolicyValueBase(network.Network):
  """The heads' interface shared by the policy/value networks.

  Subclasses set `_action_space`, `_policy_head`, `_value_head`, `_q_head`
  (or None), `_scale_offset` and `_loc_bound`.
  """

  @property
  def has_q_head(self) -> bool:
    return self._q_head is not None

  @property
  def action_space(self) -> action_spaces.ActionSpace:
    return self._action_space

  def _outputs(self, actor_features: tf.Tensor, critic_features: tf.Tensor,
               critic_input: tf.Tensor) -> NetworkOutput:
    """The heads on the actor's and the critic's features [M, F].

    Args:
      actor_features: input of the policy head.
      critic_features: input of the value head (and of the discrete Q head).
      critic_input: `NetworkOutput.q` of continuous actions: the features
        the critic Q(s, a) reads beside the action.

    Returns:
      A `NetworkOutput`.
    """
    policy = _policy_params(self._action_space,
                            self._policy_head(actor_features),
                            self._scale_offset, self._loc_bound)
    value = tf.squeeze(self._value_head(critic_features), axis=-1)
    q = ()
    if self._q_head is not None:
      q = (self._q_head(critic_features) if self._action_space.is_discrete
           else critic_input)
    return NetworkOutput(policy, value, q)

  def q_values(self, q, actions: tf.Tensor) -> tf.Tensor:
    """Q(s, a) of K environment actions per input.

    Args:
      q: `NetworkOutput.q` of M inputs: Q-values [M, A] (discrete) or the
        critic's features [M, F] (continuous).
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


class PolicyValueNetwork(_PolicyValueBase):
  """Maps network inputs to a `NetworkOutput` (policy, value[, Q]).

  Integer observations with a bounded spec are treated as categorical
  features and embedded; float grids [H, W, C] may first pass a
  convolutional ResNet (`conv_channels`: per stage a 3x3 convolution and
  residual conv blocks, paper 000 appendix A.1.2); the result is flattened
  into the residual MLP torso. Discrete actions get a logits head and, with
  `q_head`, Q-values of every action; continuous actions get a diagonal
  Gaussian head (softplus scale) and, with `q_head`, a critic Q(s, a) on the
  torso features and the action.
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
               loc_bound: float = 0.0,
               conv_channels: Sequence[int] = (),
               conv_residual_blocks: int = 2,
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
      loc_bound: Gaussian policies: b > 0 keeps the pre-squash mean in
        (-b, b) (b * tanh(x / b)); 0 (default) leaves it unbounded.
      conv_channels: output channels of the conv stages (each >= 1), for
        float observations [H, W, C]; () for none.
      conv_residual_blocks: residual conv blocks per stage (>= 0).
      name: network name.

    Raises:
      ValueError: naming `action_spec` for an action spec no action space
        serves, `observation_spec` for a conv torso on other than float
        [H, W, C] inputs, or the size argument out of range.
    """
    super().__init__(input_tensor_spec=observation_spec, state_spec=(),
                     name=name)
    self._action_space = action_spaces.for_spec(action_spec)
    for arg, value, low in (('torso_units', torso_units, 1),
                            ('num_residual_blocks', num_residual_blocks, 0),
                            ('head_units', head_units, 1),
                            ('embedding_dim', embedding_dim, 1),
                            ('conv_residual_blocks', conv_residual_blocks, 0),
                            ('conv_channels', min(conv_channels, default=1),
                             1)):
      if value < low:
        raise ValueError(f'{arg} must be >= {low}, got {value}.')
    if conv_channels and (observation_spec.shape.rank != 3 or
                          not observation_spec.dtype.is_floating):
      raise ValueError('observation_spec: conv_channels needs float grid '
                       f'observations [H, W, C], got {observation_spec}.')
    self._conv = []
    for channels in conv_channels:
      self._conv.append(tf.keras.layers.Conv2D(channels, 3, padding='same',
                                               activation='relu'))
      self._conv += [_ResidualBlock(channels, conv=True)
                     for _ in range(conv_residual_blocks)]
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
    self._policy_head = tf.keras.Sequential([
        tf.keras.layers.Dense(head_units, activation='relu'),
        tf.keras.layers.Dense(_policy_size(self._action_space))])
    self._value_head = tf.keras.Sequential([
        tf.keras.layers.Dense(head_units, activation='relu'),
        tf.keras.layers.Dense(1)])
    self._scale_offset = _scale_offset(initial_scale)
    self._loc_bound = _check_loc_bound(loc_bound)
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
  def normalizer(self) -> None:
    """None: this network reads its inputs as they are."""
    return

  @property
  def variable_groups(self) -> tuple[list, ...]:
    """One group: the torso is shared by every head (clipped together)."""
    return (self.trainable_variables,)

  def call(self, observation, step_type=None, network_state=(),
           training=False):
    """Returns (`NetworkOutput`, network_state) for inputs [M, ...]."""
    del step_type, training
    if self._categorical:
      x = self._embedding(tf.cast(observation, tf.int32) - self._obs_minimum)
    else:
      x = tf.cast(observation, tf.float32)
    for layer in self._conv:
      x = layer(x)
    x = self._torso_input(self._flatten(x))
    for block in self._blocks:
      x = block(x)
    return self._outputs(x, x, x), network_state


class ObservationNormalizer(tf.Module):
  """Running mean and variance of flat float observations, and their z-score.

  The statistics are merged batch by batch with the parallel algorithm of
  Chan et al. (1979), in float64, in non-trainable variables: networks that
  share a normaliser (a network and its target copy) read the same
  statistics, which only `update` changes. Before the first update the
  normaliser has mean 0 and variance 1.
  """

  def __init__(self,
               observation_spec: tensor_spec.TensorSpec,
               clip: float = 10.0,
               epsilon: float = 1e-8,
               name: str = 'ObservationNormalizer'):
    """Creates the normaliser.

    Args:
      observation_spec: float spec [D] of one observation (no batch
        dimension).
      clip: normalised observations are clipped into [-clip, clip] (> 0).
      epsilon: added to the variance before its square root (>= 0).
      name: module name.

    Raises:
      ValueError: naming `observation_spec` if it is not a float spec of
        rank 1, or the out-of-range argument.
    """
    super().__init__(name=name)
    if (not isinstance(observation_spec, tensor_spec.TensorSpec) or
        not observation_spec.dtype.is_floating or
        observation_spec.shape.rank != 1 or
        not observation_spec.shape.is_fully_defined()):
      raise ValueError('observation_spec: the observation normaliser needs '
                       f'flat float observations [D], got {observation_spec}.')
    if not clip > 0:
      raise ValueError(f'clip must be > 0, got {clip}.')
    if not epsilon >= 0:
      raise ValueError(f'epsilon must be >= 0, got {epsilon}.')
    self._observation_spec = observation_spec
    self._size = int(observation_spec.shape[0])
    self._clip = float(clip)
    self._epsilon = float(epsilon)
    with self.name_scope:
      self._count = tf.Variable(0.0, dtype=tf.float64, trainable=False,
                                name='count')
      self._mean = tf.Variable(tf.zeros([self._size], tf.float64),
                               trainable=False, name='mean')
      # Sum of squared deviations from the mean.
      self._m2 = tf.Variable(tf.zeros([self._size], tf.float64),
                             trainable=False, name='m2')

  @property
  def observation_spec(self) -> tensor_spec.TensorSpec:
    return self._observation_spec

  @property
  def count(self) -> tf.Tensor:
    """Float64 scalar, the number of observations seen."""
    return tf.convert_to_tensor(self._count)

  @property
  def mean(self) -> tf.Tensor:
    """[D] float64 running mean (0 before any observation)."""
    return tf.convert_to_tensor(self._mean)

  @property
  def variance(self) -> tf.Tensor:
    """[D] float64 running (population) variance (1 before any observation)."""
    return tf.where(self._count > 0,
                    self._m2 / tf.maximum(self._count, 1.0),
                    tf.ones_like(self._m2))

  def update(self, observations: tf.Tensor,
             mask: Optional[tf.Tensor] = None) -> None:
    """Merges a batch of observations into the running statistics.

    Under a `tf.distribute` strategy, called in each replica with its part
    of the batch, it merges the whole global batch, the same on every
    replica.

    Args:
      observations: [..., D] float observations.
      mask: optional [...] bool, which observations to count (all by
        default). A batch without any counts changes nothing.

    Raises:
      ValueError: naming `observations` if its last dimension is not D.
    """
    observations = tf.convert_to_tensor(observations)
    if observations.shape[-1:] != [self._size]:
      raise ValueError(f'observations must have shape [..., {self._size}], '
                       f'got {observations.shape}.')
    x = tf.reshape(tf.cast(observations, tf.float64), [-1, self._size])
    if mask is None:
      valid = tf.ones_like(x[:, :1], tf.bool)
    else:
      valid = tf.reshape(tf.cast(mask, tf.bool), [-1, 1])
    # Count, sum and sum of squares of the deviations from the running mean
    # (a shift every replica shares), in one vector [1 + 2D].
    deviation = tf.where(valid, x - self._mean, tf.zeros_like(x))
    sums = tf.concat([tf.reduce_sum(tf.cast(valid, tf.float64), [0]),
                      tf.reduce_sum(deviation, 0),
                      tf.reduce_sum(tf.square(deviation), 0)], 0)
    context = tf.distribute.get_replica_context()
    if context is None:  # Cross-replica context: `x` is the whole batch.
      self._merge(sums)
    else:
      # Under a strategy every replica merges the sums over all replicas'
      # batches, so the statistics are those of the global batch.
      context.merge_call(
          lambda strategy, sums: self._merge(strategy.reduce(
              tf.distribute.ReduceOp.SUM, sums, axis=None)), args=(sums,))

  def _merge(self, sums: tf.Tensor) -> None:
    """Merges a batch's [count, deviation sum, squared deviation sum]."""
    batch_count = sums[0]
    deviation_sum, squares = sums[1:1 + self._size], sums[1 + self._size:]
    # The batch's mean minus the running mean, and its sum of squared
    # deviations from its own mean.
    delta = tf.math.divide_no_nan(deviation_sum, batch_count)
    batch_m2 = squares - delta * deviation_sum
    count = self._count + batch_count
    batch_fraction = tf.math.divide_no_nan(batch_count, count)
    self._m2.assign_add(
        batch_m2 + tf.square(delta) * self._count * batch_fraction)
    self._mean.assign_add(delta * batch_fraction)
    self._count.assign(count)

  def normalize(self, x: tf.Tensor) -> tf.Tensor:
    """Clipped z-scores of observations.

    Args:
      x: [..., D] float observations.

    Returns:
      [..., D] float32 `clip((x - mean) / sqrt(variance + epsilon), -clip,
      clip)`.
    """
    mean = tf.cast(self._mean, tf.float32)
    std = tf.cast(tf.sqrt(self.variance + self._epsilon), tf.float32)
    return tf.clip_by_value((tf.cast(x, tf.float32) - mean) / std,
                            -self._clip, self._clip)


def _mlp(units: Sequence[int], activation: str, name: str,
         output_size: Optional[int] = None) -> tf.keras.Sequential:
  """Dense layers of widths `units` with `activation`, then a linear layer.

  Args:
    units: widths of the hidden layers.
    activation: Keras activation of the hidden layers.
    name: model name.
    output_size: width of a final linear layer, or None for none.

  Returns:
    The MLP, a `tf.keras.Sequential` [M, F] -> [M, units[-1] or output_size].
  """
  layers = [tf.keras.layers.Dense(n, activation=activation) for n in units]
  if output_size is not None:
    layers.append(tf.keras.layers.Dense(output_size))
  return tf.keras.Sequential(layers, name=name)


class MlpActorCriticNetwork(_PolicyValueBase):
  """Separate actor and critic MLPs (paper 000, appendix A.3).

  The actor MLP feeds a linear policy head (logits, or a diagonal Gaussian
  with softplus scale as `PolicyValueNetwork`'s), the critic MLP a linear
  value head; float observations are flattened and, with a `normalizer`,
  normalised first. With `q_head`, discrete actions get Q-values of every
  action from a linear head on the critic MLP, continuous ones a third MLP
  Q(s, a) on the (normalised) observation and the action. Same interface as
  `PolicyValueNetwork`.
  """

  def __init__(self,
               observation_spec: tensor_spec.TensorSpec,
               action_spec: tensor_spec.TensorSpec,
               actor_units: Sequence[int] = (256,) * 4,
               critic_units: Sequence[int] = (256,) * 4,
               activation: str = 'silu',
               q_head: bool = False,
               initial_scale: float = 1.0,
               loc_bound: float = 0.0,
               normalizer: Optional[ObservationNormalizer] = None,
               name: str = 'MlpActorCriticNetwork'):
    """Creates the network.

    Args:
      observation_spec: float spec of one network input (no batch
        dimension); [D] with a `normalizer`.
      action_spec: scalar discrete `BoundedTensorSpec`, or float spec [D].
      actor_units: widths of the actor MLP's hidden layers (each >= 1).
      critic_units: widths of the critic's (and Q(s, a)'s) hidden layers.
      activation: Keras activation of the hidden layers.
      q_head: also output Q-values (needed by the twisted proposal).
      initial_scale: Gaussian policies: standard deviation of the
        pre-squash actions at zero actor features (> MIN_SCALE).
      loc_bound: Gaussian policies: b > 0 keeps the pre-squash mean in
        (-b, b) (b * tanh(x / b)); 0 (default) leaves it unbounded.
      normalizer: optional `ObservationNormalizer` of `observation_spec`;
        shared by copies of the network (`copy`), so a target network reads
        the same statistics.
      name: network name.

    Raises:
      ValueError: naming `action_spec` for an action spec no action space
        serves, `normalizer` for one of another spec, or the out-of-range
        argument.
    """
    super().__init__(input_tensor_spec=observation_spec, state_spec=(),
                     name=name)
    self._action_space = action_spaces.for_spec(action_spec)
    for arg, units in (('actor_units', actor_units),
                       ('critic_units', critic_units)):
      if not units or any(n < 1 for n in units):
        raise ValueError(f'{arg} must be a non-empty list of sizes >= 1, '
                         f'got {units}.')
    try:
      tf.keras.activations.get(activation)
    except ValueError as e:
      raise ValueError(f'activation: unknown activation {activation!r}.'
                       ) from e
    if normalizer is not None and (
        normalizer.observation_spec.shape != observation_spec.shape):
      raise ValueError(
          'normalizer: it normalises observations '
          f'{normalizer.observation_spec}, not observation_spec '
          f'{observation_spec}.')
    self._normalizer = normalizer
    self._flatten = tf.keras.layers.Flatten()
    self._actor = _mlp(actor_units, activation, 'actor')
    self._critic = _mlp(critic_units, activation, 'critic')
    discrete = self._action_space.is_discrete
    self._policy_head = tf.keras.layers.Dense(
        _policy_size(self._action_space), name='policy')
    self._value_head = tf.keras.layers.Dense(1, name='value')
    self._scale_offset = _scale_offset(initial_scale)
    self._loc_bound = _check_loc_bound(loc_bound)
    self._q_head = None
    if q_head and discrete:
      self._q_head = tf.keras.layers.Dense(self._action_space.num_actions,
                                           name='q')
    elif q_head:
      self._q_head = _mlp(critic_units, activation, 'q', output_size=1)
      # Q(s, a) is called outside `call`; build it with the network.
      self._q_head.build(
          (None, observation_spec.shape.num_elements() +
           self._action_space.action_size))

  @property
  def normalizer(self) -> Optional[ObservationNormalizer]:
    """The shared observation normaliser, or None."""
    return self._normalizer

  @property
  def variable_groups(self) -> tuple[list, ...]:
    """(actor variables, critic and Q variables).

    The agent clips each group's gradient by its own global norm, as
    separate actor and critic optimisers do (paper 000, table 3): the critic's
    gradients, which scale with the returns, never shrink the actor's.
    """
    actor = (self._actor.trainable_variables +
             self._policy_head.trainable_variables)
    critic = (self._critic.trainable_variables +
              self._value_head.trainable_variables)
    if self._q_head is not None:
      critic += self._q_head.trainable_variables
    return (actor, critic)

  def call(self, observation, step_type=None, network_state=(),
           training=False):
    """Returns (`NetworkOutput`, network_state) for inputs [M, ...]."""
    del step_type, training
    if self._normalizer is not None:
      x = self._normalizer.normalize(observation)
    else:
      x = tf.cast(observation, tf.float32)
    x = self._flatten(x)
    return (self._outputs(self._actor(x), self._critic(x), x),
            network_state)
