"""Known-answer tests of the SPO losses and duals (tf_spo/losses.py)."""

import math

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from tf_spo import losses

tfd = tfp.distributions


def synthetic_advantages(num_states=64, num_particles=16, seed=0):
  rng = np.random.default_rng(seed)
  scale = rng.uniform(0.2, 3.0, size=[num_states, 1])
  return (scale * rng.normal(size=[num_states, num_particles])).astype(
      np.float32)


def minimise_eta_dual(advantages, epsilon):
  """Golden-section search of the convex g over log eta in [1e-3, 1e3]."""
  mask = tf.ones(advantages.shape[:-1])
  g = lambda log_eta: float(losses.eta_dual(
      tf.exp(tf.constant(log_eta, tf.float32)), advantages, epsilon, mask))
  low, high = math.log(1e-3), math.log(1e3)
  ratio = (math.sqrt(5) - 1) / 2
  for _ in range(100):
    a, b = high - ratio * (high - low), low + ratio * (high - low)
    if g(a) < g(b):
      high = b
    else:
      low = a
  return math.exp((low + high) / 2)


def test_eta_minimising_dual_meets_kl_target():
  advantages = synthetic_advantages()
  for epsilon in (0.05, 0.5, 1.0):
    eta = minimise_eta_dual(advantages, epsilon)
    achieved = float(tf.reduce_mean(losses.weighted_kl(advantages, eta)))
    np.testing.assert_allclose(achieved, epsilon, atol=1e-3)


def test_solve_eta_meets_kl_bound_and_minimises_the_dual():
  advantages = synthetic_advantages(seed=2)
  mask = tf.ones([advantages.shape[0]])
  for epsilon in (0.05, 0.2, 0.5, 1.0):
    eta = float(losses.solve_eta(advantages, epsilon, mask))
    achieved = float(tf.reduce_mean(losses.weighted_kl(advantages, eta)))
    np.testing.assert_allclose(achieved, epsilon, atol=1e-3)
    # The same minimiser as a golden-section search of g itself.
    np.testing.assert_allclose(eta, minimise_eta_dual(advantages, epsilon),
                               rtol=1e-3)


def test_solve_eta_with_ratios_and_mask_meets_the_weighted_bound():
  rng = np.random.default_rng(3)
  advantages = synthetic_advantages(num_states=32, seed=3)
  log_ratios = rng.normal(scale=0.3, size=advantages.shape).astype(
      np.float32)
  mask = tf.constant(rng.integers(0, 2, size=[32]), tf.float32)
  eta = losses.solve_eta(advantages, 0.3, mask, log_ratios)
  kl = losses.weighted_kl(advantages, eta, log_ratios)
  np.testing.assert_allclose(losses.masked_mean(kl, mask), 0.3, atol=1e-3)


def test_solve_eta_returns_the_bound_when_the_kl_cannot_reach_epsilon():
  mask = tf.ones([2])
  # Equal advantages: q = pi at every eta, KL 0 < epsilon: eta -> low.
  flat = tf.ones([2, 8])
  np.testing.assert_allclose(
      losses.solve_eta(flat, 0.1, mask, bounds=(1e-3, 1e3)), 1e-3,
      rtol=1e-4)
  # 8 particles hold at most log 8 nats: epsilon = 3 > log 8 needs eta -> 0.
  spread = tf.constant([[1.0] + [0.0] * 7] * 2)
  np.testing.assert_allclose(
      losses.solve_eta(spread, 3.0, mask, bounds=(1e-3, 1e3)), 1e-3,
      rtol=1e-4)


def _softmax(x):
  x = np.exp(x - x.max(-1, keepdims=True))
  return x / x.sum(-1, keepdims=True)


def _kl_to_uniform(weights):
  """KL(w || uniform) of weights [..., K], in float64."""
  return np.sum(weights * np.log(np.maximum(weights, 1e-300) *
                                 weights.shape[-1]), axis=-1)


def _reference_critic_eta(q_values, epsilon, mask):
  """Float64 NumPy bisection of log eta: masked mean KL = epsilon."""
  mean_kl = lambda eta: np.sum(
      mask * _kl_to_uniform(_softmax(q_values / eta))) / mask.sum()
  low, high = math.log(1e-4), math.log(1e4)
  for _ in range(200):
    middle = 0.5 * (low + high)
    if mean_kl(math.exp(middle)) > epsilon:
      low = middle
    else:
      high = middle
  return math.exp(0.5 * (low + high))


