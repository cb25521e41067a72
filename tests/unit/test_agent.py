"""Tests of the SPO agent's M-step (tf_spo/agent.py)."""

import numpy as np
import pytest
import tensorflow as tf
from tf_agents.specs import tensor_spec
from tf_agents.trajectories import time_step as ts

from environments import toy
from tests.support import mirrored_training
from tests.support.agents import CUBE
from tests.support.agents import PENDULUM
from tests.support.agents import SEARCH
from tests.support.agents import collected_experience
from tests.support.agents import fabricated_experience
from tests.support.agents import make_agent
from tests.support.agents import make_pendulum_agent
from tf_spo import agent as agent_lib
from tf_spo import config as config_lib
from tf_spo import experiment
from tf_spo import losses
from tf_spo import networks
from tf_spo import policy as policy_lib


def test_train_step_changes_parameters_and_returns_finite_losses():
  agent = make_agent()
  before = [v.numpy().copy() for v in agent._network.trainable_variables]  # pylint: disable=protected-access
  loss_info = agent.train(fabricated_experience(agent))
  assert np.isfinite(loss_info.loss.numpy())
  for name, value in loss_info.extra._asdict().items():
    assert np.isfinite(value.numpy()), name
  after = agent._network.trainable_variables  # pylint: disable=protected-access
  assert all(not np.allclose(b, a.numpy()) for b, a in zip(before, after))
  assert agent.train_step_counter.numpy() == 1


def test_q_head_regresses_on_the_value_targets():
  trt = config_lib.SearchConfig(num_particles=4, depth=2, resample_period=1,
                                proposal_alpha=0.1)
  agent = make_agent(search_config=trt)
  q_head = agent._network._q_head.trainable_variables  # pylint: disable=protected-access
  before = [v.numpy().copy() for v in q_head]
  loss_info = agent.train(fabricated_experience(agent))
  assert float(loss_info.extra.q_value_loss) > 0
  assert all(not np.allclose(b, v.numpy()) for b, v in zip(before, q_head))
  spo = make_agent()
  assert float(spo.loss(fabricated_experience(spo)).extra.q_value_loss) == 0.0


def test_search_value_weight_mixes_the_retrace_value_into_targets():
  agents = {sigma: make_agent(config_lib.SpoConfig(search_value_weight=sigma))
            for sigma in (0.0, 0.5, 1.0)}
  experience = fabricated_experience(agents[0.0])

  def value_loss(sigma, retrace_shift):
    info = dict(experience.policy_info)
    info['retrace_value'] += retrace_shift
    return float(agents[sigma].loss(experience._replace(
        policy_info=info)).extra.value_loss)

  assert value_loss(0.0, 0.0) == value_loss(0.0, 5.0)
  assert value_loss(1.0, 0.0) != value_loss(1.0, 5.0)
  assert value_loss(0.5, 0.0) != value_loss(0.5, 5.0)


def test_target_network_moves_by_tau():
  tau = 0.1
  agent = make_agent(config_lib.SpoConfig(target_update_tau=tau))
  online = agent._network.variables  # pylint: disable=protected-access
  target = agent._target_network.variables  # pylint: disable=protected-access
  old_target = [v.numpy().copy() for v in target]
  for v_online, v_target in zip(online, target):
    np.testing.assert_array_equal(v_online.numpy(), v_target.numpy())
  agent.train(fabricated_experience(agent))
  for old, v_online, v_target in zip(old_target, online, target):
    np.testing.assert_allclose(v_target.numpy(),
                               (1 - tau) * old + tau * v_online.numpy(),
                               rtol=1e-5, atol=1e-6)


def test_duals_move_towards_their_constraints():
  agent = make_agent()
  eta, alpha = float(agent.eta), float(agent.alphas['alpha'])
  # Large advantages: KL(q || pi) at eta = 0.5 is far above epsilon_eta, so
  # eta must grow; online == target gives KL 0 < epsilon_alpha, so alpha
  # must shrink.
  loss_info = agent.train(fabricated_experience(agent, advantage_scale=10.0))
  assert float(loss_info.extra.eta_kl) > agent._config.epsilon_eta  # pylint: disable=protected-access
  assert float(agent.eta) > eta
  assert float(agent.alphas['alpha']) < alpha
  assert float(agent.eta) > 0 and float(agent.alphas['alpha']) > 0


