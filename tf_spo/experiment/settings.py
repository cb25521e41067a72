"""Run settings: the typed config, its flat dict, presets and checks.

A run's settings are the fields of `ExperimentConfig`'s parts: this module's
`RunConfig`, `ScheduleConfig`, `NetworkConfig`, `EvalSearchConfig`,
`TaskConfig`, `DeviceConfig`, and the algorithm's own `SearchConfig`,
`GumbelConfig`, `SpoConfig` and `PpoConfig`. Those dataclasses are the one
source of every default, range check and help text (their docstrings'
`Attributes:`): the flat dict of settings (`SETTINGS`: name, default, help) is
generated from them, `launch.train` makes a flag of each, and the dict is
written to `<root_dir>/config.json` so that evaluation, export and a resumed
run rebuild exactly the same agent. The checks here need nothing built;
`algorithms.validate_settings` adds the algorithm's own and those that build
the model and network.
"""

import dataclasses
import inspect
import re
from typing import Any, Dict

from environments import registry
from tf_spo import config as config_lib
from tf_spo import ppo as ppo_lib
from tf_spo.experiment import presets

check = config_lib.check

# 'cpu' is every env's own preset; the others exist for the envs whose
# entry of `presets.NAMED` defines them.
PRESETS = ('cpu', 'trial', 'cpu_30min', 'paper', 'trt_smc', 'ppo')
NETWORKS = ('residual', 'mlp')
STRATEGIES = ('default', 'mirrored', 'tpu')


@dataclasses.dataclass(frozen=True)
class RunConfig:
  """What a run trains, and how it collects and learns.

  Attributes:
    env: the task, a name of the registry (environments/registry.py).
    seed: seed of the network, environments and search.
    algorithm: spo (the SMC search; TRT-SMC with its switches on), gumbel
      (Gumbel MuZero search on the true model, same M-step and value
      targets) or ppo (TF-Agents PPOClipAgent, no search); the registry is
      `algorithms.ALGORITHMS`.
    num_envs: environments stepped in parallel (>= 1).
    rollout_length: environment steps per environment per iteration (>= 1).
    learning_rate: Adam learning rate of the network (> 0).
    dual_learning_rate: Adam learning rate of eta and alpha (> 0).
    batch_size: sequences per gradient step (>= 1).
    sequence_length: steps per replayed sequence (>= 2).
    num_epochs: gradient steps per iteration (>= 1).
    replay_capacity: replay buffer capacity in steps.
  """

  env: str = 'rubiks_cube'
  seed: int = 0
  algorithm: str = 'spo'
  num_envs: int = 64
  rollout_length: int = 8
  learning_rate: float = 1e-3
  dual_learning_rate: float = 3e-4
  batch_size: int = 64
  sequence_length: int = 17
  num_epochs: int = 8
  replay_capacity: int = 65_536

  def __post_init__(self):
    registry.entry(self.env)
    for name in ('num_envs', 'rollout_length', 'batch_size', 'num_epochs'):
      check(getattr(self, name) >= 1, name, '>= 1', getattr(self, name))
    check(self.sequence_length >= 2, 'sequence_length', '>= 2',
          self.sequence_length)
    for name in ('learning_rate', 'dual_learning_rate'):
      check(getattr(self, name) > 0, name, '> 0', getattr(self, name))


@dataclasses.dataclass(frozen=True)
class ScheduleConfig:
  """How long a run trains and how often it reports; may change on resume.

  Attributes:
    total_env_steps: environment steps to train for (>= 1).
    eval_episodes: held-out episodes per evaluation (>= 1).
    eval_interval: evaluate every this many environment steps (>= 1).
    checkpoint_interval: checkpoint every this many environment steps (>= 1).
    log_interval: progress line every this many environment steps (>= 1).
  """

  total_env_steps: int = 40_000
  eval_episodes: int = 200
  eval_interval: int = 10_000
  checkpoint_interval: int = 10_000
  log_interval: int = 2_000

  def __post_init__(self):
    for field in dataclasses.fields(self):
      value = getattr(self, field.name)
      check(value >= 1, field.name, '>= 1', value)


