"""Known-answer tests of the SMC search (tf_spo/search.py)."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from environments import rubiks_cube
from environments import toy
from launch import estimators
from tf_spo import action_spaces
from tf_spo import config as config_lib
from tf_spo import networks
from tf_spo import search

PRIOR_LOGITS = np.array([0.5, 0.0, -0.5, 1.0], np.float32)
REWARDS = np.array([1.0, 0.0, 0.5, -1.0], np.float32)
ETA = 0.5
CATEGORICAL = action_spaces.for_spec(
    toy.ToyModel(REWARDS.tolist(), [True] * 4).action_spec())


def fixed_network(logits=PRIOR_LOGITS, value=0.0, q_values=None):
  """A network with the same logits, value (and Q) at every observation."""

  def network_fn(observation):
    batch = tf.shape(observation)[0]
    tile = lambda x: tf.tile(tf.constant(x, tf.float32)[None], [batch, 1])
    return networks.NetworkOutput(
        tile(logits), tf.fill([batch], tf.constant(value, tf.float32)),
        () if q_values is None else tile(q_values))

  return network_fn


def analytic_target(logits=PRIOR_LOGITS, advantages=REWARDS, eta=ETA):
  unnormalised = np.exp(logits - logits.max()) * np.exp(advantages / eta)
  return unnormalised / unnormalised.sum()


def run_search(model, config, batch=1, seed=(1, 2), network_fn=None,
               eta=ETA, add_root_noise=False):
  """The search as a TensorFlow graph, for the statistics of its outputs.

  Not XLA: what these tests check does not depend on the compiler, and each
  XLA compile costs seconds and tens of MB that TensorFlow keeps for the
  life of the process. The tests named `*compiles*`, the golden outputs and
  the end-to-end runs check the XLA-compiled search.
  """
  observation = tf.zeros([batch, 1])
  graph = tf.function(
      lambda obs, s: search.smc_search(
          obs, model, network_fn or fixed_network(), eta, config, s,
          add_root_noise=add_root_noise))
  return graph(observation, tf.constant(seed, tf.int32))


def kl(p, q):
  p, q = np.asarray(p, np.float64), np.asarray(q, np.float64)
  mask = p > 0
  return np.sum(np.where(mask, p * np.log(np.where(mask, p, 1) / q), 0),
                axis=-1)


@pytest.mark.parametrize('depth,period', [(1, 1), (3, 1), (4, 2)])
def test_target_converges_to_analytic_solution(depth, period):
  """q-hat -> pi exp(A / eta) / Z on a bandit: KL falls as N grows."""
  bandit = toy.ToyModel(REWARDS.tolist(), [True] * 4)
  target = analytic_target()
  kls = []
  for n in (4, 16, 64, 256, 1024):
    config = config_lib.SearchConfig(num_particles=n, depth=depth,
                                     resample_period=period, discount=1.0)
    out = run_search(bandit, config, batch=200)
    kls.append(np.mean(kl(out.action_weights.numpy(), target)))
  assert all(a > b for a, b in zip(kls, kls[1:])), kls
  # Monte Carlo error: KL falls roughly as 1 / N.
  assert kls[2] / kls[4] > 8, kls
  assert kls[-1] < 5e-3, kls


def test_resampling_preserves_weighted_root_distribution():
  """E[fraction of resampled particles with root action a] = sum of weights."""
  log_weights = np.log(np.array([[0.1, 0.2, 0.3, 0.4, 0.0 + 1e-9]],
                                np.float32))
  root_actions = np.array([0, 1, 1, 2, 3], np.int32)
  batch = 20000
  out = search.resample(
      tf.tile(log_weights, [batch, 1]),
      {'root_action': tf.tile(root_actions, [batch])},
      tf.constant([3, 4], tf.int32))
  counts = np.bincount(out['root_action'].numpy(), minlength=4)
  expected = np.array([0.1, 0.5, 0.4, 0.0])
  np.testing.assert_allclose(counts / counts.sum(), expected, atol=5e-3)


def test_resample_keeps_particle_rows_together():
  log_weights = tf.math.log(tf.constant([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]))
  particles = {'a': tf.range(6), 'b': tf.range(6) * 10}
  out = search.resample(log_weights, particles, tf.constant([0, 1]))
  np.testing.assert_array_equal(out['a'].numpy(), [1, 1, 1, 3, 3, 3])
  np.testing.assert_array_equal(out['b'].numpy(), 10 * out['a'].numpy())


def test_terminated_particles_stop_accumulating():
  """Action 0 terminates after reward 1; others earn 1 at each of 4 steps.

  pi never takes action 0, but the root actions come from (near-uniform)
  root noise, so some particles terminate at their first step.
  """
  model = toy.ToyModel([1.0, 1.0, 1.0], [True, False, False])
  config = config_lib.SearchConfig(num_particles=64, depth=4,
                                   resample_period=4, discount=1.0,
                                   root_dirichlet_alpha=100.0,
                                   root_exploration_fraction=1.0)
  out = run_search(model, config, add_root_noise=True,
                   network_fn=fixed_network(np.array([-50.0, 0.0, 0.0])))
  root_actions = out.atoms.numpy()[0]
  advantages = out.eta_advantages.numpy()[0]
  assert set(root_actions) == {0, 1, 2}
  np.testing.assert_allclose(advantages, np.where(root_actions == 0, 1.0, 4.0))
  # Search return: 1 for the terminated particles, 4 for the others.
  weights = out.particle_weights.numpy()[0]
  np.testing.assert_allclose(
      out.value.numpy()[0],
      np.sum(weights * np.where(root_actions == 0, 1.0, 4.0)), rtol=1e-5)


def test_eta_advantages_cover_only_the_first_segment():
  """With period 2 < depth 4, only the first 2 steps' advantages count."""
  model = toy.ToyModel([1.0, 1.0], [False, False])
  config = config_lib.SearchConfig(num_particles=8, depth=4,
                                   resample_period=2, discount=1.0)
  out = run_search(model, config, network_fn=fixed_network(np.zeros(2)))
  np.testing.assert_allclose(out.eta_advantages.numpy(), 2.0)


