"""Validation of the search and agent configs (tf_spo/config.py)."""

import pytest

from tf_spo import config as config_lib


@pytest.mark.parametrize('kwargs,message', [
    (dict(num_particles=0), 'num_particles must be >= 1'),
    (dict(depth=0, resample_period=1), 'depth must be >= 1'),
    (dict(depth=4, resample_period=0),
     'resample_period must be in [1, depth=4]'),
    (dict(depth=4, resample_period=5),
     'resample_period must be in [1, depth=4]'),
    (dict(discount=1.5), 'discount must be in [0, 1]'),
    (dict(root_dirichlet_alpha=0.0), 'root_dirichlet_alpha must be > 0'),
    (dict(root_exploration_fraction=-0.1),
     'root_exploration_fraction must be in [0, 1]'),
    (dict(proposal_alpha=-0.1), 'proposal_alpha must be in [0, 1]'),
    (dict(proposal_alpha=1.5), 'proposal_alpha must be in [0, 1]'),
    (dict(proposal_atoms=0), 'proposal_atoms must be >= 1'),
    (dict(retrace_lambda=1.1), 'retrace_lambda must be in [0, 1]'),
    (dict(policy_inference='mean'),
     "policy_inference must be one of ['dirac', 'message_passing']"),
])
def test_search_config_rejects_bad_values(kwargs, message):
  with pytest.raises(ValueError) as error:
    config_lib.SearchConfig(**kwargs)
  assert str(error.value).startswith(message)


@pytest.mark.parametrize('kwargs,message', [
    (dict(epsilon_eta=0.0), 'epsilon_eta must be > 0'),
    (dict(epsilon_alpha=-1e-3), 'epsilon_alpha must be > 0'),
    (dict(initial_eta=0.0), 'initial_eta must be in (0, 10000], got 0.0.'),
    (dict(initial_eta=1e30), 'initial_eta must be in (0, 10000], got 1e+30.'),
    (dict(initial_alpha_cov=2e4), 'initial_alpha_cov must be in (0, 10000]'),
    (dict(initial_alpha=-1.0), 'initial_alpha must be in (0, 10000]'),
    (dict(gae_lambda=1.1), 'gae_lambda must be in [0, 1]'),
    (dict(target_update_tau=0.0), 'target_update_tau must be in (0, 1]'),
    (dict(max_grad_norm=0.0), 'max_grad_norm must be > 0'),
    (dict(value_loss_coef=-1.0), 'value_loss_coef must be >= 0'),
    (dict(search_value_weight=-0.5), 'search_value_weight must be in [0, 1]'),
    (dict(search_value_weight=2.0), 'search_value_weight must be in [0, 1]'),
    (dict(gaussian_policy_target='q'), 'gaussian_policy_target must be one '
     "of ['search', 'critic'], got 'q'."),
    (dict(critic_atoms=0), 'critic_atoms must be >= 1, got 0.'),
    (dict(epsilon_critic=0.0), 'epsilon_critic must be > 0'),
    (dict(network_collect_fraction=1.5),
     'network_collect_fraction must be in [0, 1], got 1.5.'),
])
def test_spo_config_rejects_bad_values(kwargs, message):
  with pytest.raises(ValueError) as error:
    config_lib.SpoConfig(**kwargs)
  assert str(error.value).startswith(message)


def test_defaults_are_the_paper_discrete_values():
  search = config_lib.SearchConfig()
  assert (search.num_particles, search.depth, search.resample_period) == (
      16, 4, 4)
  assert (search.root_dirichlet_alpha, search.root_exploration_fraction) == (
      0.03, 0.25)
  spo = config_lib.SpoConfig()
  assert (spo.epsilon_eta, spo.epsilon_alpha, spo.initial_eta,
          spo.initial_alpha) == (0.5, 1e-3, 0.5, 0.5)
  # TRT-SMC switches default to off.
  assert (search.proposal_alpha, search.revived_resampling,
          search.policy_inference) == (0.0, False, 'dirac')
  assert spo.search_value_weight == 0.0
  # Boundary values are accepted.
  config_lib.SearchConfig(num_particles=1, depth=1, resample_period=1,
                          proposal_alpha=1.0, proposal_atoms=1,
                          retrace_lambda=0.0)
