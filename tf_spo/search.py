"""SMC search of SPO (paper 000, sec. 4.2.1) and TRT-SMC (paper 001, sec. 3).

The search is a pure function of its inputs in the style of mctx: the root
observations, the environment model used for planning, a function evaluating
the network, the temperature eta, a static `SearchConfig` and an explicit
stateless seed. It is static-shaped apart from the batch dimension, and
compiles with `tf.function(jit_compile=True)` for pure-TF models.

It is written once for every action space (`tf_spo.action_spaces`, chosen by
the model's action spec): particles carry search actions of any shape, and
q-hat is the weighted set of N root actions (atoms [B, N, ...] and weights
[B, N]); for discrete actions also the per-action probabilities [B, A]. The
search plans from the model's true state: the `PlanningObservation`'s
planning state, or `model.state_from_observation` for models whose
observation is their state.

With the TRT-SMC switches of `SearchConfig` off it is the SPO search. The
switches are: a trust-region twisted proposal (`proposal_alpha > 0`), revived
resampling, and message-passing policy inference; the Retrace(lambda) search
value is always computed (with the untwisted proposal its traces are
lambda^k).

Particles are laid out batch-major: a particle tensor has a leading dimension
`B * N` whose row `b * N + n` is particle `n` of root `b`, so the environment
model sees particles as a bigger batch and resampling is one `tf.gather` over
the particle nest.
"""

from typing import Any, Callable, NamedTuple, Optional, Tuple

import tensorflow as tf

from environments import model as model_lib
from tf_spo import action_spaces
from tf_spo import config as config_lib
from tf_spo import networks

# Maps network inputs [M, ...] to a `networks.NetworkOutput`; for a twisted
# proposal its `q` must be set.
NetworkFn = Callable[[Any], networks.NetworkOutput]
# Maps (`NetworkOutput.q` of M states, environment actions [M, K, ...]) to
# Q-values [M, K]. Discrete Q-values [M, A] are gathered by default.
QFn = Callable[[Any, tf.Tensor], tf.Tensor]
# Maps (proposal base parameters [M, ...], `NetworkOutput.q` of the M states
# or (), stateless seed [2]) to a `Proposal` of one action per row.
ProposalFn = Callable[[Any, Any, tf.Tensor], 'Proposal']
# Maps the log-weights [B, N] at a resampling step to the bool [B] roots to
# resample.
ResampleRuleFn = Callable[[tf.Tensor], tf.Tensor]

# Bisection on log(beta * spread of Q) for the twisted proposal: from
# e^-20 (q = pi to float32 precision) to e^25 (greedy unless Q-values tie to
# 1e-10 of their spread); 45 halvings leave a bracket of 45 / 2**45.
_BISECTION_STEPS = 45
_LOG_BETA_RANGE = (-20.0, 25.0)
_MIN_KL = 1e-6
# Stands for log 0 in masked log-sum-exps (finite, so gradients stay finite).
_LOG_ZERO = -1e30


class SearchOutput(NamedTuple):
  """What one search returns for a batch of B roots with N particles.

  Attributes:
    atoms: [B, N, ...] search actions of q-hat's atoms (the root actions of
      the surviving particles; with message passing, the N root actions
      sampled at the root). Pre-squash actions for Gaussian policies.
    atom_weights: [B, N] float32 normalised weights of the atoms.
    action_weights: discrete actions: q-hat as probabilities [B, A] float32
      (Dirac: the atom weights summed per action; message passing:
      proportional to pi(a) * exp(Q-hat(a))). None for continuous actions.
    policy_target: the M-step's target as an `Estimate`: q-hat's atoms and
      weights, or with `policy_target_horizon > 0` the estimate over the
      search's first steps.
    particle_weights: [B, N] float32, normalised final particle weights.
    value: [B] float32, weighted mean over particles of the discounted search
      return bootstrapped with V at the leaves.
    retrace_value: [B] float32, weighted mean over particles of the
      Retrace(lambda) estimate of V at the root along each particle's path.
    root_value: [B] float32, V of the root.
    prior: policy parameters at the root (`NetworkOutput.policy`).
    eta_advantages: [B, N] float32, per particle the sum of the one-step
      advantages before its root's first resampling, where particles are
      still i.i.d. rollouts of the proposal (paper 000, appendix D.1).
    eta_log_ratios: [B, N] float32, per particle the summed log pi/proposal
      of the same segment (0 without a twisted proposal).
    ess: [B] float32, effective sample size of the final weights, in [1, N].
    weight_entropy: [B] float32, entropy of the final normalised weights.
    alive_fraction: [B] float32, fraction of particles not in a terminal
      state at the end.
    proposal_kl: [B] float32, mean KL(proposal || pi) over particles and
      steps (0 without a twisted proposal).
    proposal_beta: [B] float32, mean inverse temperature beta of the twisted
      proposal over particles and steps (0 without one).
    resample_fraction: [B] float32, resamplings of the root per resampling
      opportunity (1 with a fixed period, 0 if the search never resamples).
  """

  atoms: tf.Tensor
  atom_weights: tf.Tensor
  action_weights: Optional[tf.Tensor]
  policy_target: 'Estimate'
  particle_weights: tf.Tensor
  value: tf.Tensor
  retrace_value: tf.Tensor
  root_value: tf.Tensor
  prior: Any
  eta_advantages: tf.Tensor
  eta_log_ratios: tf.Tensor
  ess: tf.Tensor
  weight_entropy: tf.Tensor
  alive_fraction: tf.Tensor
  proposal_kl: tf.Tensor
  proposal_beta: tf.Tensor
  resample_fraction: tf.Tensor