def test_one_step_advantage_uses_discounted_bootstrap():
  """A = r + gamma * discount * V(s') - V(s) with a constant V."""
  model = toy.ToyModel([0.5, 0.5], [False, True])
  config = config_lib.SearchConfig(num_particles=32, depth=1,
                                   resample_period=1, discount=0.9)
  out = run_search(model, config,
                   network_fn=fixed_network(np.zeros(2), value=2.0))
  root_actions = out.atoms.numpy()[0]
  expected = np.where(root_actions == 0, 0.5 + 0.9 * 2.0 - 2.0, 0.5 - 2.0)
  np.testing.assert_allclose(out.eta_advantages.numpy()[0], expected,
                             rtol=1e-6)


def test_zero_advantages_give_full_ess_and_prior_target():
  model = toy.ToyModel([0.0] * 4, [False] * 4)
  config = config_lib.SearchConfig(num_particles=16, depth=4,
                                   resample_period=2)
  out = run_search(model, config, batch=3)
  np.testing.assert_allclose(out.ess.numpy(), 16.0, rtol=1e-5)
  np.testing.assert_allclose(out.weight_entropy.numpy(), np.log(16.0),
                             rtol=1e-5)
  np.testing.assert_allclose(out.action_weights.numpy().sum(-1), 1.0,
                             rtol=1e-5)


def test_seeds_are_explicit_and_batch_is_dynamic():
  bandit = toy.ToyModel(REWARDS.tolist(), [True] * 4)
  config = config_lib.SearchConfig(num_particles=8, depth=2,
                                   resample_period=1)
  compiled = tf.function(
      lambda obs, s: search.smc_search(obs, bandit, fixed_network(), ETA,
                                       config, s),
      jit_compile=True,
      input_signature=[tf.TensorSpec([None, 1]),
                       tf.TensorSpec([2], tf.int32)])
  first = compiled(tf.zeros([3, 1]), tf.constant([1, 2]))
  again = compiled(tf.zeros([3, 1]), tf.constant([1, 2]))
  other = compiled(tf.zeros([3, 1]), tf.constant([1, 3]))
  np.testing.assert_array_equal(first.atoms, again.atoms)
  assert not np.array_equal(first.atoms, other.atoms)
  assert compiled(tf.zeros([5, 1]), tf.constant([1, 2])).atoms.shape == (
      5, 8)
  assert len(compiled._list_all_concrete_functions()) == 1  # pylint: disable=protected-access


