"""Run settings: a flat dict, its schema, presets and checks.

A run is described by a flat dict of settings (`SETTINGS`: name, default,
help); `launch.train` makes a flag of each, and the dict is written to
`<root_dir>/config.json` so that evaluation, export and a resumed run rebuild
exactly the same agent. The checks here need nothing built;
`builders.validate_settings` adds those that build the model and network.
"""

from typing import Any, Dict

from environments import registry
from tf_spo import config as config_lib

# (name, default, help). Defaults are the CPU preset: a run that finishes in
# minutes on a 2-core laptop CPU. Each env of the registry overrides some
# (environments/registry.py), and the presets go on top.
SETTINGS = (
    ('env', 'rubiks_cube', f'Task, one of {sorted(registry.ENVS)}.'),
    ('seed', 0, 'Seed of the network, environments and search.'),
    ('algorithm', 'spo', 'Algorithm: spo (the SMC search; TRT-SMC with its '
     'switches on), gumbel (Gumbel MuZero search on the true model, same '
     'M-step and value targets) or ppo (TF-Agents PPOClipAgent, no '
     'search).'),
    ('num_envs', 64, 'Environments stepped in parallel.'),
    ('rollout_length', 8, 'Environment steps per environment per iteration.'),
    ('total_env_steps', 40_000, 'Environment steps to train for.'),
    ('num_particles', 16, 'SMC particles per root state (N).'),
    ('depth', 4, 'SMC search depth (h).'),
    ('resample_period', 4, 'Resample every this many search steps (p).'),
    ('ess_threshold', 0.0, 'ESS-adaptive resampling: every resample_period '
     'steps, resample only roots whose ESS < ess_threshold * num_particles; '
     '0 resamples every root.'),
    ('root_dirichlet_alpha', 0.03, 'Dirichlet root-noise concentration.'),
    ('root_exploration_fraction', 0.25, 'Weight of the root noise.'),
    ('proposal_alpha', 0.0, 'TRT-SMC: greediness in [0, 1] of the '
     'trust-region twisted proposal; 0 samples from pi (SPO). Adds a Q head.'),
    ('proposal_atoms', 30, 'TRT-SMC: atoms B of the twisted proposal; action '
     'sets of at most B actions are twisted exactly.'),
    ('revived_resampling', False, 'TRT-SMC: resample terminated particles '
     'from their last non-terminal state.'),
    ('policy_inference', 'dirac', 'q-hat estimator: dirac (SPO) or '
     'message_passing (TRT-SMC).'),
    ('retrace_lambda', 0.95, 'Lambda of the Retrace search value.'),
    ('root_sampling', 'iid', 'Root actions of the particles: iid (SPO: '
     'drawn from the prior) or without_replacement (discrete: Gumbel-top-k, '
     'min(N, A) distinct actions; needs policy_inference='
     'message_passing).'),
    ('num_simulations', 64, 'algorithm=gumbel: simulations (model steps) '
     'per search; 64 matches 16 particles x depth 4.'),
    ('max_num_considered_actions', 16, 'algorithm=gumbel: actions sampled '
     'at the root (Gumbel-top-k) for Sequential Halving.'),
    ('num_sampled_actions', 16, 'algorithm=gumbel, continuous actions: '
     'actions sampled from pi at each node (its edges).'),
    ('gumbel_scale', 1.0, 'algorithm=gumbel: scale of the root Gumbel '
     'noise of the collect policy.'),
    ('c_visit', 50.0, 'algorithm=gumbel: visit offset of sigma(q).'),
    ('c_scale', 0.1, 'algorithm=gumbel: scale of sigma(q).'),
    ('search_value_weight', 0.0, 'TRT-SMC: sigma in [0, 1], weight of the '
     'Retrace search value in the TD(lambda) bootstrap; 0 is SPO.'),
    ('network', 'residual', 'Network: residual (a shared residual torso '
     'with policy and value heads) or mlp (separate actor and critic '
     'MLPs, SPO appendix A.3).'),
    ('mlp_units', 256, 'network=mlp: width of every actor/critic layer.'),
    ('mlp_layers', 4, 'network=mlp: hidden layers of the actor and of '
     'the critic.'),
    ('normalize_observations', False, 'Normalise network inputs by their '
     'running mean and std (updated in training; checkpointed and '
     'exported with the network). Needs network=mlp.'),
    ('conv_channels', '', 'network=residual on grid observations: '
     'comma-separated output channels of the convolutional ResNet stages '
     'before the torso, e.g. 256,256,512,512; empty for none.'),
    ('conv_residual_blocks', 2, 'Residual conv blocks per conv stage.'),
    ('torso_units', 256, 'Width of the residual torso.'),
    ('num_residual_blocks', 2, 'Residual blocks in the torso.'),
    ('head_units', 256, 'Width of the hidden layer of each head.'),
    ('initial_scale', 1.0, 'Continuous actions: initial standard deviation '
     'of the pre-squash Gaussian policy.'),
    ('loc_bound', 0.0, 'Continuous actions: b > 0 keeps the pre-squash '
     'policy mean in (-b, b) (b * tanh(x / b)); 0 leaves it unbounded.'),
    ('learning_rate', 1e-3, 'Adam learning rate of the network.'),
    ('dual_learning_rate', 3e-4, 'Adam learning rate of eta and alpha.'),
    ('discount', 0.99, 'Discount gamma (search and GAE).'),
    ('gae_lambda', 0.95, 'GAE lambda of the value targets.'),
    ('target_update_tau', 5e-3, 'Polyak rate of the target network.'),
    ('epsilon_eta', 0.5, 'E-step KL bound enforced by eta.'),
    ('epsilon_alpha', 1e-3, 'M-step KL trust-region bound (discrete).'),
    ('epsilon_alpha_mean', 5e-2, 'M-step KL bound of the Gaussian mean.'),
    ('epsilon_alpha_cov', 5e-4, 'M-step KL bound of the Gaussian '
     'covariance.'),
    ('initial_eta', 0.5, 'Initial temperature eta.'),
    ('initial_alpha', 0.5, 'Initial trust-region multiplier alpha '
     '(discrete).'),
    ('initial_alpha_mean', 10.0, 'Initial multiplier alpha_mu of the '
     'Gaussian mean.'),
    ('initial_alpha_cov', 500.0, 'Initial multiplier alpha_Sigma of the '
     'Gaussian covariance.'),
    ('eta_update', 'gradient', 'How eta follows its dual: gradient (the '
     'paper: dual_learning_rate steps from initial_eta) or solve (the '
     'exact minimiser of the dual on each batch, so the E-step KL meets '
     'epsilon_eta from the first update).'),
    ('gaussian_mean_target', 'weighted', 'Continuous actions: what the '
     'M-step fits the policy mean to: weighted (the paper: every atom of '
     'q-hat by its weight) or greedy (the atom of highest weight).'),
    ('value_loss_coef', 0.5, 'Weight of the value loss.'),
    ('ppo_clip_ratio', 0.2, 'algorithm=ppo: epsilon in (0, 1) of the '
     'clipped importance ratio of the surrogate objective.'),
    ('ppo_entropy_coef', 0.01, 'algorithm=ppo: weight of the entropy '
     'bonus (0 for none).'),
    ('max_grad_norm', 0.5, 'Global-norm gradient clipping, per actor/critic '
     '(PPO: of both together).'),
    ('batch_size', 64, 'Sequences per gradient step.'),
    ('sequence_length', 17, 'Steps per replayed sequence (>= 2).'),
    ('num_epochs', 8, 'Gradient steps per iteration.'),
    ('replay_capacity', 65_536, 'Replay buffer capacity in steps.'),
    ('min_scramble', 1, 'rubiks_cube: fewest scramble moves of training '
     'cubes.'),
    ('max_scramble', 7, 'rubiks_cube: most scramble moves of training '
     'cubes.'),
    ('levels_dir', '', 'sokoban: Boxoban-format level file or directory '
     'to train on (e.g. boxoban-levels/unfiltered/train); empty: built-in '
     'generated levels.'),
    ('num_levels', 10_000, 'sokoban: generated training levels when '
     'levels_dir is empty.'),
    ('eval_levels_dir', '', 'sokoban: level file or directory whose every '
     'level is an evaluation episode, in order; empty: 1000 held-out '
     'generated levels.'),
    ('time_limit', 20, 'Episode step limit (per env default).'),
    ('eval_scramble', 7, 'rubiks_cube: scramble moves of the held-out '
     'evaluation cubes.'),
    ('num_threads', 1, 'MuJoCo tasks: threads stepping the simulator.'),
    ('strategy', 'default', 'tf.distribute strategy of launch.train: '
     'default (one device), mirrored (num_replicas replicas on the local '
     'GPUs, or on as many logical CPU devices without a GPU) or tpu '
     '(TPUStrategy on tpu). Each replica searches and trains on its '
     'share of the environments and of the batch.'),
    ('num_replicas', 1, 'strategy=mirrored: replicas (local GPUs or '
     'logical CPU devices); must divide num_envs and batch_size.'),
    ('tpu', '', 'strategy=tpu: address of the TPU (TPUClusterResolver); '
     'empty for the TPU of this host.'),
    ('eval_episodes', 200, 'Held-out episodes per evaluation.'),
    ('eval_interval', 10_000, 'Evaluate every this many environment steps.'),
    ('checkpoint_interval', 10_000,
     'Checkpoint every this many environment steps.'),
    ('log_interval', 2_000, 'Progress line every this many environment steps.'),
)

