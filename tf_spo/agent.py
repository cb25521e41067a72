"""SPO as a TF-Agents agent (paper 000, section 4.3 and appendix D).

The collect and evaluation policies are `SmcPolicy` searches (or, for the
Gumbel MuZero baseline, `GumbelPolicy` searches trained the same way);
`train` is the M-step on replayed sequences: for categorical policies,
cross-entropy of pi_theta to the search target q-hat under a KL trust region
to the Polyak-averaged target policy (Lagrange multiplier alpha); for Gaussian
policies, weighted maximum likelihood of q-hat's atoms under decoupled mean
and covariance trust regions (alpha_mu, alpha_Sigma), or optionally of
actions sampled from the target policy and weighted by the target network's
Q head (`SpoConfig.gaussian_policy_target='critic'`, the MPO E-step); the
temperature dual g(eta), and a value loss on GAE targets computed with the
target critic.
"""

import re
from typing import NamedTuple, Optional

import tensorflow as tf
import tensorflow_probability as tfp
from tf_agents.agents import tf_agent
from tf_agents.utils import common

from environments import model as model_lib
from tf_spo import config as config_lib
from tf_spo import losses
from tf_spo import policy as policy_lib

tfb = tfp.bijectors


class SpoLossInfo(NamedTuple):
  """Named extras of the SPO `LossInfo`; all scalars.

  `alpha` is the categorical trust-region multiplier; `alpha_mean`,
  `alpha_cov`, `kl_mean` and `kl_cov` are the Gaussian policy's decoupled
  multipliers and KL parts. Those a policy does not have are 0.
  `target_kl` is how far the policy target is from pi_theta
  (`losses.PolicyLosses`): near 0 while the search's targets carry
  nothing the network has not learned. `eta_q` is the temperature of the
  critic's E-step (`SpoConfig.gaussian_policy_target='critic'`), solved per
  batch; 0 otherwise.
  """
  policy_loss: tf.Tensor
  kl: tf.Tensor
  kl_loss: tf.Tensor
  alpha_loss: tf.Tensor
  eta_loss: tf.Tensor
  value_loss: tf.Tensor
  q_value_loss: tf.Tensor
  eta: tf.Tensor
  alpha: tf.Tensor
  eta_kl: tf.Tensor
  kl_mean: tf.Tensor
  kl_cov: tf.Tensor
  alpha_mean: tf.Tensor
  alpha_cov: tf.Tensor
  target_kl: tf.Tensor
  eta_q: tf.Tensor


class GaussianTarget(NamedTuple):
  """What the Gaussian M-step fits: weighted pre-squash atoms per state.

  Attributes:
    atoms: [B, T, N, D] pre-squash actions.
    weights: [B, T, N] their normalised weights.
    eta: scalar temperature of the weights: the critic E-step's eta_q, 0
      for the search's atoms (whose temperature is the agent's eta).
  """
  atoms: tf.Tensor
  weights: tf.Tensor
  eta: tf.Tensor


# Folded with the agent's seed into the stateless seeds of the critic
# E-step's samples: a stream apart from the policies' generators.
_CRITIC_SEED_STREAM = 0x5C0

# The message of the `tf.errors.InvalidArgumentError` `SpoAgent.train`
# raises when a term of its loss (a `SpoLossInfo` `*_loss` field, `loss` or
# `gradient_norm`) is not finite; groups: the term, 'NaN' or 'Inf'.
NON_FINITE_MESSAGE = re.compile(r'SPO (\w+) : Tensor had (NaN|Inf) values')


def _positive_dual(initial_value: float, name: str):
  """A positive trainable scalar, parameterised through a softplus bijector."""
  return tfp.util.TransformedVariable(
      initial_value, bijector=tfb.Softplus(), dtype=tf.float32, name=name)


def _check_variable_groups(network) -> None:
  """Checks that `network.variable_groups` partitions its trainables.

  Raises:
    ValueError: naming `network` if a trainable variable is in no group or
      in several, or a group holds a variable that is not trainable.
  """
  grouped = [v.ref() for group in network.variable_groups for v in group]
  trainable = {v.ref() for v in network.trainable_variables}
  if len(grouped) != len(set(grouped)) or set(grouped) != trainable:
    raise ValueError(
        'network: its variable_groups must hold each trainable variable '
        f'exactly once ({len(grouped)} grouped, {len(trainable)} '
        'trainable).')


