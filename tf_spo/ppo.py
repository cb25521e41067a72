"""The PPO baseline: TF-Agents' `PPOClipAgent` on the project's tasks.

`PpoAgent` is a `ppo_clip_agent.PPOClipAgent` (Schulman et al. 2017, the
clipped surrogate objective, GAE advantages and TD(lambda) value targets)
whose actor (`ActorDistributionNetwork`: categorical logits, or a Gaussian
whose mean is tanh-squashed into the action bounds) and critic
(`ValueNetwork`) read only the network input of the observations: the
planning state of a `PlanningObservation` never reaches them, so the agent
takes the environment's full time steps while its exported network policy
takes the network input alone. Integer (categorical) network inputs are
one-hot encoded, float ones optionally normalised by a running
`ObservationNormalizer` that training updates.

It has no search: `policy` (greedy) is also `network_policy`. The collect
policy samples with seeds from a `tf.random.Generator` it owns (as
`SmcPolicy` does), so a restored agent continues the same random stream.
Its continuous actions are unclipped Gaussian samples, kept as such in the
trajectories (the PPO ratios need their densities): the caller clips them
into the bounds before stepping the environment. `train` trains on a batch
of whole rollouts [B, T]: returns and advantages once, with the values
before the update, then `num_epochs` passes over the rollout, each a
full-batch gradient step (TF-Agents' own) or, with `ppo_num_minibatches`
M > 1, M steps on a shuffled partition of its B * T transitions; the last
step of each rollout only bootstraps the values.
"""

import dataclasses
import functools
from typing import Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
from tf_agents.agents.ppo import ppo_clip_agent
from tf_agents.agents.ppo import ppo_policy
from tf_agents.agents.ppo import ppo_utils
from tf_agents.networks import actor_distribution_network
from tf_agents.networks import network
from tf_agents.networks import normal_projection_network
from tf_agents.networks import value_network
from tf_agents.policies import actor_policy
from tf_agents.policies import greedy_policy
from tf_agents.policies import tf_policy
from tf_agents.specs import tensor_spec

from environments import model as model_lib
from tf_spo import config as config_lib
from tf_spo import networks as networks_lib
from tf_spo import policy as policy_lib


@dataclasses.dataclass(frozen=True)
class PpoConfig:
  """Hyperparameters of the PPO baseline; field names are flag names.

  Attributes:
    ppo_clip_ratio: epsilon of the clipped importance ratio, in (0, 1).
    ppo_entropy_coef: weight of the entropy bonus (>= 0).
    discount: gamma of the returns, in [0, 1].
    gae_lambda: lambda of the GAE advantages and TD(lambda) value targets,
      in [0, 1].
    num_epochs: passes over the rollout per `train` call (>= 1).
    ppo_num_minibatches: gradient steps per pass, each on a shuffled
      1 / M of the rollout's transitions (>= 1; 1: full-batch steps);
      num_envs * rollout_length must be a multiple of it.
    ppo_learning_rate_decay: decay the learning rate linearly to 0 over the
      run's gradient steps (the SPO paper's PPO, table 4).
    value_loss_coef: weight of the value loss (>= 0).
    max_grad_norm: global-norm clipping of the actor's and critic's
      gradients together (> 0).
  """

  ppo_clip_ratio: float = 0.2
  ppo_entropy_coef: float = 0.01
  discount: float = 0.99
  gae_lambda: float = 0.95
  num_epochs: int = 8
  ppo_num_minibatches: int = 1
  ppo_learning_rate_decay: bool = False
  value_loss_coef: float = 0.5
  max_grad_norm: float = 0.5

  def __post_init__(self):
    check = config_lib.check
    check(0.0 < self.ppo_clip_ratio < 1.0, 'ppo_clip_ratio', 'in (0, 1)',
          self.ppo_clip_ratio)
    check(self.ppo_entropy_coef >= 0.0, 'ppo_entropy_coef', '>= 0',
          self.ppo_entropy_coef)
    check(0.0 <= self.discount <= 1.0, 'discount', 'in [0, 1]', self.discount)
    check(0.0 <= self.gae_lambda <= 1.0, 'gae_lambda', 'in [0, 1]',
          self.gae_lambda)
    check(self.num_epochs >= 1, 'num_epochs', '>= 1', self.num_epochs)
    check(self.ppo_num_minibatches >= 1, 'ppo_num_minibatches', '>= 1',
          self.ppo_num_minibatches)
    check(self.value_loss_coef >= 0.0, 'value_loss_coef', '>= 0',
          self.value_loss_coef)
    check(self.max_grad_norm > 0.0, 'max_grad_norm', '> 0',
          self.max_grad_norm)