class Proposal(NamedTuple):
  """Actions drawn from a proposal, with their importance log-ratios.

  Attributes:
    action: [M, ...] sampled search actions.
    log_ratio: [M] float32, log pi(action) - log proposal(action), the
      importance correction of the particle weights.
    kl: [M] float32, KL(proposal || pi).
    beta: [M] float32, inverse temperature of the twisting (0 for none).
  """
  action: tf.Tensor
  log_ratio: tf.Tensor
  kl: tf.Tensor
  beta: tf.Tensor


def root_prior(policy: Any, action_space: action_spaces.ActionSpace,
               config: config_lib.SearchConfig, add_noise: bool,
               seed: tf.Tensor) -> Any:
  """Root sampling distribution: pi, optionally with exploration noise.

  Args:
    policy: policy parameters [B, ...] at the root.
    action_space: the action space.
    config: the search configuration (noise alpha and fraction).
    add_noise: Python bool, add the action space's root noise (discrete:
      Dirichlet(alpha) mixed in; collect policy).
    seed: stateless seed, shape [2].

  Returns:
    Policy parameters to sample root actions from (discrete: [B, A]
    log-probabilities).
  """
  if not add_noise:
    return tf.nn.log_softmax(policy) if action_space.is_discrete else policy
  return action_space.root_noise(policy, config.root_dirichlet_alpha,
                                 config.root_exploration_fraction, seed)


def twisted_proposal(base_log_probs: tf.Tensor, q_values: tf.Tensor,
                     alpha: float):
  """Trust-region twisted proposal over K atoms (paper 001, eq. 7, app. B.5).

  q is proportional to base * exp(beta * Q), with beta >= 0 found by bisection
  (on log beta) so that KL(q || base) = eps = alpha * KL(greedy || base),
  where greedy puts all mass on the atom of highest Q. KL(q || base) grows
  monotonically with beta from 0 (q = base) to KL(greedy || base) (beta ->
  infinity), so alpha = 0 gives q = base and alpha = 1 approaches greedy.

  Args:
    base_log_probs: [M, K] normalised log-probabilities of the base (pi, or
      uniform over atoms bootstrapped from pi).
    q_values: [M, K] Q-values of the atoms.
    alpha: Python float greediness in [0, 1].

  Returns:
    (log_q [M, K] normalised log-probabilities, kl [M], beta [M]).
  """
  greedy = tf.argmax(q_values, axis=-1, output_type=tf.int32)
  target = -alpha * tf.gather(base_log_probs, greedy, batch_dims=1)
  spread = tf.maximum(
      tf.reduce_max(q_values, -1) - tf.reduce_min(q_values, -1), 1e-6)
  scaled_q = q_values / spread[:, None]

  def twist(beta):
    log_q = tf.nn.log_softmax(base_log_probs + beta[:, None] * scaled_q)
    kl = tf.reduce_sum(tf.exp(log_q) * (log_q - base_log_probs), axis=-1)
    return log_q, kl

  def bisect(low, high):
    middle = 0.5 * (low + high)
    too_far = twist(tf.exp(middle))[1] > target
    return tf.where(too_far, low, middle), tf.where(too_far, middle, high)

  low = tf.fill(tf.shape(target), _LOG_BETA_RANGE[0])
  high = tf.fill(tf.shape(target), _LOG_BETA_RANGE[1])
  low, high = tf.while_loop(lambda low, high: True, bisect, (low, high),
                            maximum_iterations=_BISECTION_STEPS)
  # Below float32 resolution of the KL the bisection only chases rounding
  # noise: such targets (alpha = 0, or pi already greedy) get q = pi.
  scaled_beta = tf.where(target > _MIN_KL, tf.exp(0.5 * (low + high)), 0.0)
  log_q, kl = twist(scaled_beta)
  return log_q, kl, scaled_beta / spread


