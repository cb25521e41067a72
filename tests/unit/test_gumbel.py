"""Known-answer tests of the Gumbel MuZero baseline (tf_spo/gumbel.py)."""

import math

import numpy as np
import pytest
import tensorflow as tf

from environments import rubiks_cube
from environments import toy
from tf_spo import action_spaces
from tf_spo import config as config_lib
from tf_spo import experiment
from tf_spo import gumbel
from tf_spo import networks


def fixed_network(logits, value=0.0):
  """The same logits and value at every observation."""

  def network_fn(observation):
    batch = tf.shape(observation)[0]
    return networks.NetworkOutput(
        tf.tile(tf.constant(logits, tf.float32)[None], [batch, 1]),
        tf.fill([batch], tf.constant(value, tf.float32)))

  return network_fn


def search(model, logits, config, value=0.0, batch=1, seed=(1, 2),
           add_noise=True):
  """The search as a TensorFlow graph, not XLA.

  As tests/unit/test_search.py's run_search;
  test_compiled_search_equals_eager_on_the_cube compiles it.
  """
  observation = model.observe(model.reset(batch, tf.constant([0, 0])))
  run = lambda obs, s: gumbel.gumbel_search(
      obs, model, fixed_network(logits, value), config, s, add_noise)
  return tf.function(run)(observation, tf.constant(seed))


def test_sequential_halving_schedule():
  considered = lambda m, s: gumbel.sequential_halving(m, s)[0]
  # m = 4, S = 8: 4 actions once, then 2 actions twice more.
  np.testing.assert_array_equal(considered(4, 8), [0, 0, 0, 0, 1, 1, 2, 2])
  np.testing.assert_array_equal(gumbel.sequential_halving(4, 8)[1],
                                [1, 0, 0, 0, 1, 0, 0, 0])
  # m = 2, S = 5: 2 visits per phase per action, cut at 5.
  np.testing.assert_array_equal(considered(2, 5), [0, 0, 1, 1, 2])
  np.testing.assert_array_equal(considered(1, 3), [0, 1, 2])
  # m = 16, S = 64 (the paper's budget): phases of 16, 8 (x2), 4 (x4), 2.
  schedule, starts = gumbel.sequential_halving(16, 64)
  np.testing.assert_array_equal(schedule[:16], 0)
  np.testing.assert_array_equal(schedule[16:32], [1] * 8 + [2] * 8)
  np.testing.assert_array_equal(schedule[32:36], 3)
  np.testing.assert_array_equal(schedule[48:52], [7, 7, 8, 8])
  np.testing.assert_array_equal(np.flatnonzero(starts), [0, 16, 32, 48])


def test_improved_policy_is_the_completed_q_softmax_by_hand():
  # Two terminal actions, rewards 1 and 0; pi = (1/4, 3/4); V = 0.5.
  # S = 2, m = 2: each action visited once, Q = (1, 0), all visited.
  # sigma = (50 + 1) * 0.1 * (1, 0) = (5.1, 0).
  bandit = toy.ToyModel([1.0, 0.0], [True, True])
  logits = [0.0, math.log(3.0)]
  config = config_lib.GumbelConfig(num_simulations=2,
                                   max_num_considered_actions=2)
  out = search(bandit, logits, config, value=0.5, add_noise=False)
  e = math.exp(5.1)
  np.testing.assert_allclose(out.action_weights.numpy()[0],
                             [e / (e + 3), 3 / (e + 3)], rtol=1e-5)
  np.testing.assert_array_equal(out.visit_counts.numpy()[0], [1, 1])
  # The root's value: mean of V = 0.5 and the two returns 1 and 0.
  np.testing.assert_allclose(out.value.numpy(), [0.5], rtol=1e-6)
  assert out.action.numpy()[0] == 0


def test_unvisited_actions_complete_with_the_mixed_value_by_hand():
  # Three terminal actions, rewards (1, 0, 0.5); pi = (1, 3, 4) / 8; V = 0.2.
  # Without noise, S = 2, m = 2 visit the two likeliest actions, 2 and 1.
  # v_mix = (0.2 + 2 * (3/8 * 0 + 4/8 * 0.5) / (7/8)) / 3 = 0.2571429;
  # completed Q = (0.2571429, 0, 0.5), min-max normalised (0.5142857, 0, 1),
  # sigma = 5.1 * that.
  bandit = toy.ToyModel([1.0, 0.0, 0.5], [True, True, True])
  logits = [0.0, math.log(3.0), math.log(4.0)]
  config = config_lib.GumbelConfig(num_simulations=2,
                                   max_num_considered_actions=2)
  out = search(bandit, logits, config, value=0.2, add_noise=False)
  np.testing.assert_array_equal(out.visit_counts.numpy()[0], [0, 1, 1])
  v_mix = (0.2 + 2 * (4 / 8 * 0.5) / (7 / 8)) / 3
  np.testing.assert_allclose(out.completed_q.numpy()[0], [v_mix, 0.0, 0.5],
                             rtol=1e-5)
  improved = np.exp(np.array(logits) +
                    5.1 * np.array([v_mix / 0.5, 0.0, 1.0]))
  np.testing.assert_allclose(out.action_weights.numpy()[0],
                             improved / improved.sum(), rtol=1e-5)
  # Both visited once; action 2 has the higher logits + sigma.
  assert out.action.numpy()[0] == 2