class _Encoder(tf.Module):
  """Reads the network input of observations as float features.

  Integer inputs with a bounded spec are one-hot encoded ([..., K] more);
  float ones are cast to float32 and, with a normaliser, normalised.
  """

  def __init__(self, network_input_spec,
               normalizer: Optional[networks_lib.ObservationNormalizer]):
    super().__init__(name='Encoder')
    self._categorical = network_input_spec.dtype.is_integer
    if self._categorical:
      self._minimum = int(np.min(network_input_spec.minimum))
      self._depth = int(np.max(network_input_spec.maximum)) - self._minimum + 1
      shape = network_input_spec.shape.as_list() + [self._depth]
    else:
      shape = network_input_spec.shape.as_list()
    self.feature_spec = tensor_spec.TensorSpec(shape, tf.float32,
                                               'features')
    self.normalizer = normalizer

  def __call__(self, observation) -> tf.Tensor:
    x = model_lib.network_input(observation)
    if self._categorical:
      return tf.one_hot(tf.cast(x, tf.int32) - self._minimum, self._depth)
    if self.normalizer is not None:
      return self.normalizer.normalize(x)
    return tf.cast(x, tf.float32)


class _ActorOnObservations(network.DistributionNetwork):
  """The actor network on observations of `input_tensor_spec`."""

  def __init__(self, input_tensor_spec, actor, encoder: _Encoder):
    super().__init__(input_tensor_spec=input_tensor_spec, state_spec=(),
                     output_spec=actor.output_spec, name='Actor')
    self._actor = actor
    self._encoder = encoder

  def call(self, observation, step_type=None, network_state=(),
           training=False):
    return self._actor(self._encoder(observation), step_type=step_type,
                       network_state=network_state, training=training)


class _ValueOnObservations(network.Network):
  """The value network on observations of `input_tensor_spec`."""

  def __init__(self, input_tensor_spec, value, encoder: _Encoder):
    super().__init__(input_tensor_spec=input_tensor_spec, state_spec=(),
                     name='Value')
    self._value = value
    self._encoder = encoder

  def call(self, observation, step_type=None, network_state=(),
           training=False):
    return self._value(self._encoder(observation), step_type=step_type,
                       network_state=network_state, training=training)


class _ActorCritic(network.Network):
  """Both networks on the network input: ((distribution params, value), ())."""

  def __init__(self, actor: _ActorOnObservations,
               value: _ValueOnObservations):
    super().__init__(input_tensor_spec=actor.input_tensor_spec,
                     state_spec=(), name='ActorCritic')
    self._actor = actor
    self._value = value

  def call(self, observation, step_type=None, network_state=(),
           training=False):
    distribution, _ = self._actor(observation, step_type=step_type,
                                  training=training)
    value, _ = self._value(observation, step_type=step_type,
                           training=training)
    params = ppo_utils.get_distribution_params(
        distribution, legacy_distribution_network=True)
    return (params, value), network_state


class _SeededPpoPolicy(ppo_policy.PPOPolicy):
  """`PPOPolicy` sampling with stateless seeds from its own generator."""

  def __init__(self, *args, seed: int = 0, **kwargs):
    super().__init__(*args, **kwargs)
    self._rng = tf.random.Generator.from_seed(seed)

  def _action(self, time_step, policy_state, seed=None):
    if seed is None:
      seed = tf.cast(self._rng.make_seeds(1)[:, 0], tf.int32)
    else:
      seed = tfp.random.sanitize_seed(seed)
    step = self._distribution(time_step, policy_state)
    return step._replace(action=tf.nest.map_structure(
        lambda distribution: distribution.sample(seed=seed), step.action))


def _normal_projection(initial_scale: float, action_spec):
  """Gaussian head: tanh-squashed mean, state-independent softplus std."""
  return normal_projection_network.NormalProjectionNetwork(
      action_spec, init_means_output_factor=0.1,
      std_bias_initializer_value=float(np.log(np.expm1(initial_scale))),
      scale_distribution=False)