def policy_proposal(action_space: action_spaces.ActionSpace) -> ProposalFn:
  """The SPO proposal: one action per row from pi, log-ratios 0.

  Args:
    action_space: the action space.

  Returns:
    A `ProposalFn` that ignores Q.
  """

  def propose(policy, q, seed):
    del q  # Unused: pi is not twisted.
    action = action_space.sample(policy, 1, seed)[:, 0]
    zeros = tf.zeros(tf.shape(action)[:1], tf.float32)
    return Proposal(action, zeros, zeros, zeros)

  return propose


def twisted_policy_proposal(action_space: action_spaces.ActionSpace,
                            q_fn: QFn, alpha: float,
                            num_atoms: int) -> ProposalFn:
  """The trust-region twisted proposal of TRT-SMC (paper 001, sec. 3.1).

  The atoms are the whole action set when it can be enumerated and has at
  most `num_atoms` actions (base = pi), else `num_atoms` atoms drawn from pi
  (base = uniform over the atoms); the proposal is the base twisted by Q over
  the atoms (`twisted_proposal`).

  Args:
    action_space: the action space.
    q_fn: maps (q, environment actions [M, K, ...]) to Q-values [M, K].
    alpha: greediness in (0, 1].
    num_atoms: atoms drawn per row when the action set is not enumerated.

  Returns:
    A `ProposalFn` that reads Q.
  """

  def propose(policy, q, seed):
    atom_seed, sample_seed = tf.unstack(
        tf.random.experimental.stateless_split(seed, 2))
    all_actions = action_space.enumerate()
    if all_actions is not None and action_space.num_actions <= num_atoms:
      atoms = tf.broadcast_to(all_actions, tf.shape(policy))
      base = tf.nn.log_softmax(policy)
    else:
      atoms = action_space.sample(policy, num_atoms, atom_seed)
      base = tf.fill(tf.shape(atoms)[:2], -tf.math.log(float(num_atoms)))
    log_q, kl, beta = twisted_proposal(
        base, q_fn(q, action_space.env_action(atoms)), alpha)
    index = tf.reshape(
        tf.random.stateless_categorical(log_q, 1, sample_seed,
                                        dtype=tf.int32), [-1])
    log_ratio = (tf.gather(base, index, batch_dims=1) -
                 tf.gather(log_q, index, batch_dims=1))
    return Proposal(tf.gather(atoms, index, batch_dims=1), log_ratio, kl,
                    beta)

  return propose


def without_replacement_root(policy: tf.Tensor, num_particles: int,
                             seed: tf.Tensor) -> tf.Tensor:
  """Root actions drawn without replacement (Gumbel-top-k), discrete only.

  Per root, the actions ranked by log pi(a) + Gumbel noise (a sample of
  pi without replacement, Kool et al. 2019); particle n takes the action of
  rank n mod A, so N <= A particles start from N distinct actions and N > A
  particles cover every action. The search's target must then read pi(a)
  from the network rather than from the root counts: message passing does
  (`message_passing_policy`).

  Args:
    policy: [B * N, A] root log-probabilities, each root's row repeated for
      its N particles (batch-major).
    num_particles: N.
    seed: stateless seed, shape [2].

  Returns:
    [B * N] int32 root actions.
  """
  logits = _per_root(policy, num_particles)[:, 0]
  num_actions = logits.shape[-1]
  uniform = tf.random.stateless_uniform(tf.shape(logits), seed,
                                        minval=1e-20, maxval=1.0)
  ranking = tf.argsort(logits - tf.math.log(-tf.math.log(uniform)),
                       axis=-1, direction='DESCENDING')
  ranks = tf.range(num_particles) % num_actions
  return tf.reshape(tf.gather(ranking, ranks, axis=1), [-1])


