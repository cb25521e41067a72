"""Validated configuration of the SMC search and of the SPO agent.

Every validation error names the field and its allowed range; the field
names are the `launch/` binaries' flag names, which word them as flags.
"""

import dataclasses


def check(condition: bool, name: str, allowed: str, value) -> None:
  """Raises ValueError naming field `name`, its allowed range and `value`."""
  if not condition:
    raise ValueError(f'{name} must be {allowed}, got {value!r}.')


POLICY_INFERENCE = ('dirac', 'message_passing')
ETA_UPDATES = ('gradient', 'solve')
GAUSSIAN_MEAN_TARGETS = ('weighted', 'greedy')
GAUSSIAN_POLICY_TARGETS = ('search', 'critic')
ROOT_SAMPLING = ('iid', 'without_replacement')
# Largest initial Lagrange multiplier: the papers' are 0.5 to 500; beyond
# 1e4 a dual's term swamps the losses (1e30 trained at loss 5e29).
MAX_INITIAL_DUAL = 1e4


@dataclasses.dataclass(frozen=True)
class SearchConfig:
  """Static configuration of the SMC search (paper 000, algorithm 1).

  Attributes:
    num_particles: N, particles per root state (>= 1).
    depth: h, planning steps per search (>= 1).
    resample_period: p, multinomial resampling every p steps, 1 <= p <= depth.
      The segment before the first resampling provides the eta-dual
      advantages.
    ess_threshold: ESS-adaptive resampling in [0, 1]: every p steps, resample
      only the roots whose effective sample size is below
      `ess_threshold * num_particles`; 0 resamples every root every p steps.
    discount: gamma used by the one-step advantages, in [0, 1].
    root_dirichlet_alpha: concentration of the Dirichlet root noise (> 0).
    root_exploration_fraction: weight of the root noise in [0, 1].
    proposal_alpha: TRT-SMC greediness alpha in [0, 1] of the trust-region
      twisted proposal (paper 001, eq. 7); 0 samples from pi (SPO).
    proposal_atoms: B >= 1; action sets of at most B actions are twisted
      exactly, larger ones over B atoms bootstrapped from pi.
    revived_resampling: resample terminated particles from their last
      non-terminal state (paper 001, sec. 3.2).
    policy_inference: 'dirac' (SPO's weighted root actions) or
      'message_passing' (paper 001, sec. 3.3).
    retrace_lambda: lambda in [0, 1] of the Retrace search value.
    root_sampling: 'iid' (SPO: each particle's root action drawn from the
      proposal) or 'without_replacement' (discrete actions: Gumbel-top-k, so
      N particles start from min(N, A) distinct actions; needs
      policy_inference='message_passing', whose q-hat reads pi(a) from the
      network and completes unsampled actions with the value baseline).
    policy_target_horizon: 0 (the papers): the M-step's target is q-hat.
      h in [1, depth]: the target is q-hat by message passing over the
      first h steps only (each root atom weighted by its first h steps'
      advantages, the rest of the search left to V), while the search still
      acts with its full-depth q-hat. With h = 1 each atom's weight depends
      on its own action and V alone, not on the sampled continuation: a
      lower-variance target for a shorter look-ahead.
  """

  num_particles: int = 16
  depth: int = 4
  resample_period: int = 4
  ess_threshold: float = 0.0
  discount: float = 0.99
  root_dirichlet_alpha: float = 0.03
  root_exploration_fraction: float = 0.25
  proposal_alpha: float = 0.0
  proposal_atoms: int = 30
  revived_resampling: bool = False
  policy_inference: str = 'dirac'
  retrace_lambda: float = 0.95
  root_sampling: str = 'iid'
  policy_target_horizon: int = 0

  def __post_init__(self):
    check(self.num_particles >= 1, 'num_particles', '>= 1', self.num_particles)
    check(self.depth >= 1, 'depth', '>= 1', self.depth)
    check(1 <= self.resample_period <= self.depth, 'resample_period',
          f'in [1, depth={self.depth}]', self.resample_period)
    check(0.0 <= self.ess_threshold <= 1.0, 'ess_threshold', 'in [0, 1]',
          self.ess_threshold)
    check(0.0 <= self.discount <= 1.0, 'discount', 'in [0, 1]', self.discount)
    check(self.root_dirichlet_alpha > 0.0, 'root_dirichlet_alpha', '> 0',
          self.root_dirichlet_alpha)
    check(0.0 <= self.root_exploration_fraction <= 1.0,
          'root_exploration_fraction', 'in [0, 1]',
          self.root_exploration_fraction)
    check(0.0 <= self.proposal_alpha <= 1.0, 'proposal_alpha', 'in [0, 1]',
          self.proposal_alpha)
    check(self.proposal_atoms >= 1, 'proposal_atoms', '>= 1',
          self.proposal_atoms)
    check(self.policy_inference in POLICY_INFERENCE, 'policy_inference',
          f'one of {list(POLICY_INFERENCE)}', self.policy_inference)
    check(0.0 <= self.retrace_lambda <= 1.0, 'retrace_lambda', 'in [0, 1]',
          self.retrace_lambda)
    check(self.root_sampling in ROOT_SAMPLING, 'root_sampling',
          f'one of {list(ROOT_SAMPLING)}', self.root_sampling)
    check(self.root_sampling == 'iid' or
          self.policy_inference == 'message_passing', 'root_sampling',
          "'iid' unless policy_inference=message_passing (the Dirac "
          'target counts root actions, which are then no sample of pi)',
          self.root_sampling)
    check(0 <= self.policy_target_horizon <= self.depth,
          'policy_target_horizon', f'in [0, depth={self.depth}]',
          self.policy_target_horizon)