@dataclasses.dataclass(frozen=True)
class NetworkConfig:
  """The policy/value network (checked when `builders.network` builds it).

  Attributes:
    network: residual (a shared residual torso with policy and value heads)
      or mlp (separate actor and critic MLPs, SPO appendix A.3).
    mlp_units: network=mlp: width of every actor/critic layer.
    mlp_layers: network=mlp: hidden layers of the actor and of the critic.
    normalize_observations: normalise network inputs by their running mean
      and std (updated in training; checkpointed and exported with the
      network). Needs network=mlp.
    conv_channels: network=residual on grid observations: comma-separated
      output channels of the convolutional ResNet stages before the torso,
      e.g. 256,256,512,512; empty for none.
    conv_residual_blocks: residual conv blocks per conv stage.
    torso_units: width of the residual torso.
    num_residual_blocks: residual blocks in the torso.
    head_units: width of the hidden layer of each head.
    initial_scale: continuous actions: initial standard deviation of the
      pre-squash Gaussian policy.
    loc_bound: continuous actions: b > 0 keeps the pre-squash policy mean in
      (-b, b) (b * tanh(x / b)); 0 leaves it unbounded.
  """

  network: str = 'residual'
  mlp_units: int = 256
  mlp_layers: int = 4
  normalize_observations: bool = False
  conv_channels: str = ''
  conv_residual_blocks: int = 2
  torso_units: int = 256
  num_residual_blocks: int = 2
  head_units: int = 256
  initial_scale: float = 1.0
  loc_bound: float = 0.0

  def __post_init__(self):
    check(self.network in NETWORKS, 'network', f'one of {sorted(NETWORKS)}',
          self.network)


@dataclasses.dataclass(frozen=True)
class TaskConfig:
  """Settings of the tasks' models (each task reads its own).

  Attributes:
    min_scramble: rubiks_cube: fewest scramble moves of training cubes.
    max_scramble: rubiks_cube: most scramble moves of training cubes.
    levels_dir: sokoban: Boxoban-format level file or directory to train on
      (e.g. boxoban-levels/unfiltered/train); empty: built-in generated
      levels.
    num_levels: sokoban: generated training levels when levels_dir is empty
      (>= 1).
    eval_levels_dir: sokoban: level file or directory whose every level is
      an evaluation episode, in order; empty: 1000 held-out generated levels.
    time_limit: episode step limit (per env default; >= 1).
    eval_scramble: rubiks_cube: scramble moves of the held-out evaluation
      cubes (>= 0).
    num_threads: MuJoCo tasks: threads stepping the simulator (>= 1).
  """

  min_scramble: int = 1
  max_scramble: int = 7
  levels_dir: str = ''
  num_levels: int = 10_000
  eval_levels_dir: str = ''
  time_limit: int = 20
  eval_scramble: int = 7
  num_threads: int = 1

  def __post_init__(self):
    for name in ('num_levels', 'time_limit', 'num_threads'):
      check(getattr(self, name) >= 1, name, '>= 1', getattr(self, name))
    check(self.eval_scramble >= 0, 'eval_scramble', '>= 0',
          self.eval_scramble)


@dataclasses.dataclass(frozen=True)
class EvalSearchConfig:
  """The evaluation policy's SMC search where it differs from collection's.

  The greedy search policy that evaluations play and `policy/search`
  exports runs the collect search's `SearchConfig` with these replaced
  (`SpoAgent`'s `eval_search_config`); training never reads them.

  Attributes:
    eval_num_particles: algorithm=spo: particles of the evaluation search
      (>= 0); 0: num_particles.
    eval_depth: algorithm=spo: depth of the evaluation search (>= 0); 0:
      depth.
    eval_resample_period: algorithm=spo: resample period of the evaluation
      search (>= 0, at most its depth); 0: resample_period, capped at the
      evaluation search's depth.
  """

  eval_num_particles: int = 0
  eval_depth: int = 0
  eval_resample_period: int = 0

  def __post_init__(self):
    for field in dataclasses.fields(self):
      value = getattr(self, field.name)
      check(value >= 0, field.name, '>= 0', value)

  def search_config(self, search: config_lib.SearchConfig
                    ) -> config_lib.SearchConfig:
    """`search` with the evaluation search's particles, depth and period.

    Raises:
      ValueError: naming eval_resample_period if it exceeds the depth.
    """
    depth = self.eval_depth or search.depth
    period = self.eval_resample_period or min(search.resample_period, depth)
    check(period <= depth, 'eval_resample_period',
          f'<= the evaluation depth {depth}', period)
    # No training target: evaluations never train on it.
    return dataclasses.replace(
        search, num_particles=self.eval_num_particles or search.num_particles,
        depth=depth, resample_period=period, policy_target_horizon=0)

  @property
  def is_default(self) -> bool:
    """Whether the evaluation search is the collect search."""
    return self == EvalSearchConfig()