def resample(log_weights: tf.Tensor, particles: Any, seed: tf.Tensor,
             roots: Optional[tf.Tensor] = None) -> Any:
  """Multinomial resampling of each root's particles.

  Args:
    log_weights: [B, N] unnormalised log-weights.
    particles: nest of tensors with leading dimension B * N (batch-major).
    seed: stateless seed, shape [2].
    roots: optional bool [B]: resample only these roots, keep the others'
      particles in place.

  Returns:
    `particles` gathered at N ancestors per root drawn with probabilities
    proportional to exp(log_weights).
  """
  num_particles = log_weights.shape[1]
  ancestors = tf.random.stateless_categorical(
      log_weights, num_particles, seed, dtype=tf.int32)
  if roots is not None:
    ancestors = tf.where(roots[:, None], ancestors,
                         tf.range(num_particles)[None])
  offsets = tf.range(tf.shape(log_weights)[0], dtype=tf.int32)[:, None]
  flat = tf.reshape(ancestors + offsets * num_particles, [-1])
  return tf.nest.map_structure(lambda x: tf.gather(x, flat), particles)


def group_log_mean_exp(values: tf.Tensor, groups: tf.Tensor,
                       num_groups: int) -> tf.Tensor:
  """log mean exp of `values` within each group, 0 for empty groups.

  Args:
    values: [B, N] float32.
    groups: [B, N] int32 group of each entry, in [0, num_groups).
    num_groups: G, Python int.

  Returns:
    [B, G] float32.
  """
  members = tf.one_hot(groups, num_groups) > 0  # [B, N, G]
  masked = tf.where(members, values[..., None], _LOG_ZERO)
  counts = tf.reduce_sum(tf.cast(members, tf.float32), axis=1)
  log_sum = tf.reduce_logsumexp(masked, axis=1)
  return tf.where(counts > 0,
                  log_sum - tf.math.log(tf.maximum(counts, 1.0)), 0.0)


def message_passing_policy(prior_logits: tf.Tensor, root_actions: tf.Tensor,
                           ancestor_q: tf.Tensor) -> tf.Tensor:
  """q-hat proportional to pi(a) * exp(Q-hat(a)) (paper 001, sec. 3.3).

  Q-hat(a) is the log-mean-exp of the message-passing estimates Q-hat_j of
  the root atoms j that took action a, and 0 (the V baseline) for actions no
  atom took, so a search that learns nothing returns pi.

  Args:
    prior_logits: [B, A] root policy logits.
    root_actions: [B, N] int32 action of each root atom j.
    ancestor_q: [B, N] float32 accumulated Q-hat_j (in units of 1 / eta).

  Returns:
    [B, A] float32 probabilities.
  """
  num_actions = prior_logits.shape[-1]
  action_q = group_log_mean_exp(ancestor_q, root_actions, num_actions)
  return tf.nn.softmax(tf.nn.log_softmax(prior_logits) + action_q, axis=-1)


class Particles(NamedTuple):
  """The N particles of each of B roots, batch-major ([B * N, ...] leaves).

  Attributes:
    state: the model's states.
    policy: proposal base parameters at the current state (at the root, the
      optionally noised prior).
    value: [B * N] V at the current state.
    q: `NetworkOutput.q` at the current state for a proposal that reads Q,
      else ().
    alive: [B * N] float32, 1 while the particle's episode runs.
    root_index: [B * N] int32, the root atom n the particle descends from.
    root_action: [B * N, ...] the particle's root action (() before the
      first step).
    search_return: [B * N] discounted sum of the rewards so far.
    retrace: [B * N] Retrace(lambda) estimate of V at the root so far.
    trace: [B * N] product of the Retrace trace factors so far.
    reference: dict of some fields (`SearchFunctions.reference_fields`) at
      the particle's last non-terminal state, for revived resampling; {}
      without it.
  """
  state: Any
  policy: Any
  value: tf.Tensor
  q: Any
  alive: tf.Tensor
  root_index: tf.Tensor
  root_action: Any
  search_return: tf.Tensor
  retrace: tf.Tensor
  trace: tf.Tensor
  reference: dict


# What revived resampling restores from a particle's last non-terminal state.
REFERENCE_FIELDS = ('state', 'policy', 'value', 'q')


def update_references(particles: Particles) -> Particles:
  """Revived resampling: a living particle's reference becomes its state.

  Args:
    particles: `Particles` whose `reference` holds some of their fields at
      their last non-terminal state (none without revival: a no-op).

  Returns:
    `particles` whose references are the current fields where alive.
  """
  reference = particles.reference
  current = {key: getattr(particles, key) for key in reference}
  return particles._replace(reference=model_lib.select(
      particles.alive > 0, current, reference))