@pytest.mark.parametrize('initial_eta', [0.01, 50.0])
def test_solved_eta_meets_its_bound_from_the_first_update(initial_eta):
  config = config_lib.SpoConfig(eta_update='solve', initial_eta=initial_eta)
  agent = make_agent(config)
  experience = fabricated_experience(agent, advantage_scale=10.0)
  loss_info = agent.train(experience)
  # eta_kl is the batch's KL(q || pi) at the eta the M-step used.
  np.testing.assert_allclose(float(loss_info.extra.eta_kl),
                             config.epsilon_eta, atol=1e-3)
  # Its value is the exact dual's, whatever it started from.
  valid = tf.cast(~experience.is_boundary(), tf.float32)
  info = experience.policy_info
  expected = losses.solve_eta(info['eta_advantages'], config.epsilon_eta,
                              valid, info['eta_log_ratios'])
  np.testing.assert_allclose(float(agent.eta), float(expected), rtol=1e-4)


def test_episode_boundaries_do_not_leak_into_the_loss():
  agent = make_agent()
  experience = fabricated_experience(agent)
  boundary = experience.step_type.numpy() == ts.StepType.LAST
  assert boundary.any()
  perturbed_targets = np.where(boundary[..., None], 0.0,
                               experience.policy_info['search_policy'])
  perturbed_targets[..., 0] += boundary  # a different one-hot at boundaries
  info = dict(experience.policy_info, search_policy=tf.constant(
      perturbed_targets, tf.float32))
  base = agent.loss(experience).extra.policy_loss
  changed = agent.loss(experience._replace(policy_info=info)).extra.policy_loss
  np.testing.assert_allclose(base, changed, rtol=1e-6)


def test_nan_rewards_are_caught():
  agent = make_agent()
  experience = fabricated_experience(agent)
  reward = experience.reward.numpy()
  reward[0, 0] = np.nan
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match='SPO value_loss : Tensor had NaN values') as error:
    agent.train(experience._replace(reward=tf.constant(reward)))
  # The run names the part and the settings that usually cause it.
  settings = dict(experiment.DEFAULTS, learning_rate=0.5)
  assert str(experiment.non_finite_loss_error(error.value, settings, 7)) == (
      'value_loss became NaN at train step 7, usually from steps too large: '
      'lower one of learning_rate=0.5, dual_learning_rate=0.0003, '
      'max_grad_norm=0.5 (in a new root_dir).')
  assert experiment.non_finite_loss_error(
      tf.errors.InvalidArgumentError(None, None, 'other'), settings, 7) is None


def test_policies_and_specs():
  agent = make_agent()
  assert agent.policy.info_spec == agent.collect_policy.info_spec
  assert 'search_policy' in agent.collect_data_spec.policy_info
  time_step = ts.restart(CUBE.observe(CUBE.reset(2, tf.constant([0, 0]))), 2)
  assert agent.network_policy.action(time_step).action.shape == (2,)
  with pytest.raises(ValueError, match='action_spec: continuous actions'):
    agent_lib.SpoAgent(
        ts.time_step_spec(CUBE.observation_spec()),
        tensor_spec.BoundedTensorSpec((), tf.float32, -1.0, 1.0),
        networks.PolicyValueNetwork(CUBE.observation_spec(),
                                    CUBE.action_spec()), CUBE)


@pytest.mark.parametrize('proposal_alpha', [0.0, 0.1])
def test_gaussian_m_step_trains_the_policy_and_both_multipliers(
    proposal_alpha):
  search_config = config_lib.SearchConfig(
      num_particles=4, depth=2, resample_period=1,
      proposal_alpha=proposal_alpha, proposal_atoms=8)
  agent = make_pendulum_agent(search_config=search_config)
  experience = collected_experience(agent)
  assert experience.policy_info['search_atoms'].shape == (4, 6, 4, 1)
  assert experience.action.shape == (4, 6, 1)
  assert set(agent.alphas) == {'alpha_mean', 'alpha_cov'}
  before = [v.numpy().copy() for v in agent._network.trainable_variables]  # pylint: disable=protected-access
  for _ in range(3):
    loss_info = agent.train(experience)
  for name, value in loss_info.extra._asdict().items():
    assert np.isfinite(value.numpy()), name
  extra = loss_info.extra
  np.testing.assert_allclose(extra.kl, extra.kl_mean + extra.kl_cov,
                             rtol=1e-5)
  assert float(extra.alpha) == 0.0 and float(extra.alpha_mean) > 0
  after = agent._network.trainable_variables  # pylint: disable=protected-access
  changed = [not np.allclose(b, a.numpy()) for b, a in zip(before, after)]
  assert all(changed)
  if proposal_alpha:
    assert float(extra.q_value_loss) > 0