def exact_sequential_halving(gumbels, logits, rewards, value, m, budget,
                             c_visit=50.0, c_scale=0.1):
  """The paper's Sequential Halving on a one-step bandit, phase by phase."""
  probs = np.exp(logits - logits.max())
  probs /= probs.sum()
  visits = np.zeros_like(rewards)

  def sigma():
    visited = visits > 0
    weighted = (probs * rewards)[visited].sum() / probs[visited].sum()
    v_mix = (value + visits.sum() * weighted) / (1 + visits.sum())
    completed = np.where(visited, rewards, v_mix)
    spread = max(completed.max() - completed.min(), 1e-8)
    return ((c_visit + visits.max()) * c_scale *
            (completed - completed.min()) / spread)

  considered = list(np.argsort(-(gumbels + logits))[:m])
  used = 0
  log2m = math.ceil(math.log2(m))
  while used < budget:
    extra = max(1, int(budget / (log2m * len(considered))))
    for _ in range(extra):
      for action in considered:
        if used < budget:
          visits[action] += 1
          used += 1
    score = gumbels + logits + sigma()
    considered = sorted(considered, key=lambda a: -score[a])
    considered = considered[:max(2, len(considered) // 2)]
  most = visits == visits.max()
  return int(np.argmax(np.where(most, gumbels + logits + sigma(), -np.inf)))


@pytest.mark.parametrize('num_actions, m, budget',
                         [(6, 4, 8), (8, 8, 24), (8, 4, 16)])
def test_root_choice_matches_exact_sequential_halving(num_actions, m, budget):
  rng = np.random.default_rng(0)
  rewards = rng.uniform(-1.0, 1.0, num_actions).astype(np.float32)
  logits = rng.normal(size=num_actions).astype(np.float32)
  bandit = toy.ToyModel(rewards.tolist(), [True] * num_actions)
  config = config_lib.GumbelConfig(num_simulations=budget,
                                   max_num_considered_actions=m)
  out = search(bandit, logits, config, value=0.1, batch=64, seed=(3, 4))
  gumbels = out.gumbel.numpy()
  assert np.std(gumbels) > 0.5  # Each root has its own Gumbels.
  expected = [exact_sequential_halving(g, logits, rewards, 0.1, m, budget)
              for g in gumbels]
  np.testing.assert_array_equal(out.action.numpy(), expected)


def test_gumbel_top_1_samples_the_prior():
  # With one simulation and one considered action, the choice is
  # argmax(g + logits): a sample of pi (the Gumbel-max trick).
  logits = np.log(np.array([0.1, 0.2, 0.3, 0.4], np.float32))
  bandit = toy.ToyModel([0.0] * 4, [True] * 4)
  config = config_lib.GumbelConfig(num_simulations=1,
                                   max_num_considered_actions=1)
  out = search(bandit, logits, config, batch=20_000, seed=(5, 6))
  frequencies = np.bincount(out.action.numpy(), minlength=4) / 20_000
  # Standard error of a frequency <= 0.0035; 4 of them within 0.015.
  np.testing.assert_allclose(frequencies, [0.1, 0.2, 0.3, 0.4], atol=0.015)


def test_backups_discount_rewards_along_paths():
  # An endless chain with reward 1 and V = 1 / (1 - gamma) everywhere: every
  # backed-up return of any path is exactly 1 / (1 - gamma).
  chain = toy.ToyModel([1.0, 1.0, 1.0], [False] * 3)
  config = config_lib.GumbelConfig(num_simulations=12,
                                   max_num_considered_actions=2,
                                   discount=0.9)
  out = search(chain, [0.0, 0.2, -0.3], config, value=10.0, batch=3)
  np.testing.assert_allclose(out.value.numpy(), 10.0, rtol=1e-5)
  np.testing.assert_allclose(out.completed_q.numpy(), 10.0, rtol=1e-5)
  assert out.visit_counts.numpy().sum(axis=-1).tolist() == [12] * 3


def test_terminal_edges_stop_backups():
  # Action 0 ends the episode with reward 0.5; action 1 goes on with reward
  # 0. Each gets 8 of the 16 simulations, so 7 nodes are expanded below the
  # terminal child of action 0 (with rewards 0.5 and 0 and V = 2), and none
  # of their returns may reach Q(0) = 0.5.
  model = toy.ToyModel([0.5, 0.0], [True, False])
  config = config_lib.GumbelConfig(num_simulations=16,
                                   max_num_considered_actions=2,
                                   discount=1.0)
  out = search(model, [0.0, 0.0], config, value=2.0, add_noise=False)
  np.testing.assert_array_equal(out.visit_counts.numpy()[0], [8, 8])
  assert out.completed_q.numpy()[0, 0] == 0.5


def test_continuous_edges_are_samples_of_pi_with_the_improved_weights():
  # Sampled actions on the quadratic bandit: reward -(a - 1)^2, terminal.
  # Each node's K = 8 edges are draws of pi = N(0.5, 0.8^2) with a uniform
  # prior; S = 8 with m = 8 visits each edge once, so Q(a) = -(a - 1)^2
  # exactly and the improved weights are softmax(5.1 * normalised Q).
  bandit = toy.QuadraticBandit(1.0, [1.0])

  def network_fn(observation):
    batch = tf.shape(observation)[0]
    fill = lambda x: tf.fill([batch, 1], x)
    return networks.NetworkOutput(
        action_spaces.GaussianParams(fill(0.5), fill(0.8)),
        tf.zeros([batch]))

  config = config_lib.GumbelConfig(num_simulations=8,
                                   max_num_considered_actions=8,
                                   num_sampled_actions=8)
  observation = bandit.observe(bandit.reset(500, tf.constant([0, 0])))
  out = tf.function(lambda o, s: gumbel.gumbel_search(
      o, bandit, network_fn, config, s, add_noise=False),
                    jit_compile=True)(observation, tf.constant([1, 2]))
  atoms = out.atoms.numpy()[..., 0]
  assert atoms.shape == (500, 8)
  assert abs(atoms.mean() - 0.5) < 0.03 and abs(atoms.std() - 0.8) < 0.03
  np.testing.assert_array_equal(out.visit_counts.numpy(), 1.0)
  q = -(atoms - 1.0)**2
  np.testing.assert_allclose(out.completed_q.numpy(), q, rtol=1e-5,
                             atol=1e-6)
  normalised = (q - q.min(1, keepdims=True)) / np.ptp(q, 1, keepdims=True)
  weights = np.exp(5.1 * normalised)
  np.testing.assert_allclose(out.action_weights.numpy(),
                             weights / weights.sum(1, keepdims=True),
                             rtol=1e-4)
  # Without noise the choice is the best atom.
  np.testing.assert_array_equal(out.action.numpy(), np.argmax(q, axis=1))


def test_compiled_search_equals_eager_on_the_cube():
  tf.keras.utils.set_random_seed(0)
  model = rubiks_cube.RubiksCube(min_scramble=1, max_scramble=4)
  network = networks.PolicyValueNetwork(
      model.network_input_spec(), model.action_spec(), torso_units=32,
      num_residual_blocks=1, head_units=32)
  observation = model.observe(model.reset(5, tf.constant([0, 1])))
  network_fn = lambda x: network(x)[0]
  config = config_lib.GumbelConfig(num_simulations=10,
                                   max_num_considered_actions=4)
  run = lambda obs, s: gumbel.gumbel_search(obs, model, network_fn, config, s)
  eager = run(observation, tf.constant([7, 8]))
  compiled = tf.function(run, jit_compile=True)(observation,
                                                tf.constant([7, 8]))
  np.testing.assert_array_equal(eager.action.numpy(),
                                compiled.action.numpy())
  np.testing.assert_array_equal(eager.visit_counts.numpy(),
                                compiled.visit_counts.numpy())
  np.testing.assert_allclose(eager.action_weights.numpy(),
                             compiled.action_weights.numpy(), atol=1e-5)
  # A root's result does not depend on the other roots of the batch.
  alone = tf.function(run, jit_compile=True)(
      tf.nest.map_structure(lambda x: x[:2], observation),
      tf.constant([7, 8]))
  np.testing.assert_array_equal(alone.visit_counts.numpy(),
                                compiled.visit_counts.numpy()[:2])


def test_config_errors_name_the_argument():
  with pytest.raises(ValueError, match='num_simulations must be >= 1'):
    config_lib.GumbelConfig(num_simulations=0)
  with pytest.raises(ValueError, match='c_scale must be > 0'):
    config_lib.GumbelConfig(c_scale=0.0)
  with pytest.raises(ValueError, match='num_sampled_actions must be >= 1'):
    config_lib.GumbelConfig(num_sampled_actions=0)


def test_continuous_gumbel_run_trains_the_gaussian_m_step(tmp_path):
  settings = experiment.resolve_settings('pendulum', 'cpu', dict(
      algorithm='gumbel', num_envs=8, rollout_length=8,
      total_env_steps=256, eval_episodes=2, eval_interval=256,
      checkpoint_interval=256, log_interval=256, num_simulations=8,
      num_sampled_actions=4, batch_size=8, sequence_length=4, num_epochs=2))
  summary = experiment.train(settings, str(tmp_path))
  # 4 iterations of 64 env steps, 2 gradient steps each.
  assert summary['train_steps'] == 8 and 'search' in summary['saved_models']
  run = experiment.restore_run(str(tmp_path))
  info = run.replay_buffer.gather_all().policy_info
  assert info['search_atoms'].shape[-2:] == (4, 1)
  np.testing.assert_allclose(info['search_weights'].numpy().sum(-1), 1.0,
                             rtol=1e-5)
  # The M-step moved the Gaussian duals; eta, unused, stayed.
  assert run.agent.alphas['alpha_mean'].numpy() != pytest.approx(
      settings['initial_alpha_mean'])
  assert run.agent.eta.numpy() == pytest.approx(settings['initial_eta'])
