"""SMC search of SPO (paper 000, sec. 4.2.1) and TRT-SMC (paper 001, sec. 3).

The search is a pure function of its inputs in the style of mctx: the root
observations, the environment model used for planning, a function evaluating
the network, the temperature eta, a static `SearchConfig` and an explicit
stateless seed. It is static-shaped apart from the batch dimension, and
compiles with `tf.function(jit_compile=True)`.

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

from typing import Any, Callable, NamedTuple, Optional, Sequence

import tensorflow as tf
import tensorflow_probability as tfp

from environments import model as model_lib
from tf_spo import config as config_lib

tfd = tfp.distributions

# Maps observations [M, ...] to (policy logits [M, A], values [M]) or, for a
# twisted proposal, (policy logits, values, Q-values [M, A]).
NetworkFn = Callable[[Any], Sequence[tf.Tensor]]

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
    action_weights: q-hat, [B, A] float32. Dirac: the normalised particle
      weights summed over root actions. Message passing: proportional to
      pi(a) * exp(Q-hat(a)).
    root_actions: [B, N] int32, root action of each surviving particle.
    particle_weights: [B, N] float32, normalised final particle weights.
    value: [B] float32, weighted mean over particles of the discounted search
      return bootstrapped with V at the leaves.
    retrace_value: [B] float32, weighted mean over particles of the
      Retrace(lambda) estimate of V at the root along each particle's path.
    root_value: [B] float32, V of the root.
    prior_logits: [B, A] float32, policy logits at the root.
    eta_advantages: [B, N] float32, per particle the sum of the one-step
      advantages before the first resampling, where particles are still
      i.i.d. rollouts of the proposal (paper 000, appendix D.1).
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
  """

  action_weights: tf.Tensor
  root_actions: tf.Tensor
  particle_weights: tf.Tensor
  value: tf.Tensor
  retrace_value: tf.Tensor
  root_value: tf.Tensor
  prior_logits: tf.Tensor
  eta_advantages: tf.Tensor
  eta_log_ratios: tf.Tensor
  ess: tf.Tensor
  weight_entropy: tf.Tensor
  alive_fraction: tf.Tensor
  proposal_kl: tf.Tensor
  proposal_beta: tf.Tensor


class Proposal(NamedTuple):
  """Actions drawn from a proposal, with their importance log-ratios.

  Attributes:
    action: [M] int32 sampled actions.
    log_ratio: [M] float32, log pi(action) - log proposal(action), the
      importance correction of the particle weights.
    kl: [M] float32, KL(proposal || pi).
    beta: [M] float32, inverse temperature of the twisting (0 for none).
  """
  action: tf.Tensor
  log_ratio: tf.Tensor
  kl: tf.Tensor
  beta: tf.Tensor


def root_prior(logits: tf.Tensor, config: config_lib.SearchConfig,
               add_noise: bool, seed: tf.Tensor) -> tf.Tensor:
  """Root sampling distribution: pi, optionally mixed with Dirichlet noise.

  Args:
    logits: [B, A] policy logits at the root.
    config: the search configuration (noise alpha and fraction).
    add_noise: Python bool, mix in Dirichlet(alpha) noise (collect policy).
    seed: stateless seed, shape [2].

  Returns:
    [B, A] log-probabilities to sample root actions from.
  """
  if not add_noise:
    return tf.nn.log_softmax(logits)
  concentration = tf.fill(tf.shape(logits), config.root_dirichlet_alpha)
  noise = tfd.Dirichlet(concentration).sample(seed=seed)
  fraction = config.root_exploration_fraction
  probs = (1.0 - fraction) * tf.nn.softmax(logits) + fraction * noise
  return tf.math.log(probs)


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


def sample_proposal(logits: tf.Tensor, q_values: Optional[tf.Tensor],
                    config: config_lib.SearchConfig,
                    seed: tf.Tensor) -> Proposal:
  """Samples one action per row from pi or from the twisted proposal.

  Without twisting (`config.proposal_alpha == 0`) actions come from pi and the
  log-ratios are 0. With twisting, the atoms are the whole action set when it
  has at most `config.proposal_atoms` actions (base = pi), else that many
  atoms drawn from pi (base = uniform over the atoms).

  Args:
    logits: [M, A] log-probabilities (up to a constant) of pi.
    q_values: [M, A] Q-values, or None without twisting.
    config: the search configuration.
    seed: stateless seed, shape [2].

  Returns:
    A `Proposal` of [M] tensors.
  """
  if config.proposal_alpha == 0.0:
    action = tf.reshape(
        tf.random.stateless_categorical(logits, 1, seed, dtype=tf.int32), [-1])
    zeros = tf.zeros_like(logits[:, 0])
    return Proposal(action, zeros, zeros, zeros)
  atom_seed, sample_seed = tf.unstack(
      tf.random.experimental.stateless_split(seed, 2))
  num_actions = logits.shape[-1]
  if num_actions <= config.proposal_atoms:
    atoms = tf.broadcast_to(tf.range(num_actions), tf.shape(logits))
    base = tf.nn.log_softmax(logits)
  else:
    atoms = tf.random.stateless_categorical(
        logits, config.proposal_atoms, atom_seed, dtype=tf.int32)
    base = tf.fill(tf.shape(atoms), -tf.math.log(
        float(config.proposal_atoms)))
  log_q, kl, beta = twisted_proposal(
      base, tf.gather(q_values, atoms, batch_dims=1), config.proposal_alpha)
  index = tf.reshape(
      tf.random.stateless_categorical(log_q, 1, sample_seed, dtype=tf.int32),
      [-1])
  log_ratio = (tf.gather(base, index, batch_dims=1) -
               tf.gather(log_q, index, batch_dims=1))
  return Proposal(tf.gather(atoms, index, batch_dims=1), log_ratio, kl, beta)