class PpoAgent(ppo_clip_agent.PPOClipAgent):
  """`PPOClipAgent` whose networks read the network input only.

  Exposes what the launch scripts use of `SpoAgent`: `policy` (greedy),
  `collect_policy`, `network_policy` (the same greedy policy),
  `export_network_policy()`, `network` (for FLOP counts),
  `train_step_counter`, `collect_data_spec` and `train`, which counts
  `num_epochs * ppo_num_minibatches` train steps per call.
  """

  def __init__(self,
               time_step_spec,
               action_spec,
               fc_layer_params: Sequence[int] = (256, 256),
               conv_layer_params: Optional[Sequence[Tuple[int, int, int]]] = (
                   None),
               activation_fn=tf.keras.activations.relu,
               initial_scale: float = 1.0,
               normalize_observations: bool = False,
               config: PpoConfig = PpoConfig(),
               optimizer: Optional[tf.keras.optimizers.Optimizer] = None,
               seed: int = 0,
               debug_summaries: bool = False,
               train_step_counter: Optional[tf.Variable] = None,
               name: str = 'PpoAgent'):
    """Creates the agent.

    Args:
      time_step_spec: `TimeStep` spec of the environment, its observation
        possibly a `PlanningObservation`.
      action_spec: scalar discrete `BoundedTensorSpec`, or bounded float [D].
      fc_layer_params: widths of the hidden layers of the actor and of the
        critic (separate networks).
      conv_layer_params: (filters, kernel size, stride) of 'valid'
        convolutions before them, for float grids [H, W, C]; None for none.
      activation_fn: activation of the hidden layers.
      initial_scale: continuous actions: initial standard deviation of the
        Gaussian, in action units (> 0).
      normalize_observations: normalise flat float network inputs [D] by a
        running `ObservationNormalizer`, updated after each `train` call.
      config: `PpoConfig`.
      optimizer: optimizer of both networks (default Adam 3e-4).
      seed: seed of the collect policy's random generator.
      debug_summaries: emit TF-Agents' PPO debug summaries (histograms).
      train_step_counter: optional step counter variable (default: the
        agent's own, not the process-wide global step).
      name: agent name.

    Raises:
      ValueError: naming the flag of a setting out of range, or of a network
        option the network input does not allow.
    """
    network_input_spec = model_lib.network_input(time_step_spec.observation)
    config_lib.check(initial_scale > 0, 'initial_scale', '> 0',
                     initial_scale)
    if conv_layer_params and (network_input_spec.shape.rank != 3 or
                              not network_input_spec.dtype.is_floating):
      raise ValueError('conv_channels needs float grid observations '
                       f'[H, W, C], got {network_input_spec}.')
    # Raises ValueError unless the input is flat and float.
    normalizer = (networks_lib.ObservationNormalizer(network_input_spec)
                  if normalize_observations else None)
    encoder = _Encoder(network_input_spec, normalizer)
    actor = actor_distribution_network.ActorDistributionNetwork(
        encoder.feature_spec, action_spec,
        conv_layer_params=conv_layer_params, fc_layer_params=fc_layer_params,
        activation_fn=activation_fn,
        continuous_projection_net=functools.partial(_normal_projection,
                                                    initial_scale))
    value = value_network.ValueNetwork(
        encoder.feature_spec, conv_layer_params=conv_layer_params,
        fc_layer_params=fc_layer_params, activation_fn=activation_fn)
    observation_spec = time_step_spec.observation
    minibatches = config.ppo_num_minibatches > 1
    super().__init__(
        time_step_spec, action_spec,
        optimizer=optimizer or tf.keras.optimizers.Adam(3e-4),
        actor_net=_ActorOnObservations(observation_spec, actor, encoder),
        value_net=_ValueOnObservations(observation_spec, value, encoder),
        greedy_eval=True,
        importance_ratio_clipping=config.ppo_clip_ratio,
        lambda_value=config.gae_lambda,
        discount_factor=config.discount,
        entropy_regularization=config.ppo_entropy_coef,
        value_pred_loss_coef=config.value_loss_coef,
        # With minibatches, `_train` takes the epochs and the rollout's
        # advantages itself; TF-Agents then takes one gradient step per
        # call on given advantages (as its `PPOLearner` does).
        num_epochs=1 if minibatches else config.num_epochs,
        use_gae=True,
        use_td_lambda_return=True,
        normalize_rewards=True,
        # The networks normalise their own inputs (see `_Encoder`): TF-Agents'
        # normaliser would read the planning state too.
        normalize_observations=False,
        gradient_clipping=config.max_grad_norm,
        compute_value_and_advantage_in_train=not minibatches,
        update_normalizers_in_train=not minibatches,
        debug_summaries=debug_summaries,
        train_step_counter=(train_step_counter if train_step_counter
                            is not None else tf.Variable(
                                0, dtype=tf.int64, trainable=False,
                                name='train_step')),
        name=name)
    self._encoder = encoder
    self._inner_actor = actor
    self._inner_value = value
    self._network_input_spec = network_input_spec
    self._epochs = config.num_epochs
    self._num_minibatches = config.ppo_num_minibatches
    if minibatches:
      # The minibatches' shuffles, checkpointed with the agent.
      self._shuffle_rng = tf.random.Generator.from_seed(seed + 1)
    # Keras makes an optimizer's slots in the order of the variables of its
    # first update, which PPOAgent sorts by name, and layer names depend on
    # how many layers the process made before: built here in the networks'
    # own order, the slots checkpoint alike in every process.
    self._optimizer.build(self._actor_net.trainable_variables +
                          self._value_net.trainable_variables)
    # The same collect policy, sampling with its own checkpointed stream.
    self._collect_policy = _SeededPpoPolicy(
        time_step_spec=time_step_spec, action_spec=action_spec,
        actor_network=self._actor_net, value_network=self._value_net,
        clip=False, collect=True,
        compute_value_and_advantage_in_train=not minibatches,
        seed=seed)

  def _train(self, experience, weights):
    """PPO's epochs on a rollout [B, T]: full-batch, or on minibatches.

    With M = `ppo_num_minibatches` > 1, the returns and advantages of the
    whole rollout come first (`_preprocess`, from the values the collect
    policy recorded, i.e. the networks before the update);
    then each of the `num_epochs` passes shuffles the B * T transitions and
    takes one TF-Agents gradient step (`PPOAgent._train` on [B * T / M, 1],
    advantages standardised per minibatch) on each 1 / M of them. The
    observation and reward normalisers take the rollout once, afterwards.

    Returns:
      The `LossInfo` of the last gradient step.

    Raises:
      ValueError: if B * T is not a multiple of M.
    """
    if self._num_minibatches == 1:
      return super()._train(experience, weights)
    processed = self._preprocess(experience)
    batch, steps = processed.step_type.shape.as_list()
    size = batch * steps
    if size % self._num_minibatches:
      raise ValueError(
          f'ppo_num_minibatches={self._num_minibatches} must divide '
          f'num_envs * rollout_length = {batch} * {steps}.')
    minibatch = size // self._num_minibatches
    if weights is not None:  # 0-D, [B] or [B, T], as TF-Agents takes them.
      weights = tf.convert_to_tensor(weights, tf.float32)
      if weights.shape.rank == 1:
        weights = weights[:, None]
      weights = tf.broadcast_to(weights, [batch, steps])
    flat = tf.nest.map_structure(
        lambda x: tf.reshape(x, [size, 1] + x.shape[2:].as_list()),
        (processed, () if weights is None else weights))

    def step(order, index):
      rows = order[index * minibatch:(index + 1) * minibatch]
      part, part_weights = tf.nest.map_structure(
          lambda x: tf.gather(x, rows), flat)
      return super(PpoAgent, self)._train(
          part, None if weights is None else part_weights)

    steps_per_epoch = self._num_minibatches
    total = self._epochs * steps_per_epoch
    seed = tf.cast(self._shuffle_rng.make_seeds(1)[:, 0], tf.int32)
    orders = tf.argsort(tf.random.stateless_uniform([self._epochs, size],
                                                    seed), axis=-1)

    def body(i):
      step(orders[i // steps_per_epoch], i % steps_per_epoch)
      return (i + 1,)

    # All but the last step in a loop, the last one for its LossInfo.
    tf.while_loop(lambda i: i < total - 1, body, (tf.constant(0),))
    loss_info = step(orders[-1], steps_per_epoch - 1)
    self.update_observation_normalizer(processed.observation)
    self.update_reward_normalizer(processed.reward)
    return loss_info

  @property
  def normalizer(self) -> Optional[networks_lib.ObservationNormalizer]:
    """The observation normaliser of the networks, or None."""
    return self._encoder.normalizer

  @property
  def network(self) -> network.Network:
    """Actor and critic on the network input: ((params, value), state)."""
    spec = self._network_input_spec
    return _ActorCritic(
        _ActorOnObservations(spec, self._inner_actor, self._encoder),
        _ValueOnObservations(spec, self._inner_value, self._encoder))

  @property
  def network_policy(self) -> tf_policy.TFPolicy:
    """The greedy policy: PPO's policy is its network's."""
    return self.policy

  def export_network_policy(self) -> tf_policy.TFPolicy:
    """The greedy policy on the network input alone, for export."""
    time_step_spec = policy_lib.network_time_step_spec(self.time_step_spec)
    actor = _ActorOnObservations(self._network_input_spec, self._inner_actor,
                                 self._encoder)
    return greedy_policy.GreedyPolicy(actor_policy.ActorPolicy(
        time_step_spec, self.action_spec, actor, clip=False,
        name='NetworkPolicy'))

  def update_observation_normalizer(self, batched_observations):
    """Merges the trained observations' network inputs into the normaliser."""
    if self.normalizer is not None:
      self.normalizer.update(model_lib.network_input(batched_observations))