def test_critic_e_step_weights_are_the_softmax_of_q_at_the_kl_bound():
  """Known answer: Q = -(a - a*)^2 at fixed atoms, 2 masked states.

  The weights are softmax(Q / eta) with the eta whose masked mean KL to
  uniform is epsilon, as a float64 NumPy bisection finds it; the masked
  states, whose Q is 100 times steeper, do not move eta.
  """
  rng = np.random.default_rng(4)
  optimum = rng.uniform(-1.0, 1.0, size=[8, 1])
  atoms = rng.normal(size=[8, 20])
  q_values = -np.square(atoms - optimum)
  q_values[6:] *= 100.0
  mask = np.array([1.0] * 6 + [0.0] * 2)
  for epsilon in (0.1, 0.5, 1.0):
    weights, eta = losses.critic_e_step(
        tf.constant(q_values, tf.float32), epsilon,
        tf.constant(mask, tf.float32))
    expected_eta = _reference_critic_eta(q_values, epsilon, mask)
    np.testing.assert_allclose(float(eta), expected_eta, rtol=1e-3)
    np.testing.assert_allclose(weights, _softmax(q_values / float(eta)),
                               rtol=1e-4, atol=1e-7)
    kl = _kl_to_uniform(weights.numpy().astype(np.float64))
    np.testing.assert_allclose(np.sum(mask * kl) / mask.sum(), epsilon,
                               atol=1e-3)


def test_critic_e_step_moves_the_weighted_mean_towards_the_optimum():
  """Atoms of pi = N(0, 1) weighted by Q = -(a - a*)^2 (paper 000, eq. 6).

  q proportional to pi exp(Q / eta) is N(m, 1 / p) with p = 1 + 2 / eta and
  m = (2 a* / eta) / p = 2 a* / (eta + 2): between pi's mean 0 and a*. The
  weighted mean of 4000 atoms is its self-normalised estimate.
  """
  optimum = np.array([[-2.0], [-1.0], [1.0], [2.0]])
  atoms = tf.random.stateless_normal([4, 4000], [5, 6])
  q_values = -tf.square(atoms - optimum)
  weights, eta = losses.critic_e_step(q_values, 0.5, tf.ones([4]))
  weighted_mean = tf.reduce_sum(weights * atoms, axis=-1).numpy()
  expected = 2.0 * optimum[:, 0] / (float(eta) + 2.0)
  np.testing.assert_allclose(weighted_mean, expected, atol=0.06)
  # Towards a*, from the atoms' own mean (about 0).
  plain_mean = tf.reduce_mean(atoms, axis=-1).numpy()
  assert np.all(np.abs(weighted_mean - optimum[:, 0]) <
                np.abs(plain_mean - optimum[:, 0]) - 0.3)
  assert np.all(np.sign(weighted_mean) == np.sign(optimum[:, 0]))


def test_critic_e_step_of_a_flat_critic_is_uniform():
  """Equal Q-values: no eta reaches the KL, the weights stay uniform."""
  weights, eta = losses.critic_e_step(tf.fill([3, 5], 2.0), 0.5, tf.ones([3]))
  np.testing.assert_allclose(weights, 0.2, rtol=1e-6)
  np.testing.assert_allclose(eta, 1e-4, rtol=1e-4)


def test_eta_gradient_descent_through_softplus_reaches_kl_target():
  advantages = synthetic_advantages(seed=1)
  epsilon = 0.5
  eta = tfp.util.TransformedVariable(5.0, tfp.bijectors.Softplus())
  optimizer = tf.keras.optimizers.Adam(0.05)
  mask = tf.ones([advantages.shape[0]])

  @tf.function
  def step():
    with tf.GradientTape() as tape:
      loss = losses.eta_dual(tf.convert_to_tensor(eta), advantages, epsilon,
                             mask)
    grads = tape.gradient(loss, eta.trainable_variables)
    optimizer.apply_gradients(zip(grads, eta.trainable_variables))

  for _ in range(1500):
    step()
  achieved = float(tf.reduce_mean(
      losses.weighted_kl(advantages, tf.convert_to_tensor(eta))))
  np.testing.assert_allclose(achieved, epsilon, atol=1e-2)


def test_eta_dual_ignores_masked_states():
  advantages = synthetic_advantages(num_states=4)
  mask = tf.constant([1.0, 1.0, 0.0, 0.0])
  np.testing.assert_allclose(
      losses.eta_dual(0.7, advantages, 0.3, mask),
      losses.eta_dual(0.7, advantages[:2], 0.3, tf.ones([2])), rtol=1e-6)