def _valid_steps(experience, weights) -> tf.Tensor:
  """[B, T] float32 weights of the steps of a batch of trajectories.

  A trajectory whose step is LAST is an episode boundary: its action was
  never executed and its next observation starts a new episode (weight 0).
  `weights` ([B] or scalar, optional) weigh the sequences.
  """
  valid = tf.cast(~experience.is_boundary(), tf.float32)
  if weights is not None:
    valid *= tf.reshape(tf.cast(weights, tf.float32), [-1, 1])
  return valid


class SpoAgent(tf_agent.TFAgent):
  """SPO for discrete and continuous actions, with the TRT-SMC switches.

  With `search_config.proposal_alpha > 0` the network needs a Q head, which
  is then trained on the value targets; `config.search_value_weight` mixes
  the search's Retrace values into those targets. The network needs a Q
  head too with `config.gaussian_policy_target='critic'` (continuous actions
  only), whose M-step fits actions sampled from the target policy and
  weighted by the target network's Q head instead of the search's atoms.
  """

  def __init__(self,
               time_step_spec,
               action_spec,
               network,
               model,
               search_config: config_lib.SearchConfig = (
                   config_lib.SearchConfig()),
               config: config_lib.SpoConfig = config_lib.SpoConfig(),
               optimizer: Optional[tf.keras.optimizers.Optimizer] = None,
               dual_optimizer: Optional[tf.keras.optimizers.Optimizer] = None,
               greedy_eval: bool = True,
               eval_search_config: Optional[config_lib.SearchConfig] = None,
               seed: int = 0,
               debug_summaries: bool = False,
               summarize_grads_and_vars: bool = False,
               train_step_counter: Optional[tf.Variable] = None,
               name: Optional[str] = None):
    """Creates the agent.

    Args:
      time_step_spec: `TimeStep` spec of the environment.
      action_spec: action spec of the environment: scalar discrete, or
        float [D] (a tanh-squashed Gaussian policy within its bounds).
      network: a `PolicyValueNetwork` or `MlpActorCriticNetwork` of the
        network input and action spec; its copy becomes the target network
        (sharing its observation normaliser, if any, which training updates
        with the replayed observations). Its `variable_groups` (e.g. actor
        and critic) each get their gradient clipped by its own global norm.
      model: the planning `EnvironmentModel`.
      search_config: `SearchConfig` of the SMC search, or `GumbelConfig`
        for the Gumbel MuZero baseline (policy target its improved policy,
        no temperature eta).
      config: `SpoConfig` of the M-step and duals.
      optimizer: optimizer of the network (default Adam 3e-4).
      dual_optimizer: optimizer of eta and the alphas (default Adam 3e-4).
      greedy_eval: the evaluation policy takes the mode of q-hat.
      eval_search_config: the search config of the evaluation policy
        (`policy`, which evaluations play and exports save), e.g. other
        particles and depth than collection's; None: `search_config`.
        Training never reads it.
      seed: seed of the policies' random generators, and of the critic
        E-step's samples (with the train step counter: a train step is
        deterministic given the seed and the checkpoint).
      debug_summaries: emit search diagnostics summaries.
      summarize_grads_and_vars: emit gradient and variable summaries.
      train_step_counter: optional step counter variable.
      name: agent name.

    Raises:
      ValueError: naming the argument if the specs, the model and the
        network don't fit together; naming gaussian_policy_target if it is
        'critic' for discrete actions or a network without a Q head.
    """
    tf.Module.__init__(self, name=name)
    self._action_space = policy_lib.check_specs(time_step_spec, action_spec,
                                                model, network)
    self._config = config
    self._seed = seed
    # The source of the Gaussian M-step's atoms and weights, chosen once.
    if config.gaussian_policy_target == 'critic':
      if self._action_space.is_discrete:
        raise ValueError(
            'gaussian_policy_target=critic fits a Gaussian policy: it needs '
            "continuous actions; discrete actions use 'search'.")
      if not network.has_q_head:
        raise ValueError(
            'gaussian_policy_target=critic weighs actions by Q-values: use a '
            'network with a Q head (q_head=True).')
      self._gaussian_target = self._critic_target
    else:
      self._gaussian_target = self._search_target
    self._network = network
    self._network.create_variables()
    _check_variable_groups(network)
    self._target_network = network.copy(name='TargetNetwork')
    self._target_network.create_variables()
    # Only the trainable variables are averaged: the networks' only
    # non-trainable ones are the statistics of the observation normaliser,
    # which the target network shares.
    common.soft_variables_update(self._network.trainable_variables,
                                 self._target_network.trainable_variables,
                                 tau=1.0)
    self._eta = _positive_dual(config.initial_eta, 'eta')
    if self._action_space.is_discrete:
      self._alphas = {'alpha': _positive_dual(config.initial_alpha, 'alpha')}
    else:
      self._alphas = {
          'alpha_mean': _positive_dual(config.initial_alpha_mean,
                                       'alpha_mean'),
          'alpha_cov': _positive_dual(config.initial_alpha_cov, 'alpha_cov')}
    self._optimizer = optimizer or tf.keras.optimizers.Adam(3e-4)
    self._dual_optimizer = dual_optimizer or tf.keras.optimizers.Adam(3e-4)
    # Under a multi-replica strategy the losses and gradients are summed
    # over the replicas: synchronisation points, which may not sit in a
    # nested (or XLA) function; the caller's tf.function around
    # `strategy.run` compiles them there.
    self._compiled_loss_and_gradients = (
        tf.function(self._loss_and_gradients, jit_compile=True,
                    autograph=False)
        if losses.num_replicas() == 1
        else self._loss_and_gradients)

    policy = policy_lib.search_policy(
        time_step_spec, action_spec, network, model,
        eval_search_config or search_config, self._eta, greedy=greedy_eval,
        seed=seed, name='SearchPolicy')
    collect_policy = policy_lib.search_policy(
        time_step_spec, action_spec, network, model, search_config,
        self._eta, add_root_noise=True, seed=seed + 1,
        name='SearchCollectPolicy')
    self._network_policy = policy_lib.NetworkPolicy(
        time_step_spec, action_spec, network, greedy=greedy_eval,
        name='NetworkPolicy')
    if config.network_collect_fraction > 0:
      collect_policy = policy_lib.NetworkActsPolicy(
          collect_policy, policy_lib.NetworkPolicy(
              time_step_spec, action_spec, network, greedy=True),
          config.network_collect_fraction, seed=seed + 2,
          name='NetworkActsCollectPolicy')
    self._greedy_eval = greedy_eval
    super().__init__(
        time_step_spec, action_spec, policy, collect_policy,
        train_sequence_length=None,
        debug_summaries=debug_summaries,
        summarize_grads_and_vars=summarize_grads_and_vars,
        # Not TF-Agents' default, the process-wide global step: two agents
        # in one process must not share a counter.
        train_step_counter=(train_step_counter if train_step_counter
                            is not None else tf.Variable(
                                0, dtype=tf.int64, trainable=False,
                                aggregation=(
                                    tf.VariableAggregation.ONLY_FIRST_REPLICA),
                                name='train_step')))

  @property
  def network(self):
    """The trained network (its normaliser, if any, is shared)."""
    return self._network

  @property
  def network_policy(self) -> policy_lib.NetworkPolicy:
    """The bare network policy pi_theta, without search."""
    return self._network_policy

  def export_network_policy(self) -> policy_lib.NetworkPolicy:
    """The network policy on the network input alone, for export."""
    spec = policy_lib.network_time_step_spec(self.time_step_spec)
    return policy_lib.NetworkPolicy(spec, self.action_spec, self._network,
                                    greedy=self._greedy_eval,
                                    name='NetworkPolicy')

  @property
  def eta(self) -> tf.Tensor:
    return tf.convert_to_tensor(self._eta)

  @property
  def alphas(self) -> dict:
    """The trust-region multipliers by name.

    `alpha` for categorical policies, `alpha_mean` and `alpha_cov` for
    Gaussian ones.
    """
    return {name: tf.convert_to_tensor(value)
            for name, value in self._alphas.items()}

  def _dual_variables(self):
    """The duals trained by the dual optimizer (eta unless it is solved)."""
    variables = ([] if self._config.eta_update == 'solve'
                 else list(self._eta.trainable_variables))
    for dual in self._alphas.values():
      variables += dual.trainable_variables
    return variables

  def _search_target(self, info, target_output, valid) -> GaussianTarget:
    """The search's q-hat: its root atoms and weights (the paper)."""
    del target_output, valid
    return GaussianTarget(info['search_atoms'], info['search_weights'],
                          tf.zeros([]))

  def _critic_seed(self) -> tf.Tensor:
    """[2] int32 stateless seed of this train step's critic E-step.

    From the agent's seed and the train step counter, which checkpoints
    hold: a resumed run draws the same samples.
    """
    seed = tf.random.experimental.stateless_fold_in(
        tf.constant([self._seed, _CRITIC_SEED_STREAM], tf.int64),
        tf.cast(self.train_step_counter, tf.int64))
    return tf.cast(seed, tf.int32)

  def _critic_target(self, info, target_output, valid) -> GaussianTarget:
    """The MPO E-step: K target-policy actions weighted by the Q head.

    Args:
      info: the search's policy info (unused).
      target_output: the target network's `NetworkOutput` of the [B * T]
        replayed states.
      valid: [B, T] weights of the states.

    Returns:
      `GaussianTarget` of K = `critic_atoms` pre-squash actions per state,
      sampled from the target policy, and their weights softmax(Q / eta_q)
      (`losses.critic_e_step`: eta_q holds their KL to uniform at
      `epsilon_critic`).
    """
    del info
    params = tf.nest.map_structure(tf.stop_gradient, target_output.policy)
    num_states = tf.shape(params.loc)[0]
    num_replicas = losses.num_replicas()
    # Standard normal noise of the global batch's states (R replicas on
    # equal parts of it), of which each replica takes its own rows: R
    # replicas draw what one replica on the whole batch draws.
    noise = tf.random.stateless_normal(
        tf.stack([num_replicas * num_states, self._config.critic_atoms,
                  self._action_space.action_size]), self._critic_seed())
    if num_replicas > 1:
      start = num_states * tf.cast(
          tf.distribute.get_replica_context().replica_id_in_sync_group,
          tf.int32)
      noise = noise[start:start + num_states]
    # [B * T, K, D] pre-squash actions of the target policy.
    atoms = params.loc[:, None] + params.scale[:, None] * noise
    # The target network's Q head scores the actions, as MPO's E-step uses
    # the target critic: a Polyak average of the online head, so the
    # policy's targets don't chase the critic that this same step fits (and
    # its features, `target_output.q`, are already computed). The target
    # network is a copy of the online one, so it has a Q head whenever the
    # online one has, which the constructor requires. It reads environment
    # (squashed) actions, as the taken actions it regresses on; the M-step
    # fits the pre-squash atoms.
    q_values = self._target_network.q_values(
        target_output.q, self._action_space.env_action(atoms))
    outer_shape = tf.shape(valid)
    atoms = tf.reshape(atoms, tf.concat([outer_shape, tf.shape(atoms)[1:]],
                                        axis=0))
    q_values = tf.reshape(q_values, tf.concat(
        [outer_shape, tf.shape(q_values)[1:]], axis=0))
    weights, eta = losses.critic_e_step(q_values, self._config.epsilon_critic,
                                        valid)
    return GaussianTarget(atoms, weights, eta)

  def _policy_losses(self, info, policy, target_policy, target_output,
                     valid):
    """The M-step's policy terms for this action space, and eta_q."""
    config = self._config
    alphas = self.alphas
    if self._action_space.is_discrete:
      return losses.categorical_m_step(
          info['search_policy'], policy, target_policy, alphas['alpha'],
          config.epsilon_alpha, valid), tf.zeros([])
    target = self._gaussian_target(info, target_output, valid)
    return losses.gaussian_m_step(
        target.atoms, target.weights, policy.loc,
        policy.scale, target_policy.loc, target_policy.scale,
        alphas['alpha_mean'], alphas['alpha_cov'], config.epsilon_alpha_mean,
        config.epsilon_alpha_cov, valid,
        mean_weights=(losses.greedy_weights(target.weights)
                      if config.gaussian_mean_target == 'greedy' else None)
    ), target.eta

  def _loss(self, experience, weights=None, training=False):
    """SPO losses on a [B, T] batch of trajectories (T >= 2).

    Args:
      experience: `Trajectory` with outer dims [B, T] whose policy info is
        the `SmcPolicy` info (search targets).
      weights: optional [B] or scalar weights of the sequences.
      training: unused.

    Returns:
      `LossInfo(loss, SpoLossInfo)`.
    """
    del training
    config = self._config
    sequence_length = experience.reward.shape[1]
    if sequence_length is not None and sequence_length < 2:
      raise ValueError('experience: SPO trains on sequences of T >= 2 steps '
                       f'(GAE needs a next step), got T={sequence_length}.')
    outer_shape = tf.shape(experience.reward)

    def merge_outer(x):
      return tf.reshape(x, tf.concat([[-1], tf.shape(x)[2:]], axis=0))

    def split_outer(x):
      return tf.reshape(x, tf.concat([outer_shape, tf.shape(x)[1:]], axis=0))

    network_input = tf.nest.map_structure(
        merge_outer, model_lib.network_input(experience.observation))
    output, _ = self._network(network_input, training=True)
    target_output, _ = self._target_network(network_input)
    values = split_outer(output.value)
    target_values = split_outer(target_output.value)
    policy = tf.nest.map_structure(split_outer, output.policy)
    target_policy = tf.nest.map_structure(split_outer, target_output.policy)

    valid = _valid_steps(experience, weights)
    info = experience.policy_info
    policy_losses, eta_q = self._policy_losses(info, policy, target_policy,
                                               target_output, valid)

    eta = tf.convert_to_tensor(self._eta)
    eta_loss = eta_kl = tf.zeros([])
    if 'eta_advantages' in info:  # The SMC search's temperature.
      eta_loss = losses.eta_dual(eta, info['eta_advantages'],
                                 config.epsilon_eta, valid,
                                 info['eta_log_ratios'])
      eta_kl = losses.masked_mean(
          losses.weighted_kl(info['eta_advantages'], tf.stop_gradient(eta),
                             info['eta_log_ratios']), valid)

    # TD(lambda) targets bootstrap from the target critic, mixed with the
    # search's Retrace value by sigma (paper 001, sec. 3.4); a search without
    # one (Gumbel MuZero) offers its root value.
    sigma = config.search_value_weight
    bootstrap = ((1.0 - sigma) * target_values +
                 sigma * info.get('retrace_value', info['search_value']))
    advantages = losses.gae_advantages(
        experience.reward, config.discount * experience.discount,
        bootstrap, valid, config.gae_lambda)
    value_targets = tf.stop_gradient(bootstrap[:, :-1] + advantages)
    value_loss = 0.5 * losses.masked_mean(
        tf.square(values[:, :-1] - value_targets), valid[:, :-1])
    q_value_loss = tf.zeros([])
    if self._network.has_q_head:
      # Q(s_t, a_t) regresses on the same lambda-return (paper 001, eq. 9).
      taken_q = split_outer(self._network.q_values(
          output.q, merge_outer(experience.action)[:, None])[:, 0])
      q_value_loss = 0.5 * losses.masked_mean(
          tf.square(taken_q[:, :-1] - value_targets), valid[:, :-1])

    total = (policy_losses.policy_loss + policy_losses.kl_loss +
             config.value_loss_coef * (value_loss + q_value_loss) +
             policy_losses.alpha_loss + eta_loss)
    alphas = self.alphas
    zero = tf.zeros([])
    # Every field, the duals' values included, is this replica's share: the
    # fields sum over the replicas of a strategy.
    share = losses.replica_share
    extra = SpoLossInfo(
        policy_loss=policy_losses.policy_loss, kl=policy_losses.kl,
        kl_loss=policy_losses.kl_loss, alpha_loss=policy_losses.alpha_loss,
        eta_loss=eta_loss, value_loss=value_loss, q_value_loss=q_value_loss,
        eta=share(eta), alpha=share(alphas.get('alpha', zero)),
        eta_kl=eta_kl, kl_mean=policy_losses.kl_mean,
        kl_cov=policy_losses.kl_cov,
        alpha_mean=share(alphas.get('alpha_mean', zero)),
        alpha_cov=share(alphas.get('alpha_cov', zero)),
        target_kl=policy_losses.target_kl, eta_q=share(eta_q))
    return tf_agent.LossInfo(total, extra)

  def _loss_and_gradients(self, experience, weights):
    """Losses and clipped gradients; XLA-compiled (see `__init__`)."""
    with tf.GradientTape() as tape:
      loss_info = self._loss(experience, weights=weights, training=True)
    # Summed over the replicas of a strategy (their losses are shares of the
    # global batch's), before clipping.
    group_grads, dual_grads = losses.sum_over_replicas(tape.gradient(
        loss_info.loss,
        (self._network.variable_groups, self._dual_variables())))
    # Each group (actor, critic) is clipped by its own global norm.
    network_grads, group_norms = [], []
    for grads in group_grads:
      clipped, norm = tf.clip_by_global_norm(grads,
                                             self._config.max_grad_norm)
      network_grads += clipped
      group_norms.append(norm)
    return (loss_info, network_grads, dual_grads,
            tf.linalg.global_norm(group_norms))

  def _solve_eta(self, experience, weights) -> None:
    """Sets eta to the exact minimiser of this batch's dual g(eta)."""
    info = experience.policy_info
    eta = losses.solve_eta(info['eta_advantages'], self._config.epsilon_eta,
                           _valid_steps(experience, weights),
                           info['eta_log_ratios'])
    raw = self._eta.bijector.inverse(eta)
    variable = self._eta.pretransformed_input
    # Every replica solved the same eta (over the global batch); a mirrored
    # variable is assigned from the cross-replica context.
    tf.distribute.get_replica_context().merge_call(
        lambda strategy, value: strategy.extended.update(
            variable, lambda v, x: v.assign(x), args=(value,)),
        args=(raw,))

  def _train(self, experience, weights=None):
    """One M-step and dual step on a [B, T] batch.

    Under a `tf.distribute` strategy (agent built in its scope, `train` run
    by `strategy.run` on each replica's part of the batch) the update is the
    one of a single replica on the global batch; the returned losses are
    this replica's shares, which sum over the replicas to the global ones.
    """
    normalizer = self._network.normalizer
    if normalizer is not None:
      # Every replayed observation, terminal ones included, is a state the
      # networks read; the losses below see the updated statistics.
      normalizer.update(model_lib.network_input(experience.observation))
    if (self._config.eta_update == 'solve' and
        'eta_advantages' in experience.policy_info):
      self._solve_eta(experience, weights)
    network_variables = tf.nest.flatten(self._network.variable_groups)
    dual_variables = self._dual_variables()
    loss_info, network_grads, dual_grads, grad_norm = (
        self._compiled_loss_and_gradients(experience, weights))
    # Outside XLA, where CheckNumerics is a no-op: no update from NaN/Inf.
    # Checked one after another, so the error names the first term of the
    # loss that is not finite (`NON_FINITE_MESSAGE`); the diagnostics (KLs,
    # multipliers) are not checked: they do not reach the update.
    terms = [(name, value) for name, value in
             zip(SpoLossInfo._fields, loss_info.extra)
             if name.endswith('_loss')]
    check = tf.no_op()
    for name, value in (*terms, ('loss', loss_info.loss),
                        ('gradient_norm', grad_norm)):
      with tf.control_dependencies([check]):
        check = tf.debugging.check_numerics(value, f'SPO {name}')
    with tf.control_dependencies([check]):
      network_grads = tf.nest.map_structure(tf.identity, network_grads)
    # The gradients are already summed over the replicas.
    aggregation = ({'skip_gradients_aggregation': True}
                   if losses.num_replicas() > 1 else {})
    self._optimizer.apply_gradients(zip(network_grads, network_variables),
                                    **aggregation)
    self._dual_optimizer.apply_gradients(zip(dual_grads, dual_variables),
                                         **aggregation)
    # Mirrored variables are updated from the cross-replica context.
    tf.distribute.get_replica_context().merge_call(
        lambda _: common.soft_variables_update(
            self._network.trainable_variables,
            self._target_network.trainable_variables,
            tau=self._config.target_update_tau))
    self.train_step_counter.assign_add(1)
    self._summarize(loss_info, grad_norm, experience,
                    list(zip(network_grads, network_variables)))
    return loss_info

  def _summarize(self, loss_info, grad_norm, experience, grads_and_vars):
    if not self.summaries_enabled:
      return
    step = self.train_step_counter
    tf.compat.v2.summary.scalar('loss/total', loss_info.loss, step=step)
    tf.compat.v2.summary.scalar('loss/grad_norm', grad_norm, step=step)
    for name, value in loss_info.extra._asdict().items():
      tf.compat.v2.summary.scalar(f'loss/{name}', value, step=step)
    if self.debug_summaries:
      for key, spec in self.collect_policy.info_spec.items():
        if spec.shape.rank == 0:
          tf.compat.v2.summary.scalar(
              f'search/{key}', tf.reduce_mean(experience.policy_info[key]),
              step=step)
    if self.summarize_grads_and_vars:
      common.add_variables_summaries(grads_and_vars, step)
      common.add_gradients_summaries(grads_and_vars, step)