@dataclasses.dataclass(frozen=True)
class GumbelConfig:
  """Static configuration of the Gumbel MuZero search (Danihelka et al. 2022).

  The baseline the papers compare SPO with: a tree search on the true model
  with Gumbel-top-k root sampling, Sequential Halving and completed
  Q-values (`tf_spo.gumbel`). Its model steps per search equal
  `num_simulations`, so 64 simulations match a 16 x 4 SMC search.

  Attributes:
    num_simulations: simulations (model steps) per search, >= 1.
    max_num_considered_actions: m, actions sampled without replacement at
      the root (Gumbel-top-m) and halved by Sequential Halving, >= 1.
    num_sampled_actions: K, continuous actions: actions sampled from pi at
      each node, the node's edges (>= 1).
    gumbel_scale: scale of the root Gumbel noise of the collect policy,
      >= 0 (the evaluation policy uses none).
    c_visit: sigma's visit offset in (c_visit + max_b N(b)) * c_scale * q,
      >= 0.
    c_scale: sigma's scale of the min-max normalised Q-values, > 0.
    discount: gamma of the tree's backups, in [0, 1].
  """

  num_simulations: int = 64
  max_num_considered_actions: int = 16
  num_sampled_actions: int = 16
  gumbel_scale: float = 1.0
  c_visit: float = 50.0
  c_scale: float = 0.1
  discount: float = 0.99

  def __post_init__(self):
    check(self.num_simulations >= 1, 'num_simulations', '>= 1',
          self.num_simulations)
    check(self.max_num_considered_actions >= 1, 'max_num_considered_actions',
          '>= 1', self.max_num_considered_actions)
    check(self.num_sampled_actions >= 1, 'num_sampled_actions', '>= 1',
          self.num_sampled_actions)
    check(self.gumbel_scale >= 0.0, 'gumbel_scale', '>= 0', self.gumbel_scale)
    check(self.c_visit >= 0.0, 'c_visit', '>= 0', self.c_visit)
    check(self.c_scale > 0.0, 'c_scale', '> 0', self.c_scale)
    check(0.0 <= self.discount <= 1.0, 'discount', 'in [0, 1]', self.discount)