def test_gaussian_multipliers_follow_their_constraints():
  """Far-away bounds: both multipliers fall; tiny ones: they rise."""
  for epsilon, direction in ((10.0, -1.0), (1e-9, 1.0)):
    agent = make_pendulum_agent(config=config_lib.SpoConfig(
        epsilon_alpha_mean=epsilon, epsilon_alpha_cov=epsilon,
        target_update_tau=1e-3))
    experience = collected_experience(agent)
    agent.train(experience)  # The target still equals the network: KL = 0.
    alphas = agent.alphas
    agent.train(experience)
    for name, value in agent.alphas.items():
      assert direction * (float(value) - float(alphas[name])) > 0, name


def test_agent_rejects_bad_inputs_naming_the_argument():
  agent = make_agent()
  with pytest.raises(ValueError, match=r'experience: .* T >= 2'):
    agent.train(fabricated_experience(agent, time=1))
  # A model that carries its planning state, with a spec that doesn't.
  network = networks.PolicyValueNetwork(
      PENDULUM.network_input_spec(), PENDULUM.action_spec())
  with pytest.raises(ValueError, match='observation'):
    agent_lib.SpoAgent(ts.time_step_spec(PENDULUM.network_input_spec()),
                       PENDULUM.action_spec(), network, PENDULUM)
  # A network of the whole observation instead of its network input.
  cube_network = networks.PolicyValueNetwork(CUBE.observation_spec(),
                                             PENDULUM.action_spec())
  with pytest.raises(ValueError, match='network: its input spec'):
    agent_lib.SpoAgent(ts.time_step_spec(PENDULUM.observation_spec()),
                       PENDULUM.action_spec(), cube_network, PENDULUM)
  # A network of other actions.
  with pytest.raises(ValueError, match='network: it serves actions'):
    agent_lib.SpoAgent(
        ts.time_step_spec(PENDULUM.observation_spec()),
        PENDULUM.action_spec(),
        networks.PolicyValueNetwork(PENDULUM.network_input_spec(),
                                    CUBE.action_spec()), PENDULUM)


def test_training_updates_the_shared_observation_normalizer():
  search_config = config_lib.SearchConfig(
      num_particles=4, depth=2, resample_period=1, proposal_alpha=0.1,
      proposal_atoms=8)
  normalizer = networks.ObservationNormalizer(PENDULUM.network_input_spec())
  network = networks.MlpActorCriticNetwork(
      PENDULUM.network_input_spec(), PENDULUM.action_spec(),
      actor_units=(32, 32), critic_units=(32, 32), q_head=True,
      normalizer=normalizer)
  tau = 0.1
  agent = make_agent(
      config_lib.SpoConfig(epsilon_eta=0.2, initial_eta=10.0,
                           target_update_tau=tau),
      PENDULUM, search_config, network)
  target_network = agent._target_network  # pylint: disable=protected-access
  assert target_network.normalizer is normalizer
  experience = collected_experience(agent)
  assert normalizer.count.numpy() == 0  # Acting does not update it.
  online = network.trainable_variables
  target = target_network.trainable_variables
  old_target = [v.numpy().copy() for v in target]
  loss_info = agent.train(experience)
  assert np.isfinite(loss_info.loss.numpy())
  observations = experience.observation.network_input.numpy().reshape(-1, 3)
  assert normalizer.count.numpy() == len(observations) == 4 * 6
  np.testing.assert_allclose(normalizer.mean, observations.mean(0),
                             rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(normalizer.variance, observations.var(0),
                             rtol=1e-5, atol=1e-7)
  # The target network reads the same statistics; only its weights lag.
  assert target_network.normalizer is normalizer
  for old, v_online, v_target in zip(old_target, online, target):
    np.testing.assert_allclose(v_target.numpy(),
                               (1 - tau) * old + tau * v_online.numpy(),
                               rtol=1e-5, atol=1e-6)


def test_actor_and_critic_gradients_are_clipped_separately():
  """A huge critic gradient never shrinks the actor's (paper 000, table 3).

  Known answer: with the critic's gradient far above `max_grad_norm` and the
  actor's below it, the agent's actor gradient equals the unclipped gradient
  of the loss with respect to the actor, and the critic's has norm exactly
  `max_grad_norm`. One clip over both would scale the actor's down too.
  Seeded initialisers: the actor's norm (~0.3 for seeds 0-4, 0.9 at most)
  must not depend on the order the tests run in.
  """
  tf.keras.utils.set_random_seed(0)
  network = networks.MlpActorCriticNetwork(
      PENDULUM.network_input_spec(), PENDULUM.action_spec(),
      actor_units=(16,), critic_units=(16,))
  max_norm = 10.0
  agent = make_agent(
      config_lib.SpoConfig(epsilon_eta=0.2, initial_eta=10.0,
                           max_grad_norm=max_norm), PENDULUM, SEARCH, network)
  experience = collected_experience(agent)
  # Returns of 1e4 per step: the critic's gradient norm is huge.
  experience = experience._replace(reward=experience.reward + 1e4)
  actor, critic = network.variable_groups
  with tf.GradientTape() as tape:
    loss = agent._loss(experience).loss  # pylint: disable=protected-access
  raw_actor, raw_critic = tape.gradient(loss, (actor, critic))
  assert tf.linalg.global_norm(raw_critic) > 100 * max_norm
  actor_norm = float(tf.linalg.global_norm(raw_actor))
  assert 0 < actor_norm < max_norm
  _, grads, _, grad_norm = agent._loss_and_gradients(experience, None)  # pylint: disable=protected-access
  for got, want in zip(grads[:len(actor)], raw_actor):
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-7)
  np.testing.assert_allclose(
      tf.linalg.global_norm(grads[len(actor):]), max_norm, rtol=1e-5)
  np.testing.assert_allclose(
      grad_norm, tf.linalg.global_norm(list(raw_actor) + list(raw_critic)),
      rtol=1e-4)