@dataclasses.dataclass(frozen=True)
class DeviceConfig:
  """Where a run trains; may change on resume (a checkpoint holds one copy).

  Attributes:
    strategy: tf.distribute strategy: default (one device), mirrored
      (num_replicas replicas on the local GPUs, or on as many logical CPU
      devices without a GPU) or tpu (TPUStrategy on tpu). Each replica
      searches and trains on its share of the environments and of the batch.
    num_replicas: strategy=mirrored: replicas (local GPUs or logical CPU
      devices); must divide num_envs and batch_size.
    tpu: strategy=tpu: address of the TPU (TPUClusterResolver); empty for the
      TPU of this host.
  """

  strategy: str = 'default'
  num_replicas: int = 1
  tpu: str = ''

  def __post_init__(self):
    check(self.strategy in STRATEGIES, 'strategy',
          f'one of {list(STRATEGIES)}', self.strategy)
    check(self.num_replicas >= 1, 'num_replicas', '>= 1', self.num_replicas)
    check(self.num_replicas == 1 or self.strategy == 'mirrored',
          'num_replicas', '1 unless strategy=mirrored', self.num_replicas)


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
  """A run's settings, typed: one frozen config per part.

  The parts' fields are the settings (`SETTINGS`), each named once: a name
  that several parts share (`discount`, `gae_lambda`, `num_epochs`,
  `value_loss_coef`, `max_grad_norm`) holds one value in all of them. The
  flat dict (`settings()`) is what config.json holds and what the flags of
  `launch.train` set.
  """

  run: RunConfig = dataclasses.field(default_factory=RunConfig)
  schedule: ScheduleConfig = dataclasses.field(default_factory=ScheduleConfig)
  network: NetworkConfig = dataclasses.field(default_factory=NetworkConfig)
  search: config_lib.SearchConfig = dataclasses.field(
      default_factory=config_lib.SearchConfig)
  gumbel: config_lib.GumbelConfig = dataclasses.field(
      default_factory=config_lib.GumbelConfig)
  spo: config_lib.SpoConfig = dataclasses.field(
      default_factory=config_lib.SpoConfig)
  ppo: ppo_lib.PpoConfig = dataclasses.field(default_factory=ppo_lib.PpoConfig)
  eval_search: EvalSearchConfig = dataclasses.field(
      default_factory=EvalSearchConfig)
  task: TaskConfig = dataclasses.field(default_factory=TaskConfig)
  devices: DeviceConfig = dataclasses.field(default_factory=DeviceConfig)

  def __post_init__(self):
    values = {}
    for part in _parts(self):
      for field in dataclasses.fields(part):
        value = getattr(part, field.name)
        check(values.setdefault(field.name, value) == value, field.name,
              f'the same in every part that has it ({values[field.name]!r} '
              f'in one)', value)

  @classmethod
  def from_settings(cls, settings: Dict[str, Any]) -> 'ExperimentConfig':
    """The typed config of a full settings dict, each part checked.

    Raises:
      ValueError: naming an unknown setting, or a setting and its range.
    """
    unknown = sorted(set(settings) - set(DEFAULTS))
    if unknown:
      raise ValueError(f'Unknown settings: {unknown}.')
    return cls(**{field.name: part(field.type, settings)
                  for field in dataclasses.fields(cls)})

  def settings(self) -> Dict[str, Any]:
    """The flat settings dict."""
    flat = {}
    for part in _parts(self):
      flat.update(dataclasses.asdict(part))
    return flat


def part(cls, settings: Dict[str, Any]):
  """The `cls` part (a config dataclass) of a flat settings dict."""
  return cls(**{name: settings[name] for name in cls.__dataclass_fields__})


def _parts(config: ExperimentConfig) -> list:
  return [getattr(config, field.name) for field in dataclasses.fields(config)]


def field_help(cls) -> Dict[str, str]:
  """The help text of each field of a config class, from its docstring.

  Args:
    cls: a dataclass whose docstring has an `Attributes:` section with a
      `name: text` entry per field (continuation lines indented further).

  Raises:
    ValueError: naming the class if a field has no entry.
  """
  lines = inspect.getdoc(cls).split('\n')
  helps, name = {}, None
  for line in lines[lines.index('Attributes:') + 1:]:
    entry = re.match(r'  (\w+): (.*)', line)
    if entry:
      name = entry.group(1)
      helps[name] = entry.group(2)
    elif line.startswith('    ') and name:
      helps[name] += ' ' + line.strip()
    else:
      break
  missing = [f.name for f in dataclasses.fields(cls) if f.name not in helps]
  if missing:
    raise ValueError(f'{cls.__name__} documents no {missing}.')
  return helps


