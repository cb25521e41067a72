"""Validated configuration of the SMC search and of the SPO agent.

Field names are the `launch/train.py` flag names, so every validation error
names the flag to change and its allowed range.
"""

import dataclasses


def check(condition: bool, name: str, allowed: str, value) -> None:
  """Raises ValueError naming flag `name`, its allowed range and `value`."""
  if not condition:
    raise ValueError(f'--{name} must be {allowed}, got {value!r}.')


@dataclasses.dataclass(frozen=True)
class SearchConfig:
  """Static configuration of the SMC search (paper 000, algorithm 1).

  Attributes:
    num_particles: N, particles per root state (>= 1).
    depth: h, planning steps per search (>= 1).
    resample_period: p, multinomial resampling every p steps, 1 <= p <= depth.
      The segment before the first resampling provides the eta-dual
      advantages.
    discount: gamma used by the one-step advantages, in [0, 1].
    root_dirichlet_alpha: concentration of the Dirichlet root noise (> 0).
    root_exploration_fraction: weight of the root noise in [0, 1].
  """

  num_particles: int = 16
  depth: int = 4
  resample_period: int = 4
  discount: float = 0.99
  root_dirichlet_alpha: float = 0.03
  root_exploration_fraction: float = 0.25

  def __post_init__(self):
    check(self.num_particles >= 1, 'num_particles', '>= 1', self.num_particles)
    check(self.depth >= 1, 'depth', '>= 1', self.depth)
    check(1 <= self.resample_period <= self.depth, 'resample_period',
           f'in [1, depth={self.depth}]', self.resample_period)
    check(0.0 <= self.discount <= 1.0, 'discount', 'in [0, 1]', self.discount)
    check(self.root_dirichlet_alpha > 0.0, 'root_dirichlet_alpha', '> 0',
           self.root_dirichlet_alpha)
    check(0.0 <= self.root_exploration_fraction <= 1.0,
           'root_exploration_fraction', 'in [0, 1]',
           self.root_exploration_fraction)


@dataclasses.dataclass(frozen=True)
class SpoConfig:
  """Hyperparameters of the SPO M-step (paper 000, appendix D).

  Attributes:
    discount: gamma of the GAE value targets, in [0, 1].
    gae_lambda: lambda of the GAE value targets, in [0, 1].
    target_update_tau: Polyak rate of the target network, in (0, 1].
    epsilon_eta: KL bound of the E-step enforced by the temperature eta (> 0).
    epsilon_alpha: KL bound of the M-step trust region (> 0).
    initial_eta: initial temperature (> 0).
    initial_alpha: initial KL multiplier (> 0).
    value_loss_coef: weight of the value loss (>= 0).
    max_grad_norm: global-norm gradient clipping of the network (> 0).
  """

  discount: float = 0.99
  gae_lambda: float = 0.95
  target_update_tau: float = 5e-3
  epsilon_eta: float = 0.5
  epsilon_alpha: float = 1e-3
  initial_eta: float = 0.5
  initial_alpha: float = 0.5
  value_loss_coef: float = 0.5
  max_grad_norm: float = 0.5

  def __post_init__(self):
    check(0.0 <= self.discount <= 1.0, 'discount', 'in [0, 1]', self.discount)
    check(0.0 <= self.gae_lambda <= 1.0, 'gae_lambda', 'in [0, 1]',
           self.gae_lambda)
    check(0.0 < self.target_update_tau <= 1.0, 'target_update_tau',
           'in (0, 1]', self.target_update_tau)
    for name in ('epsilon_eta', 'epsilon_alpha', 'initial_eta',
                 'initial_alpha', 'max_grad_norm'):
      value = getattr(self, name)
      check(value > 0.0, name, '> 0', value)
    check(self.value_loss_coef >= 0.0, 'value_loss_coef', '>= 0',
           self.value_loss_coef)