DEFAULTS = {name: default for name, default, _ in SETTINGS}

# 'cpu' is every env's own defaults; the others exist for the envs whose
# registry entry defines them (environments/registry.py).
PRESETS = ('cpu', 'cpu_30min', 'paper', 'trt_smc')
ALGORITHMS = ('spo', 'gumbel', 'ppo')

# Settings that only say how long or how often: they may change on resume.
SCHEDULE_SETTINGS = ('total_env_steps', 'eval_interval', 'eval_episodes',
                     'checkpoint_interval', 'log_interval')
# Settings that say on which devices: they may change on resume too (the
# checkpoint holds one copy of every variable).
DEVICE_SETTINGS = ('strategy', 'num_replicas', 'tpu')
STRATEGIES = ('default', 'mirrored', 'tpu')
# Settings of algorithm=ppo alone (runs from before them read the defaults).
PPO_SETTINGS = ('ppo_clip_ratio', 'ppo_entropy_coef')
# Settings added since runs were first written; a run from before one of
# them trained with its default.
ADDED_SETTINGS = ('eta_update', 'root_sampling', 'gaussian_mean_target',
                  'loc_bound')
# The Gumbel MuZero settings (`GumbelConfig`'s own fields).
GUMBEL_SETTINGS = ('num_simulations', 'max_num_considered_actions',
                   'num_sampled_actions', 'gumbel_scale', 'c_visit',
                   'c_scale')