def test_importance_ratios_count_like_duplicated_particles():
  """A particle with ratio 2 weighs like two copies of it."""
  eta, mask = 0.7, tf.ones([1])
  with_ratio = losses.eta_dual(eta, tf.constant([[1.0, -0.5]]), 0.3, mask,
                               tf.math.log(tf.constant([[2.0, 1.0]])))
  duplicated = losses.eta_dual(eta, tf.constant([[1.0, 1.0, -0.5]]), 0.3,
                               mask)
  # Same sum of weights; the means divide by N = 2 and 3.
  np.testing.assert_allclose(with_ratio, duplicated + eta * math.log(1.5),
                             rtol=1e-6)
  np.testing.assert_allclose(
      losses.weighted_kl(tf.constant([[1.0, -0.5]]), eta,
                         tf.math.log(tf.constant([[2.0, 1.0]]))),
      losses.weighted_kl(tf.constant([[1.0, 1.0, -0.5]]), eta)
      - math.log(1.5), rtol=1e-5)


def test_weighted_kl_known_values():
  np.testing.assert_allclose(losses.weighted_kl(tf.zeros([3, 5]), 1.0), 0.0,
                             atol=1e-6)
  # Two particles, weights 1/(1+e^-1) and e^-1/(1+e^-1): KL to uniform.
  w = np.array([1.0, math.exp(-1.0)]) / (1.0 + math.exp(-1.0))
  expected = np.sum(w * np.log(2 * w))
  np.testing.assert_allclose(losses.weighted_kl(tf.constant([[1.0, 0.0]]),
                                                1.0), [expected], rtol=1e-5)


def reference_gae(rewards, discounts, values, valid, lam):
  batch, time = rewards.shape
  advantages = np.zeros([batch, time - 1])
  for b in range(batch):
    next_advantage = 0.0
    for t in reversed(range(time - 1)):
      delta = rewards[b, t] + discounts[b, t] * values[b, t + 1] - values[b, t]
      next_advantage = valid[b, t] * (delta + lam * discounts[b, t] *
                                      next_advantage)
      advantages[b, t] = next_advantage
  return advantages


def test_gae_matches_hand_computed_values():
  rewards = np.array([[1.0, 0.0, 2.0]], np.float32)
  discounts = np.array([[0.9, 0.9, 0.9]], np.float32)
  values = np.array([[0.5, 1.0, 2.0]], np.float32)
  valid = np.ones([1, 3], np.float32)
  # delta_1 = 0 + 0.9 * 2 - 1 = 0.8; delta_0 = 1 + 0.9 * 1 - 0.5 = 1.4.
  # A_1 = 0.8; A_0 = 1.4 + 0.5 * 0.9 * 0.8 = 1.76.
  np.testing.assert_allclose(
      losses.gae_advantages(rewards, discounts, values, valid, 0.5),
      [[1.76, 0.8]], rtol=1e-6)


def test_gae_stops_at_episode_boundaries_and_matches_reference():
  rng = np.random.default_rng(3)
  rewards = rng.normal(size=[4, 9]).astype(np.float32)
  discounts = (0.99 * (rng.uniform(size=[4, 9]) > 0.2)).astype(np.float32)
  values = rng.normal(size=[4, 9]).astype(np.float32)
  valid = (rng.uniform(size=[4, 9]) > 0.2).astype(np.float32)
  np.testing.assert_allclose(
      losses.gae_advantages(rewards, discounts, values, valid, 0.95),
      reference_gae(rewards, discounts, values, valid, 0.95), rtol=1e-5,
      atol=1e-5)
  # Changing anything after a boundary leaves the advantages before it alone.
  valid[:, 4] = 0.0
  before = losses.gae_advantages(rewards, discounts, values, valid, 0.95)
  rewards[:, 5:] += 10.0
  values[:, 5:] -= 3.0
  after = losses.gae_advantages(rewards, discounts, values, valid, 0.95)
  np.testing.assert_allclose(before[:, :4], after[:, :4], rtol=1e-6)