def revive(particles: Particles,
           where: Optional[tf.Tensor] = None) -> Particles:
  """Revived resampling: restarts particles from their references.

  Called right after resampling: particles drawn from a terminated ancestor
  continue from that ancestor's last non-terminal state (paper 001, sec. 3.2,
  algorithm 2 line 13); living ones are unchanged, since their reference is
  their current state.

  Args:
    particles: `Particles` with references.
    where: optional bool [B * N], the particles that were resampled (all if
      None).

  Returns:
    The particles.
  """
  revived = particles._replace(alive=tf.ones_like(particles.alive),
                               **particles.reference)
  if where is None:
    return revived
  return model_lib.select(where, revived, particles)


def _keep(particles: Particles, where: Optional[tf.Tensor] = None):
  """Resampling without revival: the particles as drawn."""
  del where  # Unused.
  return particles


def every_root(log_weights: tf.Tensor) -> tf.Tensor:
  """Resampling rule of SPO: every root resamples at its period."""
  return tf.ones(tf.shape(log_weights)[:1], tf.bool)


def low_ess_roots(min_ess: float) -> ResampleRuleFn:
  """Adaptive resampling: the roots whose ESS fell below `min_ess`."""
  return lambda log_weights: _ess(tf.nn.softmax(log_weights)) < min_ess


class Estimate(NamedTuple):
  """q-hat of B roots from N atoms.

  Attributes:
    atoms: [B, N, ...] search actions of the atoms.
    atom_weights: [B, N] normalised weights of the atoms.
    action_weights: discrete actions: q-hat as probabilities [B, A]; None
      for continuous actions.
  """
  atoms: tf.Tensor
  atom_weights: tf.Tensor
  action_weights: Optional[tf.Tensor]


class PolicyEstimator(NamedTuple):
  """How the search turns its particles into q-hat.

  Attributes:
    accumulate: maps (statistic [B, N], step, log-weight increments [B, N],
      advantages / eta [B, N], root indices [B, N]) to the statistic after
      the step; it starts at zeros [B, N].
    estimate: maps (statistic [B, N], final `Particles`, final normalised
      weights [B, N], root atoms [B, N, ...], their proposal log-ratios
      [B, N], root prior parameters [B, ...]) to an `Estimate`.
  """
  accumulate: Callable[..., tf.Tensor]
  estimate: Callable[..., Estimate]


def dirac_estimator(action_space: action_spaces.ActionSpace,
                    num_particles: int) -> PolicyEstimator:
  """SPO's q-hat: the surviving particles' root actions, final weights.

  The search skips the last resampling, which would only add variance.
  """

  def accumulate(statistic, step, increment, scaled_advantage, root_index):
    del step, increment, scaled_advantage, root_index  # Unused.
    return statistic

  def estimate(statistic, particles, weights, root_atoms, root_log_ratio,
               prior):
    del statistic, root_atoms, root_log_ratio, prior  # Unused.
    atoms = _per_root(particles.root_action, num_particles)
    return Estimate(atoms, weights, action_space.probabilities(atoms, weights))

  return PolicyEstimator(accumulate, estimate)


def message_passing_estimator(action_space: action_spaces.ActionSpace,
                              num_particles: int,
                              horizon: Optional[int] = None
                              ) -> PolicyEstimator:
  """TRT-SMC's q-hat by message passing (paper 001, sec. 3.3).

  Each root atom j accumulates Q-hat_j, the log-mean-exp over the particles
  descending from it of their log-weight increments; its weight is
  softmax(Q-hat_j) (times its proposal correction for discrete actions), and
  discrete q-hat is `message_passing_policy`. With a `horizon` h only the
  first h steps' increments count (the search's policy target over h steps).
  """

  def accumulate(statistic, step, increment, scaled_advantage, root_index):
    if horizon is not None and step >= horizon:
      return statistic
    # Discrete q-hat applies pi(a) explicitly, so the root atoms' own
    # proposal correction is left out there.
    if step == 0 and action_space.is_discrete:
      increment = scaled_advantage
    return statistic + group_log_mean_exp(increment, root_index,
                                          num_particles)

  def estimate(statistic, particles, weights, root_atoms, root_log_ratio,
               prior):
    del particles, weights  # Unused.
    if not action_space.is_discrete:
      # The root proposal's correction is in the continuous Q-hat_j already.
      return Estimate(root_atoms, tf.nn.softmax(statistic, axis=-1), None)
    return Estimate(root_atoms,
                    tf.nn.softmax(statistic + root_log_ratio, axis=-1),
                    message_passing_policy(prior, root_atoms, statistic))

  return PolicyEstimator(accumulate, estimate)