def test_root_noise_changes_sampling_and_zero_fraction_does_not():
  bandit = toy.ToyModel(REWARDS.tolist(), [True] * 4)
  plain = config_lib.SearchConfig(num_particles=64, depth=1,
                                  resample_period=1)
  noisy = run_search(bandit, plain, batch=4, add_root_noise=True)
  clean = run_search(bandit, plain, batch=4)
  assert not np.array_equal(noisy.atoms, clean.atoms)
  no_noise = config_lib.SearchConfig(num_particles=64, depth=1,
                                     resample_period=1,
                                     root_exploration_fraction=0.0)
  np.testing.assert_allclose(
      search.root_prior(tf.constant([PRIOR_LOGITS]), CATEGORICAL, no_noise,
                        True, tf.constant([5, 6])).numpy(),
      tf.nn.log_softmax(PRIOR_LOGITS[None]).numpy(), rtol=1e-5)
  noised = tf.exp(search.root_prior(tf.constant([PRIOR_LOGITS]), CATEGORICAL,
                                    plain, True, tf.constant([5, 6]))).numpy()
  np.testing.assert_allclose(noised.sum(), 1.0, rtol=1e-5)
  assert np.all(noised >= 0.75 * tf.nn.softmax(PRIOR_LOGITS).numpy() - 1e-6)


def _assert_matches_golden(outputs, path):
  """`outputs` ({key: array}) equal the golden file at `path`."""
  golden = np.load(path)
  assert sorted(outputs) == sorted(golden.files)
  for key, value in outputs.items():
    if value.dtype.kind == 'i':
      np.testing.assert_array_equal(value, golden[key], err_msg=key)
    else:
      # Bit for bit on the machine that wrote them; the tolerance only
      # absorbs another CPU's float rounding in the network matmul, which
      # the twisted proposal's bisection on beta amplifies (on an AMD EPYC:
      # up to 5e-6, 1.1e-5 relative, in the twisted cases; 0 in the SPO
      # search's golden outputs).
      np.testing.assert_allclose(value, golden[key], rtol=2e-5, atol=1e-6,
                                 err_msg=key)


def test_spo_search_matches_its_golden_outputs():
  """With every TRT-SMC switch off the search is the SPO search, bit for bit.

  tests/data holds the outputs of the SPO search written before the switches
  existed (tests/support/golden_search.py).
  """
  from tests.support import golden_search  # pylint: disable=g-import-not-at-top
  _assert_matches_golden(golden_search.outputs(), golden_search.GOLDEN_PATH)


def test_every_switch_combination_matches_its_golden_outputs():
  """Each switch gives the outputs it gave before the search was split.

  tests/data holds every switch combination's outputs written before
  `smc_search` took its variants as injected functions
  (tests/support/golden_search.py).
  """
  from tests.support import golden_search  # pylint: disable=g-import-not-at-top
  _assert_matches_golden(golden_search.switches_outputs(),
                         golden_search.SWITCHES_PATH)


def test_an_injected_estimator_replaces_the_papers():
  """A q-hat estimator is a function pair passed in, not a config branch.

  A greedy estimator (all weight on the atom of the largest summed
  increment) on a one-step bandit puts q-hat on the best action.
  """
  config = config_lib.SearchConfig(num_particles=32, depth=1,
                                   resample_period=1)

  def accumulate(statistic, step, increment, scaled_advantage, root_index):
    del step, scaled_advantage, root_index  # Unused.
    return statistic + increment

  def estimate(statistic, particles, weights, root_atoms, root_log_ratio,
               prior):
    del particles, weights, root_log_ratio, prior  # Unused.
    greedy = tf.one_hot(tf.argmax(statistic, -1), statistic.shape[-1])
    return search.Estimate(root_atoms, greedy,
                           CATEGORICAL.probabilities(root_atoms, greedy))

  functions = search.search_functions(config, CATEGORICAL)._replace(
      estimator=search.PolicyEstimator(accumulate, estimate))
  bandit = toy.ToyModel(REWARDS.tolist(), [True] * 4)
  out = tf.function(
      lambda obs, s: search.smc_search(obs, bandit, fixed_network(), ETA,
                                       config, s, functions=functions),
      jit_compile=True)(tf.zeros([3, 1]), tf.constant([1, 2]))
  np.testing.assert_allclose(
      out.action_weights,
      np.eye(4)[np.full(3, np.argmax(REWARDS))], atol=1e-6)


# TRT-SMC (paper 001).


@pytest.mark.parametrize('alpha', [0.0, 0.1, 0.5, 1.0])
def test_bisection_meets_the_trust_region(alpha):
  rng = np.random.default_rng(0)
  log_pi = tf.nn.log_softmax(rng.normal(size=[64, 18]).astype(np.float32))
  q_values = tf.constant(rng.normal(size=[64, 18]), tf.float32)
  log_q, kl, beta = search.twisted_proposal(log_pi, q_values, alpha)
  greedy = np.argmax(q_values.numpy(), axis=-1)
  target = -alpha * log_pi.numpy()[np.arange(64), greedy]
  np.testing.assert_allclose(kl, target, atol=1e-3)
  q = np.exp(log_q.numpy())
  np.testing.assert_allclose(
      kl, np.sum(q * (log_q.numpy() - log_pi.numpy()), -1), rtol=1e-4,
      atol=1e-6)
  assert np.all(beta.numpy() >= 0)
  if alpha == 0.0:
    np.testing.assert_allclose(q, np.exp(log_pi.numpy()), atol=1e-4)
  if alpha == 1.0:
    assert np.all(q[np.arange(64), greedy] > 0.99)