def resample(log_weights: tf.Tensor, particles: Any,
             seed: tf.Tensor) -> Any:
  """Multinomial resampling of each root's particles.

  Args:
    log_weights: [B, N] unnormalised log-weights.
    particles: nest of tensors with leading dimension B * N (batch-major).
    seed: stateless seed, shape [2].

  Returns:
    `particles` gathered at N ancestors per root drawn with probabilities
    proportional to exp(log_weights).
  """
  num_particles = log_weights.shape[1]
  ancestors = tf.random.stateless_categorical(
      log_weights, num_particles, seed, dtype=tf.int32)
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


def update_references(particles: dict) -> dict:
  """Revived resampling: a living particle's reference becomes its state.

  Args:
    particles: particle nest with `alive` [M] and `reference`, a dict of some
      of the particle's fields (its last non-terminal state and what was
      evaluated there).

  Returns:
    `particles` whose references are the current fields where alive.
  """
  reference = particles['reference']
  current = {key: particles[key] for key in reference}
  return dict(particles, reference=model_lib.select(
      particles['alive'] > 0, current, reference))


def revive(particles: dict) -> dict:
  """Revived resampling: restarts every particle from its reference.

  Called right after resampling: particles drawn from a terminated ancestor
  continue from that ancestor's last non-terminal state (paper 001, sec. 3.2,
  algorithm 2 line 13); living ones are unchanged, since their reference is
  their current state.
  """
  particles = dict(particles, **particles['reference'])
  particles['alive'] = tf.ones_like(particles['alive'])
  return particles


def _per_root(x: tf.Tensor, num_particles: int) -> tf.Tensor:
  """Reshapes a [B * N] particle tensor to [B, N]."""
  return tf.reshape(x, [-1, num_particles])


def _evaluate(network_fn: NetworkFn, observation,
              config: config_lib.SearchConfig):
  """(logits, values, Q-values or None) of the network at observations."""
  outputs = network_fn(observation)
  if config.proposal_alpha == 0.0:
    return outputs[0], outputs[1], None
  if len(outputs) < 3:
    raise ValueError('--proposal_alpha > 0 needs Q-values: network_fn must '
                     'return (logits, values, q_values), e.g. a '
                     'PolicyValueNetwork(q_head=True).')
  return outputs[0], outputs[1], outputs[2]