# What a part's help says first, where its fields apply to one algorithm.
_CONTEXT = {config_lib.GumbelConfig: 'algorithm=gumbel: ',
            ppo_lib.PpoConfig: 'algorithm=ppo: '}


def _settings_table() -> tuple:
  table, seen = [], set()
  for field in dataclasses.fields(ExperimentConfig):
    helps = field_help(field.type)
    for part_field in dataclasses.fields(field.type):
      if part_field.name not in seen:
        seen.add(part_field.name)
        table.append((part_field.name, part_field.default,
                      _CONTEXT.get(field.type, '') + helps[part_field.name]))
  return tuple(table)


# (name, default, help) of every setting, from the parts' fields and
# docstrings. Defaults are the CPU preset: a run that finishes in minutes on a
# 2-core laptop CPU. Each env of the registry overrides some
# (environments/registry.py), and the presets go on top.
SETTINGS = _settings_table()
DEFAULTS = {name: default for name, default, _ in SETTINGS}


def _names(cls, *others) -> tuple:
  """The fields of `cls` that none of `others` has."""
  taken = {f.name for other in others for f in dataclasses.fields(other)}
  return tuple(f.name for f in dataclasses.fields(cls)
               if f.name not in taken)


# Settings that only say how long or how often: they may change on resume.
SCHEDULE_SETTINGS = _names(ScheduleConfig)
# Settings that say on which devices: they may change on resume too (the
# checkpoint holds one copy of every variable).
DEVICE_SETTINGS = _names(DeviceConfig)
# Settings of algorithm=ppo alone (runs from before them read the defaults).
PPO_SETTINGS = _names(ppo_lib.PpoConfig, RunConfig, config_lib.SpoConfig)
# The Gumbel MuZero settings (`GumbelConfig`'s own fields).
GUMBEL_SETTINGS = _names(config_lib.GumbelConfig, config_lib.SearchConfig)
# Settings added since runs were first written; a run from before one of
# them trained with its default.
ADDED_SETTINGS = ('eta_update', 'root_sampling', 'gaussian_mean_target',
                  'loc_bound', 'gaussian_policy_target', 'critic_atoms',
                  'epsilon_critic', 'network_collect_fraction',
                  'policy_target_horizon',
                  *_names(EvalSearchConfig))


def resolve_settings(env: str, preset: str,
                     explicit: Dict[str, Any]) -> Dict[str, Any]:
  """Settings of a run: defaults, the task's, its presets, then `explicit`.

  The global defaults, the task's own settings (the registry's), the env's
  'cpu' preset, the named `preset` (`presets.py`), then `explicit`.

  Args:
    env: registry name of the task.
    preset: one of `PRESETS`; 'cpu' is the env's own preset alone.
    explicit: settings given explicitly (flags), which override the rest.

  Returns:
    The full settings dict.

  Raises:
    ValueError: naming env or preset if unknown, preset if the env does not
      define it, or an explicit setting that only other tasks read.
  """
  entry = registry.entry(env)
  registry.check_reads(env, explicit)
  check(preset in PRESETS, 'preset', f'one of {list(PRESETS)}', preset)
  named = presets.NAMED[env]
  if preset != 'cpu' and preset not in named:
    raise ValueError(
        f'preset={preset} is not defined for env={env}; it has '
        f"{', '.join(['cpu', *named])}.")
  settings = dict(DEFAULTS, **entry.settings)
  settings.update(presets.CPU[env])
  settings.update(named.get(preset, {}))
  settings.update(explicit)
  settings['env'] = env
  return settings


def check_settings(settings: Dict[str, Any]) -> ExperimentConfig:
  """Checks what needs nothing built (see `algorithms.validate_settings`).

  Returns:
    The typed config of the settings.

  Raises:
    ValueError: naming the setting and its allowed range.
  """
  config = ExperimentConfig.from_settings(settings)
  validate_device_settings(settings)
  return config


def validate_device_settings(settings: Dict[str, Any]) -> None:
  """Checks strategy, num_replicas and their shares of the work.

  Raises:
    ValueError: naming the setting and its allowed range.
  """
  devices = DeviceConfig(**{name: settings[name] for name in DEVICE_SETTINGS})
  replicas = devices.num_replicas
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