def test_twisted_proposal_keeps_the_target_unbiased():
  """Importance ratios pi / q correct the twisting: q-hat -> pi exp(A/eta)/Z."""
  bandit = toy.ToyModel(REWARDS.tolist(), [True] * 4)
  network_fn = fixed_network(q_values=-REWARDS)  # twists away from the target
  kls = []
  for n in (16, 64, 256, 1024, 4096):
    config = config_lib.SearchConfig(num_particles=n, depth=1,
                                     resample_period=1, discount=1.0,
                                     proposal_alpha=0.5)
    out = run_search(bandit, config, batch=200, network_fn=network_fn)
    kls.append(np.mean(kl(out.action_weights.numpy(), analytic_target())))
    assert np.all(out.proposal_kl.numpy() > 0)
  assert all(a > b for a, b in zip(kls, kls[1:])), kls
  assert kls[-1] < 5e-3, kls


def test_message_passing_target_on_a_bandit_is_exact():
  bandit = toy.ToyModel(REWARDS.tolist(), [True] * 4)
  config = config_lib.SearchConfig(num_particles=64, depth=1,
                                   resample_period=1,
                                   policy_inference='message_passing')
  out = run_search(bandit, config, batch=8)
  np.testing.assert_allclose(out.action_weights.numpy(),
                             np.tile(analytic_target(), [8, 1]), rtol=1e-5)


def degeneracy_kls(depth, batch=256):
  """KL(q-hat || pi) of Dirac and message-passing q-hat, zero-reward model."""
  absorbing = toy.ToyModel([0.0] * 4, [False] * 4)
  uniform = np.zeros(4, np.float32)
  result = {}
  for inference in ('dirac', 'message_passing'):
    config = config_lib.SearchConfig(num_particles=4, depth=depth,
                                     resample_period=1,
                                     policy_inference=inference)
    out = run_search(absorbing, config, batch=batch,
                     network_fn=fixed_network(uniform))
    result[inference] = float(np.mean(kl(out.action_weights.numpy(),
                                         np.full(4, 0.25))))
  return result


def test_message_passing_does_not_degenerate_with_depth(capsys):
  """Paper 001, fig. 1: message passing does not degenerate with depth.

  In a zero-reward absorbing model the optimal policy is the uniform
  prior. Resampling collapses the Dirac q-hat towards one atom as
  depth grows; the message-passing q-hat stays at the prior.
  """
  shallow, deep = degeneracy_kls(1), degeneracy_kls(16)
  with capsys.disabled():
    print(f'\nKL(q-hat || uniform), 4 particles: depth 1 {shallow}, '
          f'depth 16 {deep}')
  assert deep['dirac'] > shallow['dirac'] + 0.5
  assert deep['dirac'] > 0.9 * np.log(4)  # nearly one atom of log 4
  assert deep['message_passing'] < 1e-6
  assert shallow['message_passing'] < 1e-6


def test_revival_restarts_resampled_particles_from_non_terminal_states():
  """Resampling that favours terminated particles revives them instead."""
  rows = tf.range(4, dtype=tf.float32)
  particles = search.Particles(
      state=tf.constant([10, 11, 12, 13]), policy=rows, value=rows, q=(),
      alive=tf.constant([0.0, 1.0, 0.0, 1.0]), root_index=tf.range(4),
      root_action=tf.range(4), search_return=rows, retrace=rows, trace=rows,
      reference={'state': tf.constant([0, 0, 0, 0])})
  particles = search.update_references(particles)
  np.testing.assert_array_equal(particles.reference['state'],
                                [0, 11, 0, 13])
  # All the weight on the two terminated particles of each root.
  log_weights = tf.math.log(tf.constant([[1.0, 0.0], [1.0, 0.0]]))
  resampled = search.resample(log_weights, particles, tf.constant([1, 2]))
  np.testing.assert_array_equal(resampled.alive, [0, 0, 0, 0])
  revived = search.revive(resampled)
  np.testing.assert_array_equal(revived.alive, [1, 1, 1, 1])
  np.testing.assert_array_equal(revived.state, [0, 0, 0, 0])
  # A living particle keeps its state.
  kept = search.revive(search.resample(
      tf.math.log(tf.constant([[0.0, 1.0], [0.0, 1.0]])), particles,
      tf.constant([1, 2])))
  np.testing.assert_array_equal(kept.state, [11, 11, 13, 13])