def smc_search(root_observation: Any, model, network_fn: NetworkFn,
               eta: tf.Tensor, config: config_lib.SearchConfig,
               seed: tf.Tensor, add_root_noise: bool = False) -> SearchOutput:
  """Runs the SMC search from a batch of root observations.

  Each of N particles per root samples its actions from the proposal (pi, or
  with `proposal_alpha > 0` the trust-region twisted proposal; at the root,
  pi optionally mixed with Dirichlet noise). For `depth` steps, it steps the
  model, evaluates the network at the new state and adds
  A / eta + log pi(a) / proposal(a), with the one-step advantage
  A = r + gamma * discount * V(s') - V(s), to its log-weight; a particle whose
  episode ended stops accumulating. Every `resample_period` steps, except
  after the last step, the particles are resampled multinomially with their
  root actions and their weights reset; with revived resampling, a particle
  drawn from a terminated ancestor restarts from that ancestor's last
  non-terminal state. q-hat is either the final normalised weights summed over
  root actions (Dirac; skipping the last resampling, which would only add
  variance) or the message-passing estimate.

  Args:
    root_observation: nest of [B, ...] observations matching the model.
    model: an `environments.EnvironmentModel` used for planning.
    network_fn: maps observations [M, ...] to (logits, values[, Q-values]).
    eta: scalar temperature, > 0.
    config: static `SearchConfig`.
    seed: stateless seed, int32/int64 tensor of shape [2].
    add_root_noise: Python bool, Dirichlet noise at the root.

  Returns:
    A `SearchOutput`.
  """
  n = config.num_particles
  gamma = config.discount
  eta = tf.convert_to_tensor(eta, tf.float32)
  # XLA's stateless multinomial takes int32 seeds only.
  seeds = tf.random.experimental.stateless_split(
      tf.cast(seed, tf.int32), num=2 * config.depth + 1)

  root_logits, root_value, root_q = _evaluate(network_fn, root_observation,
                                              config)
  num_actions = root_logits.shape[-1]
  repeat = lambda x: tf.repeat(x, n, axis=0)
  batch = tf.shape(root_value)[0]
  particles = dict(
      state=tf.nest.map_structure(
          repeat, model.state_from_observation(root_observation)),
      # Proposal base at the current state: the (noised) prior at the root.
      logits=repeat(root_prior(root_logits, config, add_root_noise,
                               seeds[0])),
      value=repeat(root_value),
      alive=tf.ones_like(repeat(root_value)),
      root_index=tf.tile(tf.range(n), [batch]),
      search_return=tf.zeros_like(repeat(root_value)),
      retrace=repeat(root_value),
      trace=tf.ones_like(repeat(root_value)),
  )
  if root_q is not None:
    particles['q_values'] = repeat(root_q)
  reference_keys = ('state', 'logits', 'value', 'q_values')
  if config.revived_resampling:
    particles['reference'] = {
        k: particles[k] for k in reference_keys if k in particles}

  zeros = tf.zeros_like(_per_root(particles['value'], n))
  log_weights, eta_advantages, eta_log_ratios = zeros, zeros, zeros
  ancestor_q = zeros
  proposal_kl, proposal_beta = zeros, zeros
  root_actions = None

  for step in range(config.depth):
    proposal = sample_proposal(particles['logits'],
                               particles.get('q_values'), config,
                               seeds[2 * step + 1])
    if step == 0:
      root_actions = proposal.action
      particles['root_action'] = root_actions
    proposal_kl += _per_root(proposal.kl, n) / config.depth
    proposal_beta += _per_root(proposal.beta, n) / config.depth

    model_step = model.step(particles['state'], proposal.action)
    logits, value, q_values = _evaluate(
        network_fn, model.observe(model_step.state), config)
    alive = particles['alive']
    advantage = alive * (model_step.reward + gamma * model_step.discount * value
                         - particles['value'])
    log_ratio = alive * proposal.log_ratio
    increment = _per_root(advantage / eta + log_ratio, n)
    log_weights += increment
    if step < config.resample_period:
      eta_advantages += _per_root(advantage, n)
      eta_log_ratios += _per_root(log_ratio, n)
    if config.policy_inference == 'message_passing':
      # The root atoms' own proposal correction is left out: q-hat applies
      # pi(a) explicitly.
      ancestor_q += group_log_mean_exp(
          increment if step else _per_root(advantage / eta, n),
          _per_root(particles['root_index'], n), n)
    # Retrace(lambda): V(s0) + sum_k gamma^k prod_{i<=k} c_i delta_k, with
    # c_0 = min(1, rho_0) and c_i = lambda min(1, rho_i).
    trace_factor = tf.minimum(1.0, tf.exp(proposal.log_ratio))
    if step:
      trace_factor *= gamma * config.retrace_lambda
    particles['trace'] *= trace_factor
    particles['retrace'] += particles['trace'] * advantage
    particles['search_return'] += alive * gamma**step * model_step.reward
    particles.update(
        state=model_step.state, logits=logits, value=value,
        alive=alive * (1.0 - tf.cast(model_step.done, tf.float32)))
    if q_values is not None:
      particles['q_values'] = q_values
    if config.revived_resampling:
      particles = update_references(particles)
    if step + 1 == config.depth:
      break
    if (step + 1) % config.resample_period == 0:
      particles = resample(log_weights, particles, seeds[2 * step + 2])
      log_weights = tf.zeros_like(log_weights)
      if config.revived_resampling:
        particles = revive(particles)

  weights = tf.nn.softmax(log_weights, axis=-1)
  surviving_root_actions = _per_root(particles['root_action'], n)
  if config.policy_inference == 'message_passing':
    action_weights = message_passing_policy(
        root_logits, _per_root(root_actions, n), ancestor_q)
  else:
    action_weights = tf.einsum(
        'bn,bna->ba', weights,
        tf.one_hot(surviving_root_actions, num_actions))
  weighted = lambda x: tf.reduce_sum(weights * _per_root(x, n), axis=-1)
  return SearchOutput(
      action_weights=action_weights,
      root_actions=surviving_root_actions,
      particle_weights=weights,
      # Particles still running after `depth` steps bootstrap with V.
      value=weighted(particles['search_return'] + gamma**config.depth *
                     particles['alive'] * particles['value']),
      retrace_value=weighted(particles['retrace']),
      root_value=root_value,
      prior_logits=root_logits,
      eta_advantages=eta_advantages,
      eta_log_ratios=eta_log_ratios,
      ess=1.0 / tf.reduce_sum(tf.square(weights), axis=-1),
      weight_entropy=-tf.reduce_sum(
          weights * tf.math.log(tf.maximum(weights, 1e-30)), axis=-1),
      alive_fraction=tf.reduce_mean(_per_root(particles['alive'], n), -1),
      proposal_kl=tf.reduce_mean(proposal_kl, -1),
      proposal_beta=tf.reduce_mean(proposal_beta, -1),
  )