class SearchFunctions(NamedTuple):
  """The search's variants, chosen once (`search_functions`) and injected.

  Attributes:
    root_proposal: `ProposalFn` of the first step.
    proposal: `ProposalFn` of the later steps.
    reads_q: whether the proposals read `NetworkOutput.q` (particles then
      carry it).
    resample_rule: `ResampleRuleFn`, the roots that resample at a period.
    reference_fields: the `Particles` fields that particles keep at their
      last non-terminal state (revived resampling), or ().
    restart: maps (resampled `Particles`, bool [B * N] resampled rows) to
      the particles that go on (`revive`, or as drawn).
    estimator: the `PolicyEstimator` of q-hat.
    target_estimator: the `PolicyEstimator` of the M-step's target, or None
      for q-hat itself.
  """
  root_proposal: ProposalFn
  proposal: ProposalFn
  reads_q: bool
  resample_rule: ResampleRuleFn
  reference_fields: Tuple[str, ...]
  restart: Callable[[Particles, Optional[tf.Tensor]], Particles]
  estimator: PolicyEstimator
  target_estimator: Optional[PolicyEstimator] = None


def search_functions(config: config_lib.SearchConfig,
                     action_space: action_spaces.ActionSpace,
                     q_fn: Optional[QFn] = None) -> SearchFunctions:
  """The functions that `config`'s switches select.

  Args:
    config: the search configuration.
    action_space: the action space.
    q_fn: Q-values of actions for the twisted proposal (discrete Q-values are
      gathered by default).

  Returns:
    `SearchFunctions`.

  Raises:
    ValueError: naming the setting that the action space or `q_fn` cannot
      serve.
  """
  n = config.num_particles
  if config.proposal_alpha > 0.0:
    if q_fn is None:
      if not action_space.is_discrete:
        raise ValueError('proposal_alpha > 0 with continuous actions needs '
                         'q_fn, e.g. PolicyValueNetwork.q_values.')
      q_fn = _gather_q
    proposal = twisted_policy_proposal(action_space, q_fn,
                                       config.proposal_alpha,
                                       config.proposal_atoms)
  else:
    proposal = policy_proposal(action_space)
  root_proposal = proposal
  if config.root_sampling == 'without_replacement':
    if not action_space.is_discrete:
      raise ValueError('root_sampling=without_replacement needs discrete '
                       'actions: a continuous action set has no ranking.')

    def root_proposal(policy, q, seed):
      del q  # Unused.
      action = without_replacement_root(policy, n, seed)
      untwisted = tf.zeros(tf.shape(action), tf.float32)
      return Proposal(action, untwisted, untwisted, untwisted)

  make_estimator = (message_passing_estimator
                    if config.policy_inference == 'message_passing'
                    else dirac_estimator)
  revived = config.revived_resampling
  return SearchFunctions(
      root_proposal=root_proposal,
      proposal=proposal,
      reads_q=config.proposal_alpha > 0.0,
      resample_rule=(low_ess_roots(config.ess_threshold * n)
                     if config.ess_threshold > 0.0 else every_root),
      reference_fields=REFERENCE_FIELDS if revived else (),
      restart=revive if revived else _keep,
      estimator=make_estimator(action_space, n),
      target_estimator=(
          message_passing_estimator(action_space, n,
                                    config.policy_target_horizon)
          if config.policy_target_horizon else None))


def _per_root(x: tf.Tensor, num_particles: int) -> tf.Tensor:
  """Reshapes a [B * N, ...] particle tensor to [B, N, ...]."""
  return tf.reshape(x, [-1, num_particles] + x.shape[1:].as_list())


def _gather_q(q: tf.Tensor, actions: tf.Tensor) -> tf.Tensor:
  """Q-values [M, A] at discrete actions [M, K]."""
  return tf.gather(q, actions, batch_dims=1)