def resolve_settings(env: str, preset: str,
                     explicit: Dict[str, Any]) -> Dict[str, Any]:
  """Settings of a run: defaults, then the env's, its preset, then flags.

  Args:
    env: registry name of the task.
    preset: one of `PRESETS`; 'cpu' is the env's own defaults.
    explicit: settings given explicitly (flags), which override the rest.

  Returns:
    The full settings dict.

  Raises:
    ValueError: naming env or preset if unknown, or preset if the env
      does not define it.
  """
  entry = registry.entry(env)
  config_lib.check(preset in PRESETS, 'preset', f'one of {list(PRESETS)}',
                   preset)
  if preset != 'cpu' and preset not in entry.presets:
    raise ValueError(
        f'preset={preset} is not defined for env={env}; it has '
        f"{', '.join(['cpu', *entry.presets])}.")
  settings = dict(DEFAULTS, **entry.defaults)
  settings.update(entry.presets.get(preset, {}))
  settings.update(explicit)
  settings['env'] = env
  return settings


def algorithm_name(settings: Dict[str, Any]) -> str:
  """The algorithm a run trains, as reports name it.

  'gumbel' or 'ppo' for those baselines; for SPO runs 'trt_smc' if any
  TRT-SMC switch is on, else 'spo'.
  """
  if settings['algorithm'] != 'spo':
    return settings['algorithm']
  trt_smc = (settings['proposal_alpha'] > 0 or settings['revived_resampling']
             or settings['policy_inference'] != 'dirac'
             or settings['search_value_weight'] > 0)
  return 'trt_smc' if trt_smc else 'spo'