def test_categorical_kl_and_cross_entropy():
  p_logits = np.log(np.array([[0.2, 0.3, 0.5]], np.float32))
  q_logits = np.log(np.array([[0.5, 0.25, 0.25]], np.float32))
  p, q = np.exp(p_logits), np.exp(q_logits)
  np.testing.assert_allclose(losses.categorical_kl(p_logits, q_logits),
                             np.sum(p * np.log(p / q), -1), rtol=1e-5)
  np.testing.assert_allclose(losses.categorical_kl(p_logits, p_logits), [0.0],
                             atol=1e-6)
  np.testing.assert_allclose(losses.cross_entropy(p, q_logits),
                             -np.sum(p * np.log(q), -1), rtol=1e-5)


def test_trust_region_gradients():
  alpha = tf.Variable(0.5)
  kl = tf.Variable(0.02)
  with tf.GradientTape(persistent=True) as tape:
    kl_loss, alpha_loss = losses.trust_region_losses(alpha, kl, 1e-3)
  # alpha grows while the KL exceeds its bound; the network sees alpha * KL.
  np.testing.assert_allclose(tape.gradient(alpha_loss, alpha), 1e-3 - 0.02,
                             rtol=1e-5)
  assert tape.gradient(alpha_loss, kl) is None
  np.testing.assert_allclose(tape.gradient(kl_loss, kl), 0.5)
  assert tape.gradient(kl_loss, alpha) is None


def test_masked_mean():
  np.testing.assert_allclose(
      losses.masked_mean(tf.constant([1.0, 2.0, 6.0]),
                         tf.constant([1.0, 0.0, 1.0])), 3.5)
  np.testing.assert_allclose(
      losses.masked_mean(tf.constant([1.0]), tf.constant([0.0])), 0.0)


def _gaussians(seed):
  rng = np.random.default_rng(seed)
  make = lambda: (tf.constant(rng.normal(size=[5, 3]), tf.float32),
                  tf.constant(rng.uniform(0.3, 2.0, size=[5, 3]), tf.float32))
  return make(), make()


def test_decoupled_gaussian_kl_pieces_sum_to_the_full_kl():
  (target_loc, target_scale), (loc, scale) = _gaussians(0)
  kl_mean, kl_cov = losses.decoupled_gaussian_kl(target_loc, target_scale,
                                                 loc, scale)
  full = tfd.kl_divergence(
      tfd.MultivariateNormalDiag(target_loc, target_scale),
      tfd.MultivariateNormalDiag(loc, scale))
  np.testing.assert_allclose(kl_mean + kl_cov, full, rtol=1e-5)
  # The mean part is 1/2 (mu - mu_t)^T S^-1 (mu - mu_t).
  np.testing.assert_allclose(
      kl_mean, 0.5 * np.sum(((loc - target_loc) / scale)**2, -1), rtol=1e-5)
  # Decoupled: each part trains only its own parameters.
  with tf.GradientTape(persistent=True) as tape:
    tape.watch([loc, scale])
    kl_mean, kl_cov = losses.decoupled_gaussian_kl(target_loc, target_scale,
                                                   loc, scale)
  assert tape.gradient(kl_mean, scale) is None
  assert tape.gradient(kl_cov, loc) is None
  assert np.any(tape.gradient(kl_mean, loc).numpy() != 0)
  assert np.any(tape.gradient(kl_cov, scale).numpy() != 0)


def test_gaussian_m_step_is_stationary_at_the_weighted_moments():
  """Weighted MLE: mean and variance go to the atoms' weighted moments.

  The variance is their weighted spread around the target mean.
  """
  rng = np.random.default_rng(1)
  atoms = tf.constant(rng.normal(size=[4, 32, 2]), tf.float32)
  weights = tf.nn.softmax(tf.constant(rng.normal(size=[4, 32]), tf.float32))
  target_loc = tf.constant(rng.normal(size=[4, 2]) * 0.1, tf.float32)
  target_scale = tf.constant(rng.uniform(0.5, 1.5, size=[4, 2]), tf.float32)
  loc = tf.einsum('bn,bnd->bd', weights, atoms)
  scale = tf.sqrt(tf.einsum('bn,bnd->bd', weights,
                            tf.square(atoms - target_loc[:, None])))
  with tf.GradientTape() as tape:
    tape.watch([loc, scale])
    result = losses.gaussian_m_step(
        atoms, weights, loc, scale, target_loc, target_scale,
        alpha_mean=tf.constant(0.0), alpha_cov=tf.constant(0.0),
        epsilon_mean=0.05, epsilon_cov=5e-4, mask=tf.ones([4]))
  grad_loc, grad_scale = tape.gradient(result.policy_loss, [loc, scale])
  np.testing.assert_allclose(grad_loc, 0.0, atol=1e-5)
  np.testing.assert_allclose(grad_scale, 0.0, atol=1e-5)
  np.testing.assert_allclose(result.kl, result.kl_mean + result.kl_cov,
                             rtol=1e-6)