class _ActorOnlyGroups(networks.MlpActorCriticNetwork):
  """A network whose variable groups forget the critic."""

  @property
  def variable_groups(self):
    return super().variable_groups[:1]


def test_agent_rejects_variable_groups_that_miss_a_variable():
  network = _ActorOnlyGroups(PENDULUM.network_input_spec(),
                             PENDULUM.action_spec(), actor_units=(8,),
                             critic_units=(8,))
  with pytest.raises(ValueError, match='network: its variable_groups'):
    agent_lib.SpoAgent(ts.time_step_spec(PENDULUM.observation_spec()),
                       PENDULUM.action_spec(), network, PENDULUM)


def test_two_replicas_train_like_one_replica_on_the_global_batch(
    two_cpu_strategy):
  """MirroredStrategy over 2 logical CPUs: same losses and updated weights.

  Two train steps each for the cube agent on [8, 5] batches (episode
  boundaries included, so the replicas' mask counts differ) and for a
  pendulum agent whose observation normaliser merges both replicas' halves,
  4 sequences per replica, against one replica on all 8
  (tests/support/mirrored_training.py).
  """
  differences = mirrored_training.all_differences(two_cpu_strategy)
  # Losses and extras of both steps, every network, target, dual and
  # normaliser variable of both agents.
  assert len(differences) > 100
  assert {'pendulum: ObservationNormalizer/count:0',
          'pendulum: ObservationNormalizer/m2:0'} <= set(differences)
  assert max(differences.values()) < 1e-5, differences


# A one-step bandit with reward -(a - 1.5)^2 (unbounded actions: the policy's
# pre-squash mean is its action).
BANDIT = toy.QuadraticBandit(1.0, [1.5])


def _bandit_agent(target='critic', seed=0, q_head=True):
  """A small agent on BANDIT; Adam 1e-2 and target tau 1 to learn fast."""
  tf.keras.utils.set_random_seed(0)
  network = networks.MlpActorCriticNetwork(
      BANDIT.observation_spec(), BANDIT.action_spec(), actor_units=(16,),
      critic_units=(32, 32), q_head=q_head)
  return agent_lib.SpoAgent(
      ts.time_step_spec(BANDIT.observation_spec()), BANDIT.action_spec(),
      network, BANDIT,
      search_config=config_lib.SearchConfig(num_particles=4, depth=1,
                                            resample_period=1),
      config=config_lib.SpoConfig(gaussian_policy_target=target,
                                  target_update_tau=1.0),
      optimizer=tf.keras.optimizers.Adam(1e-2), seed=seed)