def test_revived_search_keeps_particles_out_of_terminal_states():
  """Revived particles continue from their last non-terminal state.

  Action 0 ends the episode with reward 5; pi never takes it past the
  root. Without revival, resampling fills the particle set with terminated
  copies; with it they continue from the root.
  """
  model = toy.ToyModel([5.0, 0.0], [True, False])
  network_fn = fixed_network(np.array([-50.0, 0.0]))
  alive = {}
  for revived in (False, True):
    config = config_lib.SearchConfig(num_particles=16, depth=3,
                                     resample_period=1,
                                     root_dirichlet_alpha=100.0,
                                     root_exploration_fraction=0.5,
                                     revived_resampling=revived)
    out = run_search(model, config, batch=64, add_root_noise=True,
                     network_fn=network_fn)
    alive[revived] = float(np.mean(out.alive_fraction))
  assert alive[False] < 0.2, alive
  assert alive[True] > 0.6, alive


@pytest.mark.parametrize('alpha,expected', [
    # delta = 1 + 0.9 * 2 - 2 = 0.8 at every step; traces (gamma lambda)^k.
    (0.0, 2.0 + 0.8 * (1 + 0.45 + 0.45**2)),
    # Twisted to greedy (action 1, pi = 0.5): rho = 0.5, c_0 = 0.5 and
    # c_i = lambda * 0.5.
    (1.0, 2.0 + 0.8 * 0.5 * (1 + 0.225 + 0.225**2)),
])
def test_retrace_value_on_a_known_trajectory(alpha, expected):
  model = toy.ToyModel([1.0, 1.0], [False, False])
  config = config_lib.SearchConfig(num_particles=8, depth=3,
                                   resample_period=3, discount=0.9,
                                   retrace_lambda=0.5, proposal_alpha=alpha)
  network_fn = fixed_network(np.zeros(2), value=2.0,
                             q_values=np.array([0.0, 1.0]))
  out = run_search(model, config, batch=4, network_fn=network_fn)
  np.testing.assert_allclose(out.retrace_value.numpy(), expected, rtol=1e-4)


def test_trt_search_compiles_with_a_dynamic_batch():
  cube = rubiks_cube.RubiksCube(1, 3)
  config = config_lib.SearchConfig(
      num_particles=4, depth=3, resample_period=1, proposal_alpha=0.1,
      proposal_atoms=8, revived_resampling=True,
      policy_inference='message_passing')
  rng = np.random.default_rng(1)
  w = tf.constant(rng.normal(size=[324, 18]), tf.float32)

  def network_fn(obs):
    x = tf.reshape(tf.one_hot(obs, 6), [-1, 324])
    return networks.NetworkOutput(tf.matmul(x, w), tf.reduce_mean(x, -1),
                                  tf.matmul(x, -w))

  compiled = tf.function(
      lambda obs, s: search.smc_search(obs, cube, network_fn, ETA, config, s,
                                       add_root_noise=True),
      jit_compile=True,
      input_signature=[tf.TensorSpec([None, 6, 3, 3], tf.int32),
                       tf.TensorSpec([2], tf.int32)])
  for batch in (2, 5):
    out = compiled(cube.observe(cube.reset(batch, tf.constant([0, batch]))),
                   tf.constant([1, 2]))
    np.testing.assert_allclose(out.action_weights.numpy().sum(-1), 1.0,
                               rtol=1e-5)
    assert np.all(out.proposal_kl.numpy() > 0)
    assert np.all(np.isfinite(out.retrace_value.numpy()))


def test_twisting_needs_q_values():
  config = config_lib.SearchConfig(num_particles=4, depth=1,
                                   resample_period=1, proposal_alpha=0.1)
  with pytest.raises(ValueError, match='proposal_alpha > 0 needs Q-values'):
    run_search(toy.ToyModel([0.0], [True]), config,
               network_fn=fixed_network(np.zeros(1)))


# Continuous actions: prior N(MU, SIGMA^2), advantage -K (a - C)^2.
MU, SIGMA, K, C, GAUSSIAN_ETA = 0.5, 1.0, 1.0, 1.5, 2.0