def check_settings(settings: Dict[str, Any]) -> None:
  """Checks what needs nothing built (see `builders.validate_settings`).

  Raises:
    ValueError: naming the setting and its allowed range.
  """
  unknown = sorted(set(settings) - set(DEFAULTS))
  if unknown:
    raise ValueError(f'Unknown settings: {unknown}.')
  check = config_lib.check
  registry.entry(settings['env'])
  check(settings['algorithm'] in ALGORITHMS, 'algorithm',
        f'one of {list(ALGORITHMS)}', settings['algorithm'])
  check(settings['network'] in ('residual', 'mlp'), 'network',
        "one of ['mlp', 'residual']", settings['network'])
  for name in ('num_envs', 'rollout_length', 'total_env_steps', 'batch_size',
               'num_epochs', 'eval_episodes', 'eval_interval',
               'checkpoint_interval', 'log_interval', 'time_limit',
               'num_threads'):
    check(settings[name] >= 1, name, '>= 1', settings[name])
  check(settings['sequence_length'] >= 2, 'sequence_length', '>= 2',
        settings['sequence_length'])
  if settings['algorithm'] == 'ppo':
    # An iteration trains on its own rollout; the replay settings are unused.
    check(settings['rollout_length'] >= 2, 'rollout_length',
          '>= 2 with algorithm=ppo (the last step of a rollout only '
          'bootstraps the values)', settings['rollout_length'])
    check(settings['strategy'] == 'default', 'strategy',
          "'default' with algorithm=ppo", settings['strategy'])
  else:
    check(settings['replay_capacity'] >= settings['num_envs'] *
          settings['sequence_length'], 'replay_capacity',
          '>= num_envs * sequence_length', settings['replay_capacity'])
  check(settings['eval_scramble'] >= 0, 'eval_scramble', '>= 0',
        settings['eval_scramble'])
  check(settings['num_levels'] >= 1, 'num_levels', '>= 1',
        settings['num_levels'])
  for name in ('learning_rate', 'dual_learning_rate'):
    check(settings[name] > 0, name, '> 0', settings[name])
  validate_device_settings(settings)


def validate_device_settings(settings: Dict[str, Any]) -> None:
  """Checks strategy, num_replicas and their shares of the work.

  Raises:
    ValueError: naming the setting and its allowed range.
  """
  check = config_lib.check
  check(settings['strategy'] in STRATEGIES, 'strategy',
        f'one of {list(STRATEGIES)}', settings['strategy'])
  replicas = settings['num_replicas']
  check(replicas >= 1, 'num_replicas', '>= 1', replicas)
  check(replicas == 1 or settings['strategy'] == 'mirrored', 'num_replicas',
        '1 unless strategy=mirrored', replicas)
  for name in ('num_envs', 'batch_size'):
    check(settings[name] % replicas == 0, name,
          f'a multiple of num_replicas={replicas}', settings[name])


def parse_conv_channels(conv_channels: str) -> tuple[int, ...]:
  """Output channels of the conv stages from a comma-separated string.

  Args:
    conv_channels: e.g. '256,256,512,512'; '' for no convolutional torso.

  Returns:
    The channels, a tuple of ints >= 1.

  Raises:
    ValueError: naming `conv_channels` unless it is '' or a
      comma-separated list of integers >= 1.
  """
  if not conv_channels.strip():
    return ()
  try:
    channels = tuple(int(c) for c in conv_channels.split(','))
  except ValueError:
    channels = ()
  if not channels or min(channels) < 1:
    raise ValueError('conv_channels must be empty or a comma-separated '
                     f'list of integers >= 1, got {conv_channels!r}.')
  return channels

