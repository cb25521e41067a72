"""Tests of the SMC search policy and the network policy (tf_spo/policy.py)."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf
from tf_agents.policies import py_tf_eager_policy
from tf_agents.specs import tensor_spec
from tf_agents.train import actor
from tf_agents.train.utils import train_utils
from tf_agents.trajectories import time_step as ts

from environments import model as model_lib
from environments import rubiks_cube
from environments import toy
from tf_spo import config as config_lib
from tf_spo import networks
from tf_spo import policy as policy_lib

CUBE = rubiks_cube.RubiksCube(1, 3)
SEARCH = config_lib.SearchConfig(num_particles=8, depth=2, resample_period=1)


def make_policy(model=CUBE, **kwargs):
  network = networks.PolicyValueNetwork(
      model.observation_spec(), model.action_spec(), torso_units=32,
      num_residual_blocks=1, head_units=32)
  return policy_lib.SmcPolicy(
      ts.time_step_spec(model.observation_spec()), model.action_spec(),
      network, model, SEARCH, tf.constant(0.5), **kwargs), network


def cube_time_step(batch=4, seed=0):
  state = CUBE.reset(batch, tf.constant([seed, 0]))
  return ts.restart(CUBE.observe(state), batch)


def test_action_is_valid_and_info_holds_search_targets():
  policy, _ = make_policy()
  step = policy.action(cube_time_step())
  action = step.action.numpy()
  assert action.shape == (4,) and np.all((0 <= action) & (action < 18))
  tf.nest.assert_same_structure(step.info, policy.info_spec)
  assert step.info['search_policy'].shape == (4, 18)
  assert step.info['eta_advantages'].shape == (4, 8)
  np.testing.assert_allclose(step.info['search_policy'].numpy().sum(-1), 1.0,
                             rtol=1e-5)
  # The sampled action is one the search gave weight to.
  probs = step.info['search_policy'].numpy()
  assert np.all(probs[np.arange(4), action] > 0)
  ess = step.info['ess'].numpy()
  assert np.all((ess >= 1.0 - 1e-4) & (ess <= 8.0 + 1e-4))


def test_greedy_policy_takes_the_mode_of_the_search_target():
  policy, _ = make_policy(greedy=True)
  step = policy.action(cube_time_step(batch=16))
  np.testing.assert_array_equal(
      step.action, np.argmax(step.info['search_policy'].numpy(), axis=-1))


def test_explicit_seed_is_reproducible_and_generator_advances():
  policy, _ = make_policy()
  time_step = cube_time_step(batch=8)
  seed = tf.constant([7, 8], tf.int32)
  first = policy.action(time_step, seed=seed)
  second = policy.action(time_step, seed=seed)
  np.testing.assert_array_equal(first.info['search_policy'],
                                second.info['search_policy'])
  unseeded = [policy.action(time_step).info['search_policy'].numpy()
              for _ in range(2)]
  assert not np.array_equal(*unseeded)


def test_a_policy_target_horizon_changes_the_targets_not_the_action():
  """The M-step's target over the first step; acting stays q-hat's."""
  policy, network = make_policy()
  horizon_search = dataclasses.replace(SEARCH, policy_target_horizon=1)
  one_step = policy_lib.SmcPolicy(
      policy.time_step_spec, policy.action_spec, network, CUBE,
      horizon_search, tf.constant(0.5))
  time_step = cube_time_step(batch=8)
  seed = tf.constant([7, 8], tf.int32)
  full, first = (p.action(time_step, seed=seed) for p in (policy, one_step))
  np.testing.assert_array_equal(full.action, first.action)
  np.testing.assert_array_equal(full.info['eta_advantages'],
                                first.info['eta_advantages'])
  assert not np.allclose(full.info['search_policy'],
                         first.info['search_policy'])
  np.testing.assert_allclose(first.info['search_policy'].numpy().sum(-1), 1.0,
                             rtol=1e-5)


def test_collect_policy_noise_changes_the_root_sampling():
  policy, network = make_policy(add_root_noise=True)
  plain = policy_lib.SmcPolicy(
      ts.time_step_spec(CUBE.observation_spec()), CUBE.action_spec(),
      network, CUBE, SEARCH, tf.constant(0.5))
  time_step = cube_time_step(batch=8)
  seed = tf.constant([1, 1], tf.int32)
  assert not np.array_equal(
      policy.action(time_step, seed=seed).info['search_policy'],
      plain.action(time_step, seed=seed).info['search_policy'])


def test_search_policy_finds_the_best_bandit_arm():
  """With a uniform prior, q-hat concentrates on the highest reward."""
  bandit = toy.ToyModel([0.0, 2.0, 0.0], [True] * 3)
  policy, _ = make_policy(bandit, greedy=True)
  step = policy.action(ts.restart(tf.zeros([16, 1]), 16))
  assert np.mean(step.action.numpy() == 1) > 0.9


def test_network_policy_is_greedy_over_logits():
  _, network = make_policy()
  policy = policy_lib.NetworkPolicy(
      ts.time_step_spec(CUBE.observation_spec()), CUBE.action_spec(), network,
      greedy=True)
  time_step = cube_time_step()
  output, _ = network(time_step.observation)
  np.testing.assert_array_equal(policy.action(time_step).action,
                                np.argmax(output.policy.numpy(), axis=-1))


def test_twisted_search_policy_needs_a_q_head():
  trt = config_lib.SearchConfig(num_particles=4, depth=2, resample_period=1,
                                proposal_alpha=0.1)
  network = networks.PolicyValueNetwork(CUBE.observation_spec(),
                                        CUBE.action_spec(), torso_units=8,
                                        head_units=8)
  time_step_spec = ts.time_step_spec(CUBE.observation_spec())
  with pytest.raises(ValueError, match='q_head=True'):
    policy_lib.SmcPolicy(time_step_spec, CUBE.action_spec(), network, CUBE,
                         trt, 0.5)
  q_network = networks.PolicyValueNetwork(
      CUBE.observation_spec(), CUBE.action_spec(), torso_units=8,
      head_units=8, q_head=True)
  policy = policy_lib.SmcPolicy(time_step_spec, CUBE.action_spec(),
                                q_network, CUBE, trt, 0.5)
  step = policy.action(cube_time_step())
  assert np.all(step.info['proposal_kl'].numpy() > 0)
  assert np.all(step.info['proposal_beta'].numpy() > 0)


def test_rejects_continuous_or_mismatched_specs():
  time_step_spec = ts.time_step_spec(CUBE.observation_spec())
  network = networks.PolicyValueNetwork(CUBE.observation_spec(),
                                        CUBE.action_spec(), torso_units=8,
                                        head_units=8)
  continuous = tensor_spec.BoundedTensorSpec((), tf.float32, -1.0, 1.0)
  with pytest.raises(ValueError, match=r'action_spec: continuous actions'):
    policy_lib.SmcPolicy(time_step_spec, continuous, network, CUBE, SEARCH,
                         0.5)
  other_network = networks.PolicyValueNetwork(
      CUBE.observation_spec(), tensor_spec.BoundedTensorSpec((), tf.int32, 0,
                                                             5))
  with pytest.raises(ValueError, match='network: it serves actions'):
    policy_lib.SmcPolicy(time_step_spec, CUBE.action_spec(), other_network,
                         CUBE, SEARCH, 0.5)
  other_input = networks.PolicyValueNetwork(
      tensor_spec.TensorSpec((54,), tf.float32), CUBE.action_spec())
  with pytest.raises(ValueError, match='network: its input spec'):
    policy_lib.SmcPolicy(time_step_spec, CUBE.action_spec(), other_input,
                         CUBE, SEARCH, 0.5)
  wrong_actions = tensor_spec.BoundedTensorSpec((), tf.int32, 0, 5)
  with pytest.raises(ValueError, match='does not match the model'):
    policy_lib.SmcPolicy(time_step_spec, wrong_actions, network, CUBE,
                         SEARCH, 0.5)
  wrong_observations = ts.time_step_spec(
      tensor_spec.BoundedTensorSpec((54,), tf.int32, 0, 5))
  with pytest.raises(ValueError, match='observation'):
    policy_lib.SmcPolicy(wrong_observations, CUBE.action_spec(), network,
                         CUBE, SEARCH, 0.5)


class _HostRewardToy(toy.ToyModel):
  """A toy whose rewards come from the host (`tf.numpy_function`)."""

  xla_compatible = False

  def step(self, state, action):
    out = super().step(state, action)
    reward = tf.numpy_function(lambda r: r * 2.0, [out.reward], tf.float32)
    return out._replace(reward=tf.reshape(reward, tf.shape(out.reward)))


def test_a_model_that_cannot_compile_runs_the_search_uncompiled():
  model = _HostRewardToy([1.0, 0.0, 2.0], [True] * 3)
  policy, network = make_policy(model)
  step = policy.action(ts.restart(tf.zeros([5, 1]), 5))
  assert step.action.shape == (5,)
  # It searches as the compiled search of the same toy with doubled rewards.
  doubled = toy.ToyModel([2.0, 0.0, 4.0], [True] * 3)
  compiled = policy_lib.SmcPolicy(
      ts.time_step_spec(doubled.observation_spec()), doubled.action_spec(),
      network, doubled, SEARCH, tf.constant(0.5))
  same = compiled.action(ts.restart(tf.zeros([5, 1]), 5))
  np.testing.assert_allclose(step.info['search_value'],
                             same.info['search_value'], rtol=1e-6)
  np.testing.assert_array_equal(step.action, same.action)
  # XLA could not compile this model's step.
  with pytest.raises(Exception, match=r'PyFunc|numpy_function'):
    tf.function(lambda s, a: model.step(s, a).reward, jit_compile=True)(
        tf.zeros([2], tf.int32), tf.zeros([2], tf.int32))


BANDIT = toy.QuadraticBandit(1.0, [1.5])


def bandit_policy(num_particles, network=None, **kwargs):
  """A one-step SMC search policy on the quadratic bandit, and its network.

  A new small network unless `network` is given.
  """
  network = network or networks.PolicyValueNetwork(
      BANDIT.observation_spec(), BANDIT.action_spec(), torso_units=8,
      num_residual_blocks=0, head_units=8)
  config = config_lib.SearchConfig(num_particles=num_particles, depth=1,
                                   resample_period=1)
  return policy_lib.SmcPolicy(
      ts.time_step_spec(BANDIT.observation_spec()), BANDIT.action_spec(),
      network, BANDIT, config, 0.1, **kwargs), network


def test_continuous_search_policy_acts_in_bounds_and_greedy_takes_the_best():
  greedy, network = bandit_policy(64, greedy=True)
  step = greedy.action(ts.restart(tf.zeros([6, 1]), 6))
  atoms = step.info['search_atoms'].numpy()[..., 0]
  best = atoms[np.arange(6), np.argmax(step.info['search_weights'], -1)]
  np.testing.assert_allclose(step.action.numpy()[:, 0], best)
  # The best of 64 atoms is near the bandit's optimum 1.5.
  assert np.all(np.abs(best - 1.5) < np.abs(atoms - 1.5).mean(-1))
  sampled, _ = bandit_policy(64, network)
  step = sampled.action(ts.restart(tf.zeros([6, 1]), 6))
  assert step.action.shape == (6, 1)
  assert all(a in row for a, row in zip(step.action.numpy()[:, 0],
                                        step.info['search_atoms'].numpy()[
                                            ..., 0]))


def test_network_acts_policy_keeps_the_search_targets_at_its_states():
  search, network = bandit_policy(16)
  greedy_network = policy_lib.NetworkPolicy(
      search.time_step_spec, search.action_spec, network, greedy=True)
  time_step = ts.restart(tf.zeros([400, 1]), 400)
  seed = tf.constant([3, 4])
  search_seed, _ = tf.unstack(
      tf.random.experimental.stateless_split(seed, num=2))
  searched = search.action(time_step, seed=search_seed)
  network_action = greedy_network.action(time_step).action.numpy()

  def act(fraction):
    return policy_lib.NetworkActsPolicy(
        search, greedy_network, fraction).action(time_step, seed=seed)

  # Always the network: its greedy action, the search's targets.
  step = act(1.0)
  np.testing.assert_array_equal(step.action.numpy(), network_action)
  for key, value in searched.info.items():
    np.testing.assert_array_equal(step.info[key], value)
  # Never: the search's own action.
  np.testing.assert_array_equal(act(0.0).action, searched.action)
  # Half: each environment's action is one of the two, about half each.
  step = act(0.5)
  by_network = np.all(step.action.numpy() == network_action, axis=-1)
  by_search = np.all(step.action.numpy() == searched.action.numpy(), axis=-1)
  assert np.all(by_network | by_search)
  assert 0.4 < by_network.mean() < 0.6
  np.testing.assert_array_equal(act(0.5).action, step.action)  # Seeded.


def test_search_policy_collects_through_a_tf_agents_actor():
  """tf_agents.train.Actor runs the search on a ModelPyEnvironment."""
  policy, _ = make_policy()
  trajectories = []
  collector = actor.Actor(
      model_lib.ModelPyEnvironment(CUBE, batch_size=4, seed=0),
      py_tf_eager_policy.PyTFEagerPolicy(policy, use_tf_function=True,
                                         batch_time_steps=False),
      train_utils.create_train_step(), steps_per_run=16,
      observers=[trajectories.append])
  collector.run()
  # 16 steps of a batch of 4, not counting episode boundaries.
  assert len(trajectories) >= 4
  for trajectory in trajectories:
    action = trajectory.action
    assert action.shape == (4,) and np.all((0 <= action) & (action < 18))
    np.testing.assert_allclose(
        np.sum(trajectory.policy_info['search_policy'], axis=-1), 1.0,
        rtol=1e-5)
    # Each reward is the model's reward of the observed cube and action.
    state = CUBE.state_from_observation(trajectory.observation)
    reward = CUBE.step(state, tf.constant(action)).reward.numpy()
    mid = ~trajectory.is_boundary()
    np.testing.assert_array_equal(trajectory.reward[mid], reward[mid])