def gaussian_network(loc=MU, scale=SIGMA, value=0.0):
  """A network with the same Gaussian policy and value everywhere."""

  def network_fn(observation):
    batch = tf.shape(observation)[0]
    fill = lambda x: tf.fill([batch, 1], tf.constant(x, tf.float32))
    return networks.NetworkOutput(
        action_spaces.GaussianParams(fill(loc), fill(scale)),
        tf.fill([batch], tf.constant(value, tf.float32)))

  return network_fn


def test_continuous_target_converges_to_the_analytic_gaussian():
  """Weighted atoms -> pi exp(A / eta) / Z, a Gaussian, as N grows."""
  bandit = toy.QuadraticBandit(K, [C])
  precision = 1.0 / SIGMA**2 + 2.0 * K / GAUSSIAN_ETA
  mean = (MU / SIGMA**2 + 2.0 * K * C / GAUSSIAN_ETA) / precision
  errors = []
  for n in (8, 64, 512, 4096):
    config = config_lib.SearchConfig(num_particles=n, depth=2,
                                     resample_period=1, discount=1.0)
    out = run_search(bandit, config, batch=64, network_fn=gaussian_network(),
                     eta=GAUSSIAN_ETA)
    atoms = out.atoms.numpy()[..., 0]
    weights = out.atom_weights.numpy()
    assert out.action_weights is None
    np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-5)
    weighted_mean = np.sum(weights * atoms, -1)
    weighted_var = np.sum(weights * (atoms - weighted_mean[:, None])**2, -1)
    errors.append((np.mean(np.abs(weighted_mean - mean)),
                   np.mean(np.abs(weighted_var * precision - 1.0))))
  mean_errors, var_errors = zip(*errors)
  assert mean_errors[-1] < 0.02 and var_errors[-1] < 0.05, errors
  assert mean_errors[-1] < mean_errors[0] / 5, errors
  assert var_errors[-1] < var_errors[0] / 3, errors


def test_continuous_message_passing_and_twisting_target_the_same_gaussian():
  """Message passing and a Q-twisted proposal keep the target unbiased."""
  bandit = toy.QuadraticBandit(K, [C])
  precision = 1.0 / SIGMA**2 + 2.0 * K / GAUSSIAN_ETA
  mean = (MU / SIGMA**2 + 2.0 * K * C / GAUSSIAN_ETA) / precision

  def q_fn(q, actions):  # Q twisting towards a = 3, away from the target.
    del q
    return -tf.square(actions[..., 0] - 3.0)

  for overrides in (dict(policy_inference='message_passing'),
                    dict(proposal_alpha=0.2, proposal_atoms=30),
                    dict(proposal_alpha=0.2, proposal_atoms=30,
                         policy_inference='message_passing')):
    config = config_lib.SearchConfig(num_particles=2048, depth=1,
                                     resample_period=1, discount=1.0,
                                     **overrides)
    network_fn = gaussian_network()
    if config.proposal_alpha:
      plain = network_fn
      network_fn = lambda obs, plain=plain: plain(obs)._replace(
          q=tf.zeros([tf.shape(obs)[0], 1]))
    graph = tf.function(  # Not XLA: see run_search.
        lambda obs, s, config=config, network_fn=network_fn:
        search.smc_search(obs, bandit, network_fn, GAUSSIAN_ETA, config, s,
                          q_fn=q_fn))
    out = graph(tf.zeros([16, 1]), tf.constant([3, 4]))
    atoms = out.atoms.numpy()[..., 0]
    weighted_mean = np.sum(out.atom_weights.numpy() * atoms, -1)
    np.testing.assert_allclose(np.mean(weighted_mean), mean, atol=0.03,
                               err_msg=str(overrides))
    if config.proposal_alpha:
      assert np.all(out.proposal_kl.numpy() > 0)


def test_continuous_twisting_needs_q_fn():
  config = config_lib.SearchConfig(num_particles=4, depth=1,
                                   resample_period=1, proposal_alpha=0.1)
  with pytest.raises(ValueError, match='needs q_fn'):
    run_search(toy.QuadraticBandit(K, [C]), config,
               network_fn=gaussian_network())


@pytest.mark.parametrize('threshold,reference_period,fraction', [
    # Threshold 1 resamples whenever weights are unequal: the fixed period.
    (1.0, 1, 1.0),
    # A threshold below every ESS never resamples: a period of `depth`,
    # whose whole depth is the eta segment.
    (1e-3, 4, 0.0),
])
def test_ess_thresholds_at_the_extremes_are_fixed_periods(
    threshold, reference_period, fraction):
  model = toy.ToyModel([1.0, 0.0, 0.5, -1.0], [False] * 4)
  adaptive = config_lib.SearchConfig(num_particles=16, depth=4,
                                     resample_period=1,
                                     ess_threshold=threshold)
  fixed = config_lib.SearchConfig(num_particles=16, depth=4,
                                  resample_period=reference_period)
  a = run_search(model, adaptive, batch=8)
  b = run_search(model, fixed, batch=8)
  for field in ('atoms', 'atom_weights', 'eta_advantages', 'value'):
    np.testing.assert_allclose(getattr(a, field), getattr(b, field),
                               rtol=1e-6, err_msg=field)
  np.testing.assert_array_equal(a.resample_fraction, fraction)