def test_greedy_mean_target_is_stationary_at_the_heaviest_atom():
  """The greedy mean target: the mean goes to the atom of highest weight.

  The variance still goes to every atom's weighted spread.
  """
  rng = np.random.default_rng(2)
  atoms = tf.constant(rng.normal(size=[4, 16, 3]), tf.float32)
  weights = tf.nn.softmax(tf.constant(rng.normal(size=[4, 16]), tf.float32))
  greedy = losses.greedy_weights(weights)
  np.testing.assert_array_equal(greedy.numpy().sum(-1), 1.0)
  np.testing.assert_array_equal(np.argmax(greedy, -1), np.argmax(weights, -1))
  target_loc = tf.zeros([4, 3])
  target_scale = tf.ones([4, 3])
  loc = tf.gather(atoms, tf.argmax(weights, -1), batch_dims=1)
  scale = tf.sqrt(tf.einsum('bn,bnd->bd', weights, tf.square(atoms)))
  with tf.GradientTape() as tape:
    tape.watch([loc, scale])
    result = losses.gaussian_m_step(
        atoms, weights, loc, scale, target_loc, target_scale,
        alpha_mean=tf.constant(0.0), alpha_cov=tf.constant(0.0),
        epsilon_mean=0.05, epsilon_cov=5e-4, mask=tf.ones([4]),
        mean_weights=greedy)
  grad_loc, grad_scale = tape.gradient(result.policy_loss, [loc, scale])
  np.testing.assert_allclose(grad_loc, 0.0, atol=1e-5)
  np.testing.assert_allclose(grad_scale, 0.0, atol=1e-5)
  np.testing.assert_allclose(result.target_kl, 0.0, atol=1e-6)


@pytest.mark.parametrize('epsilon,direction', [(1e-6, 1.0), (10.0, -1.0)])
def test_gaussian_multipliers_rise_when_violated_and_fall_otherwise(
    epsilon, direction):
  (target_loc, target_scale), (loc, scale) = _gaussians(2)
  atoms = tf.random.stateless_normal([5, 8, 3], [0, 1])
  weights = tf.fill([5, 8], 1.0 / 8)
  duals = [tfp.util.TransformedVariable(value, tfp.bijectors.Softplus())
           for value in (10.0, 500.0)]
  optimizer = tf.keras.optimizers.SGD(0.1)
  before = [float(tf.convert_to_tensor(d)) for d in duals]
  with tf.GradientTape() as tape:
    result = losses.gaussian_m_step(
        atoms, weights, loc, scale, target_loc, target_scale,
        tf.convert_to_tensor(duals[0]), tf.convert_to_tensor(duals[1]),
        epsilon, epsilon, tf.ones([5]))
  variables = [d.trainable_variables[0] for d in duals]
  optimizer.apply_gradients(zip(
      tape.gradient(result.alpha_loss, variables), variables))
  for value, old in zip(duals, before):
    assert direction * (float(tf.convert_to_tensor(value)) - old) > 0


def test_target_kl_is_the_distance_of_the_target_from_the_policy():
  # Gaussian: atoms 0 and 2 weighted equally pull the mean to 1; at mu = 0
  # and sigma = 2 that is KL(N(1, 4) || N(0, 4)) = (1 / 2)^2 / 2.
  atoms = tf.constant([[[0.0], [2.0]]])
  weights = tf.constant([[0.5, 0.5]])
  zero, two = tf.zeros([1, 1]), tf.fill([1, 1], 2.0)
  gaussian = losses.gaussian_m_step(
      atoms, weights, zero, two, zero, two, tf.constant(1.0),
      tf.constant(1.0), 0.05, 5e-4, tf.ones([1]))
  np.testing.assert_allclose(gaussian.target_kl, 0.125, rtol=1e-6)
  # Categorical: KL(q || pi) for q = (1/2, 1/2, 0), pi uniform over 3:
  # log(3 / 2).
  target = tf.constant([[0.5, 0.5, 0.0]])
  logits = tf.zeros([1, 3])
  categorical = losses.categorical_m_step(
      target, logits, logits, tf.constant(1.0), 1e-3, tf.ones([1]))
  np.testing.assert_allclose(categorical.target_kl, math.log(1.5),
                             rtol=1e-6)
