"""SMC search of SPO (paper 000, section 4.2.1, algorithm 1) as pure TF.

The search is a pure function of its inputs in the style of mctx: the root
observations, the environment model used for planning, a function evaluating
the policy/value network, the temperature eta, a static `SearchConfig` and an
explicit stateless seed. It is static-shaped apart from the batch dimension,
and compiles with `tf.function(jit_compile=True)`.

Particles are laid out batch-major: a particle tensor has a leading dimension
`B * N` whose row `b * N + n` is particle `n` of root `b`, so the environment
model sees particles as a bigger batch and resampling is one `tf.gather` over
the state nest.
"""

from typing import Any, Callable, NamedTuple, Tuple

import tensorflow as tf
import tensorflow_probability as tfp

from tf_spo import config as config_lib

tfd = tfp.distributions

# Maps observations [M, ...] to (policy logits [M, A], values [M]).
NetworkFn = Callable[[Any], Tuple[tf.Tensor, tf.Tensor]]


class SearchOutput(NamedTuple):
  """What one search returns for a batch of B roots with N particles.

  Attributes:
    action_weights: q-hat, [B, A] float32: normalised particle weights summed
      over the particles' root actions.
    root_actions: [B, N] int32, root action of each surviving particle.
    particle_weights: [B, N] float32, normalised final particle weights.
    value: [B] float32, weighted mean over particles of the discounted search
      return bootstrapped with V at the leaves.
    root_value: [B] float32, V of the root.
    prior_logits: [B, A] float32, policy logits at the root.
    eta_advantages: [B, N] float32, per particle the sum of the one-step
      advantages before the first resampling, where particles are still
      i.i.d. rollouts of pi (paper 000, appendix D.1).
    ess: [B] float32, effective sample size of the final weights, in [1, N].
    weight_entropy: [B] float32, entropy of the final normalised weights.
  """

  action_weights: tf.Tensor
  root_actions: tf.Tensor
  particle_weights: tf.Tensor
  value: tf.Tensor
  root_value: tf.Tensor
  prior_logits: tf.Tensor
  eta_advantages: tf.Tensor
  ess: tf.Tensor
  weight_entropy: tf.Tensor


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


def _per_root(x: tf.Tensor, num_particles: int) -> tf.Tensor:
  """Reshapes a [B * N] particle tensor to [B, N]."""
  return tf.reshape(x, [-1, num_particles])


def smc_search(root_observation: Any, model, network_fn: NetworkFn,
               eta: tf.Tensor, config: config_lib.SearchConfig,
               seed: tf.Tensor, add_root_noise: bool = False) -> SearchOutput:
  """Runs the SPO SMC search from a batch of root observations.

  Each of N particles per root samples a root action from the (optionally
  noised) prior, then for `depth` steps: steps the model, evaluates the
  network at the new state, adds the one-step advantage
  A = r + gamma * discount * V(s') - V(s), divided by eta, to its log-weight
  (a particle whose episode ended stops accumulating), and samples its next
  action from pi. Every `resample_period` steps, except after the last step,
  the particles are resampled multinomially with their root actions and
  their weights are reset. q-hat is the final normalised weights summed over
  root actions (the last resampling is skipped because resampling then
  averaging equal weights is the same estimate in expectation with more
  variance).

  Args:
    root_observation: nest of [B, ...] observations matching the model.
    model: an `environments.EnvironmentModel` used for planning.
    network_fn: maps observations [M, ...] to (logits [M, A], values [M]).
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
      tf.cast(seed, tf.int32), num=config.depth + 2)

  root_logits, root_value = network_fn(root_observation)
  num_actions = root_logits.shape[-1]
  prior = root_prior(root_logits, config, add_root_noise, seeds[0])
  root_actions = tf.reshape(
      tf.random.stateless_categorical(prior, n, seeds[1], dtype=tf.int32),
      [-1])

  repeat = lambda x: tf.repeat(x, n, axis=0)
  state = tf.nest.map_structure(
      repeat, model.state_from_observation(root_observation))
  particles = dict(
      state=state,
      root_action=root_actions,
      action=root_actions,
      value=repeat(root_value),
      alive=tf.ones_like(repeat(root_value)),
      search_return=tf.zeros_like(repeat(root_value)),
  )
  log_weights = tf.zeros_like(_per_root(particles['value'], n))
  eta_advantages = tf.zeros_like(log_weights)

  for step in range(config.depth):
    model_step = model.step(particles['state'], particles['action'])
    logits, value = network_fn(model.observe(model_step.state))
    alive = particles['alive']
    advantage = alive * (model_step.reward + gamma * model_step.discount * value
                         - particles['value'])
    log_weights += _per_root(advantage, n) / eta
    if step < config.resample_period:
      eta_advantages += _per_root(advantage, n)
    particles['search_return'] += alive * gamma**step * model_step.reward
    particles.update(
        state=model_step.state,
        value=value,
        alive=alive * (1.0 - tf.cast(model_step.done, tf.float32)))
    if step + 1 == config.depth:
      break
    particles['action'] = tf.reshape(
        tf.random.stateless_categorical(
            logits, 1, seeds[step + 2], dtype=tf.int32), [-1])
    if (step + 1) % config.resample_period == 0:
      particles = resample(
          log_weights, particles,
          tf.random.experimental.stateless_fold_in(seeds[step + 2], 1))
      log_weights = tf.zeros_like(log_weights)

  weights = tf.nn.softmax(log_weights, axis=-1)
  root_actions = _per_root(particles['root_action'], n)
  action_weights = tf.einsum(
      'bn,bna->ba', weights, tf.one_hot(root_actions, num_actions))
  # Particles still running after `depth` steps bootstrap with V at the leaf.
  leaf_returns = _per_root(
      particles['search_return'] +
      gamma**config.depth * particles['alive'] * particles['value'], n)
  return SearchOutput(
      action_weights=action_weights,
      root_actions=root_actions,
      particle_weights=weights,
      value=tf.reduce_sum(weights * leaf_returns, axis=-1),
      root_value=root_value,
      prior_logits=root_logits,
      eta_advantages=eta_advantages,
      ess=1.0 / tf.reduce_sum(tf.square(weights), axis=-1),
      weight_entropy=-tf.reduce_sum(
          weights * tf.math.log(tf.maximum(weights, 1e-30)), axis=-1),
  )