def _bandit_experience(agent, batch=32, seed=0, search_atom=-2.0):
  """One-step episodes of uniform actions in [-3, 3] and their rewards.

  Each sequence is a transition (FIRST, terminal) and an episode boundary.
  The search's atoms all sit at `search_atom`, away from the optimum.
  """
  rng = np.random.default_rng(seed)
  experience = tensor_spec.sample_spec_nest(
      agent.collect_data_spec, seed=seed, outer_dims=(batch, 2))
  action = rng.uniform(-3.0, 3.0, size=[batch, 2, 1]).astype(np.float32)
  info = dict(experience.policy_info)
  info['search_atoms'] = tf.fill(info['search_atoms'].shape, search_atom)
  info['search_weights'] = tf.fill(info['search_weights'].shape, 0.25)
  info['eta_advantages'] = tf.zeros(info['eta_advantages'].shape)
  info['eta_log_ratios'] = tf.zeros(info['eta_log_ratios'].shape)
  first, last = int(ts.StepType.FIRST), int(ts.StepType.LAST)
  return experience._replace(
      step_type=tf.constant([[first, last]] * batch),
      next_step_type=tf.constant([[last, first]] * batch),
      observation=tf.zeros([batch, 2, 1]), action=tf.constant(action),
      reward=tf.constant(-np.square(action[..., 0] - 1.5)),
      discount=tf.zeros([batch, 2]), policy_info=info)


def _policy_mean(network) -> float:
  output, _ = network(tf.zeros([1, 1]))
  return float(output.policy.loc[0, 0])


def test_critic_target_trains_the_policy_towards_the_q_heads_optimum():
  """gaussian_policy_target=critic: the Q head is the policy's only signal.

  The search's atoms sit at -2, yet the policy's loss ignores them; the Q
  head learns -(a - 1.5)^2 from the taken actions' returns, and the policy
  mean goes from 0 to the learned Q's argmax, near the optimum 1.5. With
  'search' the same loss follows the search's atoms.
  """
  agent = _bandit_agent()
  experience = _bandit_experience(agent)
  elsewhere = _bandit_experience(agent, search_atom=3.0)
  np.testing.assert_array_equal(
      agent.loss(experience).extra.policy_loss,
      agent.loss(elsewhere).extra.policy_loss)
  search = _bandit_agent('search')
  assert (float(search.loss(experience).extra.policy_loss) !=
          float(search.loss(elsewhere).extra.policy_loss))
  assert float(search.loss(experience).extra.eta_q) == 0.0
  start = _policy_mean(agent.network)
  assert abs(start) < 0.1
  train = tf.function(agent.train)
  for step in range(150):
    loss_info = train(_bandit_experience(agent, seed=step))
  assert float(loss_info.extra.eta_q) > 0
  for name, value in loss_info.extra._asdict().items():
    assert np.isfinite(value.numpy()), name
  mean = _policy_mean(agent.network)
  assert abs(mean - 1.5) < 0.4, mean
  grid = np.linspace(-3.0, 3.0, 601, dtype=np.float32)
  target = agent._target_network  # pylint: disable=protected-access
  output, _ = target(tf.zeros([1, 1]))
  q_values = target.q_values(output.q, tf.constant(grid[None, :, None]))
  assert abs(mean - grid[np.argmax(q_values[0])]) < 0.1, mean