@dataclasses.dataclass(frozen=True)
class SpoConfig:
  """Hyperparameters of the SPO M-step (paper 000, appendix D).

  Attributes:
    discount: gamma of the GAE value targets, in [0, 1].
    gae_lambda: lambda of the GAE value targets, in [0, 1].
    target_update_tau: Polyak rate of the target network, in (0, 1].
    epsilon_eta: KL bound of the E-step enforced by the temperature eta (> 0).
    epsilon_alpha: KL bound of the M-step trust region (> 0), categorical
      policies.
    epsilon_alpha_mean: Gaussian policies: KL bound of the mean part of the
      trust region (> 0).
    epsilon_alpha_cov: Gaussian policies: KL bound of the covariance part
      (> 0).
    initial_eta: initial temperature (in (0, 1e4]).
    initial_alpha: initial KL multiplier (in (0, 1e4]), categorical
      policies.
    initial_alpha_mean: initial multiplier alpha_mu of the mean part (in
      (0, 1e4]).
    initial_alpha_cov: initial multiplier alpha_Sigma of the covariance
      part (in (0, 1e4]).
    value_loss_coef: weight of the value (and Q-value) losses (>= 0).
    max_grad_norm: global-norm gradient clipping of each of the network's
      variable groups (actor, critic), as separate optimisers would (> 0).
    search_value_weight: sigma in [0, 1]: the TD(lambda) targets bootstrap
      from (1 - sigma) * V_target + sigma * (Retrace search value) (paper
      001, sec. 3.4); 0 is SPO.
    eta_update: how eta follows its dual g(eta): 'gradient' (the paper: an
      optimizer step per batch, from `initial_eta`) or 'solve' (set to the
      exact minimiser of the batch's g before each M-step, so the E-step KL
      meets `epsilon_eta` from the first update; `losses.solve_eta`).
    gaussian_mean_target: Gaussian policies: what the mean part of the
      M-step fits: 'weighted' (the paper: every atom of q-hat by its weight)
      or 'greedy' (the atom of highest weight alone, the action the greedy
      search executes); the covariance part always fits every atom.
    gaussian_policy_target: Gaussian policies: where the M-step's atoms and
      weights come from: 'search' (the paper: q-hat's root atoms) or
      'critic' (the MPO E-step: `critic_atoms` pre-squash actions per
      replayed state sampled from the target policy, weighted by
      softmax(Q / eta_q) of the target network's Q head, eta_q solved per
      batch so that the weights' KL to uniform is `epsilon_critic`);
      'critic' needs a network with a Q head and continuous actions.
    critic_atoms: K, the actions sampled from the target policy per
      replayed state with gaussian_policy_target=critic (>= 1).
    epsilon_critic: the KL bound (> 0) of the critic's weights to uniform
      with gaussian_policy_target=critic (MPO's epsilon; 0.1 there).
    network_collect_fraction: the probability in [0, 1] that an environment
      acts, at a collect step, with the network policy's greedy action
      instead of the search's; the search still runs there and its q-hat is
      the M-step's target at that state (DAgger: the network learns on the
      states it visits itself). 0: the search acts at every step (the
      paper).
  """

  discount: float = 0.99
  gae_lambda: float = 0.95
  target_update_tau: float = 5e-3
  epsilon_eta: float = 0.5
  epsilon_alpha: float = 1e-3
  epsilon_alpha_mean: float = 5e-2
  epsilon_alpha_cov: float = 5e-4
  initial_eta: float = 0.5
  initial_alpha: float = 0.5
  initial_alpha_mean: float = 10.0
  initial_alpha_cov: float = 500.0
  value_loss_coef: float = 0.5
  max_grad_norm: float = 0.5
  search_value_weight: float = 0.0
  eta_update: str = 'gradient'
  gaussian_mean_target: str = 'weighted'
  gaussian_policy_target: str = 'search'
  critic_atoms: int = 20
  epsilon_critic: float = 0.1
  network_collect_fraction: float = 0.0

  def __post_init__(self):
    check(0.0 <= self.discount <= 1.0, 'discount', 'in [0, 1]', self.discount)
    check(0.0 <= self.gae_lambda <= 1.0, 'gae_lambda', 'in [0, 1]',
          self.gae_lambda)
    check(0.0 < self.target_update_tau <= 1.0, 'target_update_tau',
          'in (0, 1]', self.target_update_tau)
    for name in ('epsilon_eta', 'epsilon_alpha', 'epsilon_alpha_mean',
                 'epsilon_alpha_cov', 'epsilon_critic', 'max_grad_norm'):
      value = getattr(self, name)
      check(value > 0.0, name, '> 0', value)
    for name in ('initial_eta', 'initial_alpha', 'initial_alpha_mean',
                 'initial_alpha_cov'):
      value = getattr(self, name)
      check(0.0 < value <= MAX_INITIAL_DUAL, name,
            f'in (0, {MAX_INITIAL_DUAL:g}]', value)
    check(self.value_loss_coef >= 0.0, 'value_loss_coef', '>= 0',
          self.value_loss_coef)
    check(0.0 <= self.search_value_weight <= 1.0, 'search_value_weight',
          'in [0, 1]', self.search_value_weight)
    check(self.eta_update in ETA_UPDATES, 'eta_update',
          f'one of {list(ETA_UPDATES)}', self.eta_update)
    check(self.gaussian_mean_target in GAUSSIAN_MEAN_TARGETS,
          'gaussian_mean_target', f'one of {list(GAUSSIAN_MEAN_TARGETS)}',
          self.gaussian_mean_target)
    check(self.gaussian_policy_target in GAUSSIAN_POLICY_TARGETS,
          'gaussian_policy_target',
          f'one of {list(GAUSSIAN_POLICY_TARGETS)}',
          self.gaussian_policy_target)
    check(self.critic_atoms >= 1, 'critic_atoms', '>= 1', self.critic_atoms)
    check(0.0 <= self.network_collect_fraction <= 1.0,
          'network_collect_fraction', 'in [0, 1]',
          self.network_collect_fraction)