def smc_search(root_observation: Any, model, network_fn: NetworkFn,
               eta: tf.Tensor, config: config_lib.SearchConfig,
               seed: tf.Tensor, add_root_noise: bool = False,
               q_fn: Optional[QFn] = None,
               functions: Optional[SearchFunctions] = None) -> SearchOutput:
  """Runs the SMC search from a batch of root observations.

  Each of N particles per root samples its actions from the proposal (pi, or
  with `proposal_alpha > 0` the trust-region twisted proposal; at the root,
  pi optionally with root noise). For `depth` steps, it steps the model,
  evaluates the network at the new state and adds
  A / eta + log pi(a) / proposal(a), with the one-step advantage
  A = r + gamma * discount * V(s') - V(s), to its log-weight; a particle whose
  episode ended stops accumulating. Every `resample_period` steps, except
  after the last step, the particles are resampled multinomially with their
  root actions and their weights reset; with `ess_threshold > 0` only the
  roots whose ESS fell below `ess_threshold * N` are. With revived
  resampling, a particle drawn from a terminated ancestor restarts from that
  ancestor's last non-terminal state. q-hat is either the surviving root
  actions with the final normalised weights (Dirac) or the message-passing
  estimate.

  Args:
    root_observation: nest of [B, ...] observations of the model (a
      `PlanningObservation` for models that carry their state).
    model: an `environments.EnvironmentModel` used for planning.
    network_fn: maps network inputs [M, ...] to a `NetworkOutput`.
    eta: scalar temperature, > 0.
    config: static `SearchConfig` (sizes, discount, noise; and the switches
      unless `functions` is given).
    seed: stateless seed, int32/int64 tensor of shape [2].
    add_root_noise: Python bool, root noise (collect policy).
    q_fn: maps (`NetworkOutput.q`, environment actions [M, K, ...]) to
      Q-values [M, K] for the twisted proposal; discrete Q-values [M, A] are
      gathered by default, continuous actions need it (e.g.
      `PolicyValueNetwork.q_values`).
    functions: the variants (proposals, resampling rule, revival, q-hat
      estimator); by default `search_functions(config, ...)`.

  Returns:
    A `SearchOutput`.

  Raises:
    ValueError: if the model's action spec has no action space, or the
      proposal reads Q-values the network does not return.
  """
  action_space = action_spaces.for_spec(model.action_spec())
  fns = functions or search_functions(config, action_space, q_fn)
  n = config.num_particles
  gamma = config.discount
  eta = tf.convert_to_tensor(eta, tf.float32)
  # XLA's stateless multinomial takes int32 seeds only.
  seeds = tf.random.experimental.stateless_split(
      tf.cast(seed, tf.int32), num=2 * config.depth + 1)
  # Resampling after these steps (never after the last one).
  resample_after = {step for step in range(config.depth - 1)
                    if (step + 1) % config.resample_period == 0}

  root = network_fn(model_lib.network_input(root_observation))
  if fns.reads_q and not tf.nest.flatten(root.q):
    raise ValueError('proposal_alpha > 0 needs Q-values: network_fn must '
                     'return a NetworkOutput with q, e.g. from a '
                     'PolicyValueNetwork(q_head=True).')
  repeat = lambda x: tf.repeat(x, n, axis=0)
  batch = tf.shape(root.value)[0]
  carried_q = lambda output: output.q if fns.reads_q else ()
  particles = Particles(
      state=tf.nest.map_structure(
          repeat, model_lib.planning_state(model, root_observation)),
      policy=tf.nest.map_structure(repeat, root_prior(
          root.policy, action_space, config, add_root_noise, seeds[0])),
      value=repeat(root.value),
      q=tf.nest.map_structure(repeat, carried_q(root)),
      alive=tf.ones_like(repeat(root.value)),
      root_index=tf.tile(tf.range(n), [batch]),
      root_action=(),
      search_return=tf.zeros_like(repeat(root.value)),
      retrace=repeat(root.value),
      trace=tf.ones_like(repeat(root.value)),
      reference={},
  )
  particles = particles._replace(reference={
      key: getattr(particles, key) for key in fns.reference_fields})

  zeros = tf.zeros_like(_per_root(particles.value, n))
  log_weights, eta_advantages, eta_log_ratios = zeros, zeros, zeros
  statistic = target_statistic = zeros
  proposal_kl, proposal_beta = zeros, zeros
  # 1 while a root has not resampled yet: its eta segment is still open
  # (paper 000, appendix D.1: particles are i.i.d. rollouts of the proposal
  # until then).
  first_segment = tf.ones_like(zeros[:, :1])
  resamplings = zeros[:, 0]
  root_atoms = root_log_ratio = None

  for step in range(config.depth):
    propose = fns.root_proposal if step == 0 else fns.proposal
    proposal = propose(particles.policy, particles.q, seeds[2 * step + 1])
    if step == 0:
      root_atoms = _per_root(proposal.action, n)
      root_log_ratio = _per_root(proposal.log_ratio, n)
      particles = particles._replace(root_action=proposal.action)
    proposal_kl += _per_root(proposal.kl, n) / config.depth
    proposal_beta += _per_root(proposal.beta, n) / config.depth

    model_step = model.step(particles.state,
                            action_space.env_action(proposal.action))
    output = network_fn(
        model_lib.network_input(model.observe(model_step.state)))
    alive = particles.alive
    advantage = alive * (model_step.reward + gamma * model_step.discount *
                         output.value - particles.value)
    log_ratio = alive * proposal.log_ratio
    increment = _per_root(advantage / eta + log_ratio, n)
    log_weights += increment
    eta_advantages += first_segment * _per_root(advantage, n)
    eta_log_ratios += first_segment * _per_root(log_ratio, n)
    estimator_inputs = (step, increment, _per_root(advantage / eta, n),
                        _per_root(particles.root_index, n))
    statistic = fns.estimator.accumulate(statistic, *estimator_inputs)
    if fns.target_estimator is not None:
      target_statistic = fns.target_estimator.accumulate(target_statistic,
                                                         *estimator_inputs)
    # Retrace(lambda): V(s0) + sum_k gamma^k prod_{i<=k} c_i delta_k, with
    # c_0 = min(1, rho_0) and c_i = lambda min(1, rho_i).
    trace_factor = tf.minimum(1.0, tf.exp(proposal.log_ratio))
    if step:
      trace_factor *= gamma * config.retrace_lambda
    trace = particles.trace * trace_factor
    particles = update_references(particles._replace(
        state=model_step.state, policy=output.policy, value=output.value,
        q=carried_q(output),
        alive=alive * (1.0 - tf.cast(model_step.done, tf.float32)),
        trace=trace,
        retrace=particles.retrace + trace * advantage,
        search_return=(particles.search_return +
                       alive * gamma**step * model_step.reward)))
    if step in resample_after:
      roots = fns.resample_rule(log_weights)
      particles = fns.restart(
          resample(log_weights, particles, seeds[2 * step + 2], roots),
          repeat(roots))
      log_weights = tf.where(roots[:, None], 0.0, log_weights)
      first_segment *= 1.0 - tf.cast(roots[:, None], tf.float32)
      resamplings += tf.cast(roots, tf.float32)

  weights = tf.nn.softmax(log_weights, axis=-1)
  estimate_inputs = (particles, weights, root_atoms, root_log_ratio,
                     root.policy)
  q_hat = fns.estimator.estimate(statistic, *estimate_inputs)
  policy_target = q_hat
  if fns.target_estimator is not None:
    policy_target = fns.target_estimator.estimate(target_statistic,
                                                  *estimate_inputs)
  weighted = lambda x: tf.reduce_sum(weights * _per_root(x, n), axis=-1)
  opportunities = len(resample_after)
  return SearchOutput(
      atoms=q_hat.atoms,
      atom_weights=q_hat.atom_weights,
      action_weights=q_hat.action_weights,
      policy_target=policy_target,
      particle_weights=weights,
      # Particles still running after `depth` steps bootstrap with V.
      value=weighted(particles.search_return + gamma**config.depth *
                     particles.alive * particles.value),
      retrace_value=weighted(particles.retrace),
      root_value=root.value,
      prior=root.policy,
      eta_advantages=eta_advantages,
      eta_log_ratios=eta_log_ratios,
      ess=_ess(weights),
      weight_entropy=-tf.reduce_sum(
          weights * tf.math.log(tf.maximum(weights, 1e-30)), axis=-1),
      alive_fraction=tf.reduce_mean(_per_root(particles.alive, n), -1),
      proposal_kl=tf.reduce_mean(proposal_kl, -1),
      proposal_beta=tf.reduce_mean(proposal_beta, -1),
      resample_fraction=resamplings / max(opportunities, 1),
  )


def _ess(weights: tf.Tensor) -> tf.Tensor:
  """Effective sample size [B] of normalised weights [B, N]."""
  return 1.0 / tf.reduce_sum(tf.square(weights), axis=-1)