def test_ess_adaptive_resamples_only_roots_with_low_ess():
  """Equal rewards keep ESS = N (no resampling); unequal ones resample."""
  config = config_lib.SearchConfig(num_particles=32, depth=4,
                                   resample_period=1, ess_threshold=0.9)
  flat = run_search(toy.ToyModel([0.5] * 4, [False] * 4), config, batch=4)
  np.testing.assert_array_equal(flat.resample_fraction, 0.0)
  np.testing.assert_allclose(flat.ess, 32.0, rtol=1e-5)
  steep = run_search(toy.ToyModel([3.0, 0.0, 0.0, -3.0], [False] * 4),
                     config, batch=4)
  assert np.all(steep.resample_fraction.numpy() > 0)


def test_search_plans_from_the_carried_planning_state():
  """A PlanningObservation's state, not the network input, is planned from."""
  from environments import pendulum  # pylint: disable=g-import-not-at-top
  model = pendulum.Pendulum(time_limit=10)
  state = model.reset(3, tf.constant([0, 1]))
  config = config_lib.SearchConfig(num_particles=4, depth=3,
                                   resample_period=3)
  network_fn = lambda x: gaussian_network(loc=0.0)(x[:, :1])
  fresh = search.smc_search(model.observe(state), model, network_fn, 1.0,
                            config, tf.constant([1, 2]))
  np.testing.assert_allclose(fresh.alive_fraction, 1.0)
  # One step from the time limit: every particle's episode ends at once,
  # which the network input (cos, sin, speed) cannot show.
  late = dict(state, steps=tf.fill([3], 9))
  ending = search.smc_search(model.observe(late), model, network_fn, 1.0,
                             config, tf.constant([1, 2]))
  np.testing.assert_allclose(ending.alive_fraction, 0.0)
  # Only the first step's reward counts (the episode is over after it).
  np.testing.assert_array_less(fresh.value, 0.0)
  assert np.all(np.abs(ending.value) < np.abs(fresh.value))


def test_continuous_search_with_every_switch_compiles_with_a_dynamic_batch():
  from environments import pendulum  # pylint: disable=g-import-not-at-top
  model = pendulum.Pendulum(time_limit=3)
  network = networks.PolicyValueNetwork(
      model.network_input_spec(), model.action_spec(), torso_units=16,
      num_residual_blocks=1, head_units=16, q_head=True)
  config = config_lib.SearchConfig(
      num_particles=8, depth=4, resample_period=1, ess_threshold=0.8,
      proposal_alpha=0.1, proposal_atoms=6, revived_resampling=True,
      policy_inference='message_passing')
  spec = model.observation_spec()
  signature = tf.nest.map_structure(
      lambda s: tf.TensorSpec([None] + s.shape.as_list(), s.dtype), spec)
  compiled = tf.function(
      lambda obs, s: search.smc_search(
          obs, model, lambda x: network(x)[0], ETA, config, s,
          q_fn=network.q_values),
      jit_compile=True, input_signature=[signature,
                                         tf.TensorSpec([2], tf.int32)])
  for batch in (2, 5):
    state = model.reset(batch, tf.constant([0, batch]))
    out = compiled(model.observe(dict(state, steps=tf.fill([batch], 1))),
                   tf.constant([1, 2]))
    assert out.atoms.shape == (batch, 8, 1)
    np.testing.assert_allclose(out.atom_weights.numpy().sum(-1), 1.0,
                               rtol=1e-5)
    for field in ('value', 'retrace_value', 'eta_advantages', 'ess'):
      assert np.all(np.isfinite(getattr(out, field).numpy())), field
    assert np.all(out.proposal_kl.numpy() > 0)
    # Two steps from the time limit, within the depth of 4: every path ends.
    np.testing.assert_allclose(out.alive_fraction, 0.0)