def test_critic_target_resumes_bit_exactly_from_a_checkpoint(tmp_path):
  """Stateless samples keyed on the agent's seed and its train step.

  A train step restored from a checkpoint (which holds the step counter)
  repeats bit for bit; the samples change with the step and the seed.
  """
  agent = _bandit_agent()
  experiences = [_bandit_experience(agent, seed=seed) for seed in (0, 1)]
  agent.train(experiences[0])
  checkpoint = tf.train.Checkpoint(agent=agent)
  path = checkpoint.save(str(tmp_path / 'ckpt'))
  extra = agent.train(experiences[1]).extra
  state = (list(agent.variables) + list(agent._optimizer.variables) +  # pylint: disable=protected-access
           list(agent._dual_optimizer.variables))  # pylint: disable=protected-access
  variables = [v.numpy() for v in state]
  checkpoint.restore(path).assert_consumed()
  assert int(agent.train_step_counter) == 1
  again = agent.train(experiences[1]).extra
  for name in extra._fields:
    np.testing.assert_array_equal(getattr(again, name), getattr(extra, name),
                                  err_msg=name)
  assert len(variables) > 70
  for got, want in zip(state, variables):
    np.testing.assert_array_equal(got, want, err_msg=got.name)
  # The atoms of the same step repeat; other steps and seeds draw others.
  output, _ = agent._target_network(tf.zeros([2, 1]))  # pylint: disable=protected-access
  other_seed = _bandit_agent(seed=1)

  def atoms(step, owner=agent):
    owner.train_step_counter.assign(step)
    return owner._critic_target(None, output, tf.ones([1, 2])).atoms.numpy()  # pylint: disable=protected-access

  assert atoms(3).shape == (1, 2, 20, 1)
  np.testing.assert_array_equal(atoms(3), atoms(3))
  assert not np.array_equal(atoms(4), atoms(3))
  assert not np.array_equal(atoms(3, other_seed), atoms(3))


def test_critic_target_needs_a_q_head_and_continuous_actions():
  with pytest.raises(ValueError, match=r'gaussian_policy_target=critic .* '
                     r'Q head'):
    _bandit_agent(q_head=False)
  with pytest.raises(ValueError, match=r'gaussian_policy_target=critic .* '
                     r'continuous actions'):
    make_agent(config_lib.SpoConfig(gaussian_policy_target='critic'),
               search_config=config_lib.SearchConfig(
                   num_particles=4, depth=2, resample_period=1,
                   proposal_alpha=0.1))
  with pytest.raises(ValueError, match=r"gaussian_policy_target must be one "
                     r"of \['search', 'critic'\], got 'q'"):
    config_lib.SpoConfig(gaussian_policy_target='q')
  with pytest.raises(ValueError, match='critic_atoms must be >= 1, got 0'):
    config_lib.SpoConfig(critic_atoms=0)


def test_network_collect_fraction_lets_the_network_act_while_collecting():
  agent = make_agent(config_lib.SpoConfig(network_collect_fraction=1.0))
  assert isinstance(agent.collect_policy, policy_lib.NetworkActsPolicy)
  state = CUBE.reset(8, tf.constant([0, 0]))
  time_step = ts.restart(CUBE.observe(state), 8)
  step = agent.collect_policy.action(time_step)
  greedy = policy_lib.NetworkPolicy(agent.time_step_spec, agent.action_spec,
                                    agent.network, greedy=True)
  np.testing.assert_array_equal(step.action, greedy.action(time_step).action)
  assert set(step.info) == set(agent.collect_policy.info_spec)
  # Off by default: the search's collect policy itself.
  assert not isinstance(make_agent().collect_policy,
                        policy_lib.NetworkActsPolicy)


def test_eval_search_config_is_the_evaluation_policys_search_alone():
  tf.random.set_seed(0)
  network = networks.PolicyValueNetwork(
      CUBE.network_input_spec(), CUBE.action_spec(), torso_units=32,
      num_residual_blocks=1, head_units=32)
  evaluation = config_lib.SearchConfig(num_particles=6, depth=3,
                                       resample_period=3)
  agent = agent_lib.SpoAgent(
      ts.time_step_spec(CUBE.observation_spec()), CUBE.action_spec(),
      network, CUBE, search_config=SEARCH, eval_search_config=evaluation,
      seed=3)
  time_step = ts.restart(CUBE.observe(CUBE.reset(5, tf.constant([0, 1]))), 5)
  step = agent.policy.action(time_step)
  # The same greedy search built directly acts and infers alike (eta's
  # softplus runs inside or outside the compiled search: 1 ulp apart).
  direct = policy_lib.search_policy(
      agent.time_step_spec, agent.action_spec, network, CUBE, evaluation,
      agent.eta, greedy=True, seed=3).action(time_step)
  np.testing.assert_array_equal(step.action, direct.action)
  for name, value in direct.info.items():
    np.testing.assert_allclose(step.info[name], value, rtol=1e-5, atol=1e-6,
                               err_msg=name)
  assert step.info['eta_advantages'].shape == (5, 6)
  # Collection (and so training's data) keeps the collect search's N = 4.
  assert agent.collect_policy.info_spec['eta_advantages'].shape == (4,)
  assert agent.collect_data_spec.policy_info['eta_advantages'].shape == (4,)
