"""Losses of the SPO M-step and E-step duals (paper 000, section 4, app. D).

The policy part of the M-step is `categorical_m_step` (cross-entropy to
q-hat, alpha trust region) or `gaussian_m_step` (weighted maximum likelihood
of q-hat's atoms, decoupled alpha_mu / alpha_Sigma trust regions); a
Gaussian policy's atoms may instead be weighted by a critic
(`critic_e_step`, the MPO E-step).

Pure functions over batched tensors; masks select the valid entries and every
mean is a masked mean.
"""

import math
from typing import NamedTuple, Optional

import tensorflow as tf
import tensorflow_probability as tfp

from tf_spo import action_spaces

tfd = tfp.distributions


def num_replicas() -> int:
  """Replicas training in sync under the current `tf.distribute` strategy.

  1 outside a strategy; the same in its scope and in its replica context.
  Every loss below is a sum of terms linear in masked means: with R
  replicas, each replica's loss is its share of the loss of the global batch
  (masked sums over the global mask count, constant terms over R), so the
  replicas' losses and gradients sum to those of one replica on the global
  batch.
  """
  return tf.distribute.get_strategy().num_replicas_in_sync


def sum_over_replicas(values):
  """Sums a nest of tensors over the replicas (identity for one replica)."""
  if num_replicas() == 1:
    return values
  return tf.distribute.get_replica_context().all_reduce(
      tf.distribute.ReduceOp.SUM, values)