def test_random_tree_exact_target_on_a_one_step_tree_is_analytic():
  tree = toy.RandomTree(4, 1, seed=5)
  advantages = tree.rewards[0] - tree.values[0]  # leaves have V = 0
  np.testing.assert_allclose(
      tree.exact_target(ETA, 1.0),
      analytic_target(tree.logits[0], advantages, ETA), rtol=1e-5)
  # One step of a taller tree bootstraps with the children's values.
  tall = toy.RandomTree(4, 3, seed=5)
  children = 1 + np.arange(4)
  np.testing.assert_allclose(
      tall.exact_target(ETA, 0.9, horizon=1),
      analytic_target(tall.logits[0], tall.rewards[0] + 0.9 *
                      tall.values[children] - tall.values[0], ETA),
      rtol=1e-5)
  with pytest.raises(ValueError, match='horizon'):
    tall.exact_target(ETA, 1.0, horizon=4)


def test_without_replacement_roots_are_distinct_and_cover_every_action():
  logits = tf.math.log_softmax(tf.constant([[2.0, 0.0, -1.0, 0.5]] * 3))
  few = search.without_replacement_root(tf.repeat(logits, 3, axis=0), 3,
                                        tf.constant([1, 2]))
  assert all(len(set(row)) == 3 for row in few.numpy().reshape(3, 3))
  many = search.without_replacement_root(tf.repeat(logits, 6, axis=0), 6,
                                         tf.constant([1, 2]))
  rows = many.numpy().reshape(3, 6)
  assert all(set(row) == {0, 1, 2, 3} for row in rows)
  # Ranks 0..3 then 0..1 again: the first four are a permutation.
  np.testing.assert_array_equal(rows[:, 4:], rows[:, :2])


@pytest.mark.parametrize('root_sampling', ['iid', 'without_replacement'])
def test_completed_target_converges_to_the_exact_tree_target(root_sampling):
  """Message passing, no resampling: q-hat -> the enumerated target."""
  tree = toy.RandomTree(8, 3, seed=1)
  exact = tree.exact_target(1.0, 1.0)
  kls = []
  for n in (16, 256):
    config = config_lib.SearchConfig(
        num_particles=n, depth=3, resample_period=3, discount=1.0,
        policy_inference='message_passing', root_sampling=root_sampling)
    out = run_search(tree, config, batch=64,
                     network_fn=estimators.tree_network_fn(tree), eta=1.0)
    kls.append(np.mean(kl(exact, out.action_weights.numpy())))
  assert kls[1] < kls[0] / 4 and kls[1] < 0.05, kls


@pytest.mark.parametrize('horizon,period', [(1, 1), (1, 3), (2, 3)])
def test_policy_target_over_the_first_steps_converges_to_the_trees(
    horizon, period):
  """policy_target_horizon h: the target -> the exact depth-h target.

  Horizons within the first resampling period (message passing completes
  the roots that resampling dropped with the value baseline, a bias beyond
  it). q-hat, which the search acts with, stays the full-depth search's.
  """
  tree = toy.RandomTree(8, 3, seed=1)
  exact = tree.exact_target(1.0, 1.0, horizon=horizon)
  network_fn = estimators.tree_network_fn(tree)
  kls = []
  for n in (16, 256):
    config = config_lib.SearchConfig(
        num_particles=n, depth=3, resample_period=period, discount=1.0,
        policy_target_horizon=horizon)
    out = run_search(tree, config, batch=64, network_fn=network_fn, eta=1.0)
    kls.append(np.mean(kl(exact, out.policy_target.action_weights.numpy())))
    papers = run_search(tree, dataclasses.replace(
        config, policy_target_horizon=0), batch=64, network_fn=network_fn,
                        eta=1.0)
    np.testing.assert_array_equal(out.action_weights, papers.action_weights)
    np.testing.assert_array_equal(papers.policy_target.action_weights,
                                  papers.action_weights)
  assert kls[1] < kls[0] / 4 and kls[1] < 0.05, kls


def test_policy_target_horizon_is_at_most_the_depth():
  with pytest.raises(ValueError, match='policy_target_horizon'):
    config_lib.SearchConfig(depth=4, policy_target_horizon=5)


def test_root_sampling_without_replacement_needs_message_passing():
  with pytest.raises(ValueError, match='root_sampling'):
    config_lib.SearchConfig(root_sampling='without_replacement')
  with pytest.raises(ValueError, match='root_sampling'):
    config_lib.SearchConfig(root_sampling='sorted')
  config = config_lib.SearchConfig(
      num_particles=4, depth=1, resample_period=1,
      policy_inference='message_passing', root_sampling='without_replacement')
  with pytest.raises(ValueError, match='needs discrete actions'):
    run_search(toy.QuadraticBandit(K, [C]), config,
               network_fn=gaussian_network())