def masked_mean(x: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
  """Mean of `x` over the entries where `mask` is 1 (0 if there are none).

  Under a strategy with several replicas, this replica's share of the mean
  over the global batch: its masked sum over every replica's mask count.
  """
  count = sum_over_replicas(tf.stop_gradient(tf.reduce_sum(mask)))
  return tf.math.divide_no_nan(tf.reduce_sum(x * mask), count)


def replica_share(x: tf.Tensor) -> tf.Tensor:
  """A constant term of a loss, over the replicas that sum it (x / R)."""
  return x / num_replicas()


def gae_advantages(rewards: tf.Tensor, discounts: tf.Tensor,
                   values: tf.Tensor, valid: tf.Tensor,
                   td_lambda: float) -> tf.Tensor:
  """Generalised advantage estimates along [B, T] sequences.

  Transition t goes from observation t to observation t + 1 with reward
  `rewards[:, t]` and discount `discounts[:, t]` (gamma already included,
  0 on termination). A transition with `valid[:, t] == 0` (an episode
  boundary, whose next observation starts a new episode) gets advantage 0 and
  stops the lambda-recursion, so episodes never mix.

  Args:
    rewards: [B, T] float32.
    discounts: [B, T] float32, gamma * environment discount.
    values: [B, T] float32, V at the observations.
    valid: [B, T] float32, 1 where transition t is inside an episode.
    td_lambda: Python float in [0, 1].

  Returns:
    [B, T - 1] float32 advantages of transitions 0 .. T - 2 (the last
    transition has no next value in the sequence).
  """
  deltas = valid[:, :-1] * (rewards[:, :-1] + discounts[:, :-1] * values[:, 1:]
                            - values[:, :-1])
  continuation = valid[:, :-1] * td_lambda * discounts[:, :-1]

  def backward(next_advantage, inputs):
    delta, cont = inputs
    return delta + cont * next_advantage

  advantages = tf.scan(
      backward,
      (tf.transpose(deltas), tf.transpose(continuation)),
      initializer=tf.zeros_like(deltas[:, 0]),
      reverse=True)
  return tf.transpose(advantages)


def eta_dual(eta: tf.Tensor, advantages: tf.Tensor, epsilon: float,
             mask: tf.Tensor, log_ratios: Optional[tf.Tensor] = None
             ) -> tf.Tensor:
  """Sample estimate of the temperature dual g(eta) (paper 000, eq. 7).

  g(eta) = eta * epsilon + eta * E_s[log mean_n w_n exp(A_n / eta)], with A_n
  the advantages of N particles sampled at state s from a proposal and w_n
  their importance ratios pi / proposal (1 when sampled from pi). Its
  minimiser makes KL(q || pi) = epsilon for q proportional to
  pi * exp(A / eta).

  Args:
    eta: scalar temperature, > 0.
    advantages: [..., N] particle advantages per state.
    epsilon: the KL bound.
    mask: [...] float32, 1 for the states to average over.
    log_ratios: optional [..., N] log importance ratios log w_n.

  Returns:
    Scalar g(eta).
  """
  num_particles = tf.cast(tf.shape(advantages)[-1], tf.float32)
  log_mean_exp = (tf.reduce_logsumexp(
      _log_target(advantages, eta, log_ratios), axis=-1)
                  - tf.math.log(num_particles))
  return replica_share(eta * epsilon) + eta * masked_mean(log_mean_exp, mask)


def weighted_kl(advantages: tf.Tensor, eta: tf.Tensor,
                log_ratios: Optional[tf.Tensor] = None) -> tf.Tensor:
  """Sample estimate of KL(q || pi) for q proportional to pi * exp(A / eta).

  From N particles with importance ratios w_n = pi / proposal (1 when
  sampled from pi): KL = E_q[A / eta] - log Z with self-normalised weights
  proportional to w exp(A / eta) and Z = mean_n w_n exp(A_n / eta). This is
  the KL that the eta dual holds at epsilon.

  Args:
    advantages: [..., N] advantages of N particles.
    eta: scalar temperature.
    log_ratios: optional [..., N] log importance ratios of the particles.

  Returns:
    [...] the KL estimate.
  """
  num_particles = advantages.shape[-1]
  log_target = _log_target(advantages, eta, log_ratios)
  weights = tf.nn.softmax(log_target, axis=-1)
  log_z = tf.reduce_logsumexp(log_target, axis=-1) - math.log(num_particles)
  return tf.reduce_sum(weights * advantages / eta, axis=-1) - log_z


def solve_eta(advantages: tf.Tensor, epsilon: float, mask: tf.Tensor,
              log_ratios: Optional[tf.Tensor] = None,
              bounds: tuple[float, float] = (1e-4, 1e4),
              steps: int = 40) -> tf.Tensor:
  """The eta minimising this batch's dual g(eta) (paper 000, eq. 7), exactly.

  g is convex with g'(eta) = epsilon - E_s[KL_s(eta)], where KL_s is
  `weighted_kl` of state s, which falls monotonically from its eta -> 0
  limit to 0 as eta grows. So the minimiser is the eta whose mean KL equals
  epsilon, found by bisection on log eta within `bounds`; when epsilon is out
  of the KL's range over `bounds` (e.g. every advantage equal), the bound on
  that side. Under a strategy the KL is averaged over the global batch, so
  every replica solves the same eta.

  Args:
    advantages: [..., N] particle advantages per state.
    epsilon: the KL bound (> 0).
    mask: [...] float32, 1 for the states to average over.
    log_ratios: optional [..., N] log importance ratios of the particles.
    bounds: (low, high) Python floats, 0 < low < high: the eta range.
    steps: halvings of the log eta bracket (40 leave a relative error of
      log(high / low) / 2**40).

  Returns:
    Scalar eta, gradient-free.
  """
  advantages = tf.stop_gradient(advantages)
  log_ratios = (None if log_ratios is None
                else tf.stop_gradient(log_ratios))

  def mean_kl(log_eta):
    return sum_over_replicas(masked_mean(
        weighted_kl(advantages, tf.exp(log_eta), log_ratios), mask))

  low = tf.constant(math.log(bounds[0]), tf.float32)
  high = tf.constant(math.log(bounds[1]), tf.float32)
  # A Python loop: a replica's all-reduce may not sit in a tf.while_loop.
  for _ in range(steps):
    middle = 0.5 * (low + high)
    too_peaked = mean_kl(middle) > epsilon  # eta too small.
    low = tf.where(too_peaked, middle, low)
    high = tf.where(too_peaked, high, middle)
  return tf.exp(0.5 * (low + high))


def critic_e_step(q_values: tf.Tensor, epsilon: float, mask: tf.Tensor
                  ) -> tuple[tf.Tensor, tf.Tensor]:
  """The MPO E-step: weights of K actions sampled from pi by a critic's Q.

  For actions a_1..K drawn from pi at each state, the non-parametric
  q(a) proportional to pi(a) exp(Q(s, a) / eta) puts the self-normalised
  weights softmax(Q / eta) on them (Abdolmaleki et al. 2018). eta is solved
  for this batch (`solve_eta` on the Q-values as advantages, importance
  ratios 1) so that the weights' mean KL to uniform, the sample estimate of
  KL(q || pi), is `epsilon` (or eta is at `solve_eta`'s bound when no eta
  reaches it).

  Args:
    q_values: [..., K] Q-values of the sampled actions.
    epsilon: the KL bound (> 0).
    mask: [...] float32, 1 for the states the KL is averaged over.

  Returns:
    (weights [..., K], eta scalar), both gradient-free.
  """
  q_values = tf.stop_gradient(q_values)
  eta = solve_eta(q_values, epsilon, mask)
  return tf.nn.softmax(q_values / eta, axis=-1), eta


def _log_target(advantages, eta, log_ratios):
  """A / eta (+ log importance ratios): unnormalised log target weights."""
  scaled = advantages / eta
  return scaled if log_ratios is None else scaled + log_ratios


def categorical_kl(p_logits: tf.Tensor, q_logits: tf.Tensor) -> tf.Tensor:
  """KL(p || q) between categoricals given by logits [..., A]; returns [...]."""
  log_p = tf.nn.log_softmax(p_logits)
  return tf.reduce_sum(
      tf.exp(log_p) * (log_p - tf.nn.log_softmax(q_logits)), axis=-1)


def cross_entropy(target_probs: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
  """-sum_a q(a) log pi(a) for targets [..., A] and logits [..., A]."""
  return -tf.reduce_sum(target_probs * tf.nn.log_softmax(logits), axis=-1)


def trust_region_losses(alpha: tf.Tensor, kl: tf.Tensor,
                        epsilon: float) -> tuple[tf.Tensor, tf.Tensor]:
  """The KL trust-region terms L_KL and L_alpha (paper 000, appendix D).

  Args:
    alpha: scalar Lagrange multiplier, > 0.
    kl: scalar mean KL(pi_target || pi_theta).
    epsilon: the trust-region bound.

  Returns:
    (L_KL = sg[alpha] * KL, trained into the network;
     L_alpha = alpha * (epsilon - sg[KL]), trained into alpha).
  """
  kl_loss = tf.stop_gradient(alpha) * kl
  alpha_loss = replica_share(alpha * epsilon) - alpha * tf.stop_gradient(kl)
  return kl_loss, alpha_loss


class PolicyLosses(NamedTuple):
  """The M-step's policy terms (paper 000, appendix D); all scalars.

  Attributes:
    policy_loss: cross-entropy to q-hat (weighted negative log-likelihood of
      its atoms for Gaussian policies, summed over the decoupled mean and
      covariance parts).
    kl: mean KL(pi_target || pi_theta).
    kl_mean: Gaussian: mean part of `kl` (0 for categorical).
    kl_cov: Gaussian: covariance part of `kl` (0 for categorical).
    kl_loss: sg[alpha] * KL, trained into the network.
    alpha_loss: alpha * (epsilon - sg[KL]), trained into the multipliers.
    target_kl: how far the M-step's target is from pi_theta (a diagnostic,
      no gradient): categorical, mean KL(q-hat || pi_theta); Gaussian, mean
      KL(N(a_w, S) || N(mu, S)) = |(a_w - mu) / sigma|^2 / 2, with a_w the
      weighted mean of q-hat's atoms, the mean the likelihood pulls towards.
  """
  policy_loss: tf.Tensor
  kl: tf.Tensor
  kl_mean: tf.Tensor
  kl_cov: tf.Tensor
  kl_loss: tf.Tensor
  alpha_loss: tf.Tensor
  target_kl: tf.Tensor


def categorical_m_step(target_probs: tf.Tensor, logits: tf.Tensor,
                       target_logits: tf.Tensor, alpha: tf.Tensor,
                       epsilon: float, mask: tf.Tensor) -> PolicyLosses:
  """Cross-entropy to q-hat under the alpha KL trust region.

  Args:
    target_probs: [..., A] q-hat.
    logits: [..., A] logits of pi_theta.
    target_logits: [..., A] logits of the target policy.
    alpha: scalar multiplier, > 0.
    epsilon: the trust-region bound.
    mask: [...] float32 weights of the states.

  Returns:
    `PolicyLosses`.
  """
  kl = masked_mean(categorical_kl(target_logits, logits), mask)
  kl_loss, alpha_loss = trust_region_losses(alpha, kl, epsilon)
  zero = tf.zeros([])
  policy_loss = masked_mean(cross_entropy(target_probs, logits), mask)
  entropy = -tf.reduce_sum(
      target_probs * tf.math.log(tf.maximum(target_probs, 1e-30)), axis=-1)
  return PolicyLosses(
      policy_loss=policy_loss,
      kl=kl, kl_mean=zero, kl_cov=zero, kl_loss=kl_loss,
      alpha_loss=alpha_loss,
      target_kl=tf.stop_gradient(policy_loss - masked_mean(entropy, mask)))


def decoupled_gaussian_kl(target_loc: tf.Tensor, target_scale: tf.Tensor,
                          loc: tf.Tensor, scale: tf.Tensor
                          ) -> tuple[tf.Tensor, tf.Tensor]:
  """KL(target || pi) of diagonal Gaussians split into mean and covariance.

  KL(N(mu_t, S_t) || N(mu, S)) = KL(N(mu_t, S_t) || N(mu_t, S))
  + KL(N(mu_t, S) || N(mu, S)) exactly: the covariance part (mean held at the
  target's) depends on the network only through S, and the mean part
  1/2 (mu - mu_t)^T S^-1 (mu - mu_t) is taken with S stopped, so each
  multiplier (alpha_mu, alpha_Sigma) constrains its own parameters
  (decoupled KL, as in MPO).

  Args:
    target_loc: [..., D] target policy means.
    target_scale: [..., D] target policy standard deviations.
    loc: [..., D] network policy means.
    scale: [..., D] network policy standard deviations.

  Returns:
    (kl_mean [...], kl_cov [...]), summing to the full KL.
  """
  gaussian = action_spaces.diagonal_gaussian
  kl_cov = tfd.kl_divergence(gaussian(target_loc, target_scale),
                             gaussian(target_loc, scale))
  fixed_scale = tf.stop_gradient(scale)
  kl_mean = tfd.kl_divergence(gaussian(target_loc, fixed_scale),
                              gaussian(loc, fixed_scale))
  return kl_mean, kl_cov


def greedy_weights(weights: tf.Tensor) -> tf.Tensor:
  """All weight on the atom of highest weight: one-hot [..., N] of [..., N]."""
  return tf.one_hot(tf.argmax(weights, axis=-1), weights.shape[-1],
                    dtype=weights.dtype)


def gaussian_m_step(atoms: tf.Tensor, weights: tf.Tensor, loc: tf.Tensor,
                    scale: tf.Tensor, target_loc: tf.Tensor,
                    target_scale: tf.Tensor, alpha_mean: tf.Tensor,
                    alpha_cov: tf.Tensor, epsilon_mean: float,
                    epsilon_cov: float, mask: tf.Tensor,
                    mean_weights: Optional[tf.Tensor] = None
                    ) -> PolicyLosses:
  """Weighted maximum likelihood of q-hat's atoms, decoupled trust regions.

  Paper 000, appendix D, in the MPO form: the atoms' weighted log-likelihood
  under N(mu_theta, S_target) trains the mean and under
  N(mu_target, S_theta) the covariance; the KL to the target policy is split
  into its mean and covariance parts (`decoupled_gaussian_kl`), each held
  under its bound by its own multiplier.

  Args:
    atoms: [..., N, D] pre-squash atoms of q-hat.
    weights: [..., N] their normalised weights.
    loc: [..., D] network policy means.
    scale: [..., D] network policy standard deviations.
    target_loc: [..., D] target policy means.
    target_scale: [..., D] target policy standard deviations.
    alpha_mean: scalar multiplier alpha_mu of the mean part, > 0.
    alpha_cov: scalar multiplier alpha_Sigma of the covariance part, > 0.
    epsilon_mean: KL bound of the mean part.
    epsilon_cov: KL bound of the covariance part.
    mask: [...] float32 weights of the states.
    mean_weights: [..., N] normalised weights of the atoms in the mean part
      (`greedy_weights` for the greedy mean target); `weights` if None.

  Returns:
    `PolicyLosses`; `target_kl` is the offset of the mean part's target.
  """
  if mean_weights is None:
    mean_weights = weights
  target_loc = tf.stop_gradient(target_loc)
  target_scale = tf.stop_gradient(target_scale)
  expand = lambda x: x[..., None, :]
  mean_part = action_spaces.diagonal_gaussian(expand(loc),
                                              expand(target_scale))
  cov_part = action_spaces.diagonal_gaussian(expand(target_loc),
                                             expand(scale))
  log_likelihood = tf.reduce_sum(
      mean_weights * mean_part.log_prob(atoms) +
      weights * cov_part.log_prob(atoms), axis=-1)
  kl_mean, kl_cov = decoupled_gaussian_kl(target_loc, target_scale, loc,
                                          scale)
  kl_mean, kl_cov = masked_mean(kl_mean, mask), masked_mean(kl_cov, mask)
  mean_loss, alpha_mean_loss = trust_region_losses(alpha_mean, kl_mean,
                                                   epsilon_mean)
  cov_loss, alpha_cov_loss = trust_region_losses(alpha_cov, kl_cov,
                                                 epsilon_cov)
  weighted_mean = tf.reduce_sum(mean_weights[..., None] * atoms, axis=-2)
  target_offset = 0.5 * tf.reduce_sum(
      tf.square((weighted_mean - loc) / scale), axis=-1)
  return PolicyLosses(
      policy_loss=-masked_mean(log_likelihood, mask),
      kl=kl_mean + kl_cov, kl_mean=kl_mean, kl_cov=kl_cov,
      kl_loss=mean_loss + cov_loss,
      alpha_loss=alpha_mean_loss + alpha_cov_loss,
      target_kl=tf.stop_gradient(masked_mean(target_offset, mask)))
