"""What the launch scripts share: settings, runs, evaluation and export.

Run settings, building and restoring a run, evaluating a policy and
exporting SavedModels.

A run is described by a flat dict of settings whose keys are the flag names of
`launch/train.py`; it is written to `<root_dir>/config.json` so that
`evaluate`, `export` and a resumed `train` rebuild exactly the same agent.
"""

import contextlib
import datetime as dt
import json
import os
import re
import shlex
import subprocess
import sys
import time
from typing import Any, Callable, Dict, NamedTuple, Optional, Union

from absl import flags
from absl import logging
import numpy as np
import tensorflow as tf
from tf_agents.environments import tf_environment
from tf_agents.policies import policy_saver
from tf_agents.policies import tf_policy
from tf_agents.trajectories import time_step as ts
from tf_agents.utils import common

from environments import model as model_lib
from environments import registry
from tf_spo import agent as agent_lib
from tf_spo import config as config_lib
from tf_spo import networks
from tf_spo import policy as policy_lib
from tf_spo import ppo
from tf_spo import replay

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
     'min(N, A) distinct actions; needs --policy_inference='
     'message_passing).'),
    ('num_simulations', 64, '--algorithm=gumbel: simulations (model steps) '
     'per search; 64 matches 16 particles x depth 4.'),
    ('max_num_considered_actions', 16, '--algorithm=gumbel: actions sampled '
     'at the root (Gumbel-top-k) for Sequential Halving.'),
    ('num_sampled_actions', 16, '--algorithm=gumbel, continuous actions: '
     'actions sampled from pi at each node (its edges).'),
    ('gumbel_scale', 1.0, '--algorithm=gumbel: scale of the root Gumbel '
     'noise of the collect policy.'),
    ('c_visit', 50.0, '--algorithm=gumbel: visit offset of sigma(q).'),
    ('c_scale', 0.1, '--algorithm=gumbel: scale of sigma(q).'),
    ('search_value_weight', 0.0, 'TRT-SMC: sigma in [0, 1], weight of the '
     'Retrace search value in the TD(lambda) bootstrap; 0 is SPO.'),
    ('network', 'residual', 'Network: residual (a shared residual torso '
     'with policy and value heads) or mlp (separate actor and critic '
     'MLPs, SPO appendix A.3).'),
    ('mlp_units', 256, '--network=mlp: width of every actor/critic layer.'),
    ('mlp_layers', 4, '--network=mlp: hidden layers of the actor and of '
     'the critic.'),
    ('normalize_observations', False, 'Normalise network inputs by their '
     'running mean and std (updated in training; checkpointed and '
     'exported with the network). Needs --network=mlp.'),
    ('conv_channels', '', '--network=residual on grid observations: '
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
     'paper: --dual_learning_rate steps from --initial_eta) or solve (the '
     'exact minimiser of the dual on each batch, so the E-step KL meets '
     '--epsilon_eta from the first update).'),
    ('gaussian_mean_target', 'weighted', 'Continuous actions: what the '
     'M-step fits the policy mean to: weighted (the paper: every atom of '
     'q-hat by its weight) or greedy (the atom of highest weight).'),
    ('value_loss_coef', 0.5, 'Weight of the value loss.'),
    ('ppo_clip_ratio', 0.2, '--algorithm=ppo: epsilon in (0, 1) of the '
     'clipped importance ratio of the surrogate objective.'),
    ('ppo_entropy_coef', 0.01, '--algorithm=ppo: weight of the entropy '
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
     '--levels_dir is empty.'),
    ('eval_levels_dir', '', 'sokoban: level file or directory whose every '
     'level is an evaluation episode, in order; empty: 1000 held-out '
     'generated levels.'),
    ('time_limit', 20, 'Episode step limit (per env default).'),
    ('eval_scramble', 7, 'rubiks_cube: scramble moves of the held-out '
     'evaluation cubes.'),
    ('num_threads', 1, 'MuJoCo tasks: threads stepping the simulator.'),
    ('strategy', 'default', 'tf.distribute strategy of launch.train: '
     'default (one device), mirrored (--num_replicas replicas on the local '
     'GPUs, or on as many logical CPU devices without a GPU) or tpu '
     '(TPUStrategy on --tpu). Each replica searches and trains on its '
     'share of the environments and of the batch.'),
    ('num_replicas', 1, '--strategy=mirrored: replicas (local GPUs or '
     'logical CPU devices); must divide --num_envs and --batch_size.'),
    ('tpu', '', '--strategy=tpu: address of the TPU (TPUClusterResolver); '
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
# Settings of --algorithm=ppo alone (runs from before them read the defaults).
PPO_SETTINGS = ('ppo_clip_ratio', 'ppo_entropy_coef')
# Settings added since runs were first written; a run from before one of
# them trained with its default.
ADDED_SETTINGS = ('eta_update', 'root_sampling', 'gaussian_mean_target',
                  'loc_bound')
# The Gumbel MuZero settings (`GumbelConfig`'s own fields).
GUMBEL_SETTINGS = ('num_simulations', 'max_num_considered_actions',
                   'num_sampled_actions', 'gumbel_scale', 'c_visit',
                   'c_scale')

CONFIG_FILE = 'config.json'
CHECKPOINT_SUBDIR = 'checkpoints'
EVAL_SEED_OFFSET = 1_000_003
# Evaluation steps per compiled call (progress is printed between calls).
_EVAL_CHUNK_STEPS = 50


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
    ValueError: naming --env or --preset if unknown, or --preset if the env
      does not define it.
  """
  entry = registry.entry(env)
  config_lib.check(preset in PRESETS, 'preset', f'one of {list(PRESETS)}',
                   preset)
  if preset != 'cpu' and preset not in entry.presets:
    raise ValueError(
        f'--preset={preset} is not defined for --env={env}; it has '
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


def validate_settings(settings: Dict[str, Any]) -> None:
  """Checks the settings not covered by the config dataclasses.

  Raises:
    ValueError: naming the flag and its allowed range.
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
          '>= 2 with --algorithm=ppo (the last step of a rollout only '
          'bootstraps the values)', settings['rollout_length'])
    check(settings['strategy'] == 'default', 'strategy',
          "'default' with --algorithm=ppo", settings['strategy'])
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
  search_config(settings)
  spo_config(settings)
  ppo_config(settings)
  model = make_model(settings)
  check(settings['strategy'] != 'tpu' or model.xla_compatible, 'strategy',
        "not 'tpu' for a task whose model runs Python (the MuJoCo simulator)",
        settings['strategy'])
  network(settings, model)


def validate_device_settings(settings: Dict[str, Any]) -> None:
  """Checks --strategy, --num_replicas and their shares of the work.

  Raises:
    ValueError: naming the flag and its allowed range.
  """
  check = config_lib.check
  check(settings['strategy'] in STRATEGIES, 'strategy',
        f'one of {list(STRATEGIES)}', settings['strategy'])
  replicas = settings['num_replicas']
  check(replicas >= 1, 'num_replicas', '>= 1', replicas)
  check(replicas == 1 or settings['strategy'] == 'mirrored', 'num_replicas',
        '1 unless --strategy=mirrored', replicas)
  for name in ('num_envs', 'batch_size'):
    check(settings[name] % replicas == 0, name,
          f'a multiple of --num_replicas={replicas}', settings[name])


def make_strategy(settings: Dict[str, Any]) -> tf.distribute.Strategy:
  """The run's `tf.distribute` strategy (see the --strategy flag).

  `--strategy=mirrored` without a GPU splits the CPU into --num_replicas
  logical devices, which must happen before TensorFlow starts: call this
  first (`launch.train` does). If TensorFlow already runs with enough
  logical CPU devices, those are used.

  Raises:
    ValueError: naming --strategy, --num_replicas or --tpu if the devices
      are not there.
  """
  validate_device_settings(settings)
  if settings['strategy'] == 'default':
    return tf.distribute.get_strategy()
  if settings['strategy'] == 'tpu':
    try:
      resolver = tf.distribute.cluster_resolver.TPUClusterResolver(
          tpu=settings['tpu'])
      tf.config.experimental_connect_to_cluster(resolver)
      tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, tf.errors.OpError) as error:
      raise ValueError(
          f'--strategy=tpu: no TPU at --tpu={settings["tpu"]!r} '
          f'({str(error).splitlines()[0]}).') from error
    return tf.distribute.TPUStrategy(resolver)
  replicas = settings['num_replicas']
  gpus = tf.config.list_physical_devices('GPU')
  if gpus:
    config_lib.check(replicas <= len(gpus), 'num_replicas',
                     f'<= {len(gpus)}, the local GPUs', replicas)
    devices = [f'/gpu:{i}' for i in range(replicas)]
  else:
    cpu = tf.config.list_physical_devices('CPU')[0]
    # Once TensorFlow runs its devices are fixed, and this raises.
    with contextlib.suppress(RuntimeError):
      tf.config.set_logical_device_configuration(
          cpu, [tf.config.LogicalDeviceConfiguration()] * replicas)
    available = len(tf.config.list_logical_devices('CPU'))
    if available < replicas:
      raise ValueError(
          f'--num_replicas={replicas} needs as many logical CPU devices, and '
          f'TensorFlow started with {available}: choose the strategy before '
          'running TensorFlow ops.')
    devices = [f'/cpu:{i}' for i in range(replicas)]
  return tf.distribute.MirroredStrategy(devices)


def parse_conv_channels(conv_channels: str) -> tuple[int, ...]:
  """Output channels of the conv stages from a comma-separated string.

  Args:
    conv_channels: e.g. '256,256,512,512'; '' for no convolutional torso.

  Returns:
    The channels, a tuple of ints >= 1.

  Raises:
    ValueError: naming `--conv_channels` unless it is '' or a
      comma-separated list of integers >= 1.
  """
  if not conv_channels.strip():
    return ()
  try:
    channels = tuple(int(c) for c in conv_channels.split(','))
  except ValueError:
    channels = ()
  if not channels or min(channels) < 1:
    raise ValueError('--conv_channels must be empty or a comma-separated '
                     f'list of integers >= 1, got {conv_channels!r}.')
  return channels


def search_config(settings):
  """The run's `SearchConfig`, or `GumbelConfig` for --algorithm=gumbel."""
  kind = (config_lib.GumbelConfig if settings['algorithm'] == 'gumbel'
          else config_lib.SearchConfig)
  return kind(**{field: settings[field]
                 for field in kind.__dataclass_fields__})


def spo_config(settings) -> config_lib.SpoConfig:
  """The run's `SpoConfig`."""
  return config_lib.SpoConfig(**{
      field: settings[field]
      for field in config_lib.SpoConfig.__dataclass_fields__})


def ppo_config(settings) -> ppo.PpoConfig:
  """The run's `PpoConfig` (--algorithm=ppo)."""
  return ppo.PpoConfig(**{
      field: settings[field]
      for field in ppo.PpoConfig.__dataclass_fields__})


def make_model(settings, evaluation: bool = False
               ) -> model_lib.EnvironmentModel:
  """The run's model; with `evaluation`, that of the held-out episodes."""
  return registry.entry(settings['env']).make_model(settings, evaluation)


def metrics(settings) -> tuple:
  """The evaluation metrics of the run's env, headline first."""
  return registry.entry(settings['env']).metrics


def eval_settings(settings) -> tuple:
  """Names of the settings that define the env's evaluation episodes."""
  return registry.entry(settings['env']).eval_settings


def network(settings, model):
  """The run's network; a Q head when the proposal is twisted.

  `--network=residual` is the shared residual torso of the discrete tasks
  (`PolicyValueNetwork`, with a convolutional ResNet in front for
  `--conv_channels`), `--network=mlp` the separate actor and critic
  MLPs of the MuJoCo tasks (`MlpActorCriticNetwork`), with a running
  observation normaliser if `--normalize_observations`.
  """
  spec = model.network_input_spec()
  q_head = settings['proposal_alpha'] > 0 and settings['algorithm'] == 'spo'
  if settings['network'] == 'mlp':
    if settings['conv_channels']:
      raise ValueError('--conv_channels needs --network=residual.')
    normalizer = (networks.ObservationNormalizer(spec)
                  if settings['normalize_observations'] else None)
    units = (settings['mlp_units'],) * settings['mlp_layers']
    return networks.MlpActorCriticNetwork(
        spec, model.action_spec(), actor_units=units, critic_units=units,
        q_head=q_head, initial_scale=settings['initial_scale'],
        loc_bound=settings['loc_bound'], normalizer=normalizer)
  if settings['normalize_observations']:
    raise ValueError('--normalize_observations needs --network=mlp.')
  return networks.PolicyValueNetwork(
      spec, model.action_spec(),
      torso_units=settings['torso_units'],
      num_residual_blocks=settings['num_residual_blocks'],
      head_units=settings['head_units'],
      q_head=q_head,
      initial_scale=settings['initial_scale'],
      loc_bound=settings['loc_bound'],
      conv_channels=parse_conv_channels(settings['conv_channels']),
      conv_residual_blocks=settings['conv_residual_blocks'])


class Run(NamedTuple):
  """Everything a training run is made of; all state is in `checkpointer`.

  `env` is the real environment: the model itself for pure-TF tasks (its
  state is checkpointed), gymnasium for the MuJoCo tasks (its episodes
  restart when a run resumes). `model` is the planning model. The agent's
  variables live in `strategy`'s scope; the environment, replay buffer and
  counters outside it.
  """
  settings: Dict[str, Any]
  root_dir: str
  env: tf_environment.TFEnvironment
  agent: agent_lib.SpoAgent
  replay_buffer: replay.StatelessUniformReplayBuffer
  env_steps: tf.Variable
  wall_clock: tf.Variable
  checkpointer: common.Checkpointer
  model: model_lib.EnvironmentModel
  strategy: tf.distribute.Strategy


def set_aside_unreadable_checkpoints(checkpoint_dir: str) -> None:
  """Makes the newest fully readable checkpoint the latest one.

  A run killed while saving, or a damaged disk, can leave a latest checkpoint
  that does not read back. Every tensor of the latest checkpoint is read
  (checksums included); if that fails, the failure is reported, the
  checkpoint's files get an `.unreadable` suffix, and the previous one is
  tried.

  Args:
    checkpoint_dir: the run's checkpoint directory (may not exist yet).

  Raises:
    ValueError: naming the directory if it has checkpoints but none reads.
  """
  state = tf.train.get_checkpoint_state(checkpoint_dir)
  if state is None:
    return
  paths = list(state.all_model_checkpoint_paths)
  while paths:
    try:
      reader = tf.train.load_checkpoint(paths[-1])
      for name in reader.get_variable_to_shape_map():
        reader.get_tensor(name)
      break
    except (tf.errors.OpError, ValueError) as error:
      print(f'[checkpoint] {paths[-1]} is unreadable '
            f'({type(error).__name__}: {str(error).splitlines()[0]}); '
            'using the previous checkpoint.', flush=True)
      for path in tf.io.gfile.glob(paths.pop() + '.*'):
        tf.io.gfile.rename(path, path + '.unreadable', overwrite=True)
  if not paths:
    raise ValueError(f'{checkpoint_dir} holds no readable checkpoint; move it '
                     'away to start the run over.')
  tf.compat.v1.train.update_checkpoint_state(
      checkpoint_dir, paths[-1], all_model_checkpoint_paths=paths)


def make_agent(settings: Dict[str, Any], model, time_step_spec, action_spec,
               seed: Optional[int] = None,
               train_step_counter: Optional[tf.Variable] = None
               ) -> Union[agent_lib.SpoAgent, ppo.PpoAgent]:
  """The run's agent on the real environment's specs.

  A `SpoAgent`, or with `--algorithm=ppo` a `ppo.PpoAgent` (`ppo_agent`).

  Args:
    settings: run settings.
    model: the planning model.
    time_step_spec: `TimeStep` spec of the real environment (tensor specs).
    action_spec: its action spec.
    seed: seed of the policies' random generators (default the run's seed;
      each actor of a distributed run passes its own).
    train_step_counter: the step counter variable (default the agent's own).
  """
  if settings['algorithm'] == 'ppo':
    return ppo_agent(settings, model, time_step_spec, action_spec, seed,
                     train_step_counter)
  return agent_lib.SpoAgent(
      time_step_spec, action_spec, network(settings, model), model,
      search_config=search_config(settings), config=spo_config(settings),
      optimizer=tf.keras.optimizers.Adam(settings['learning_rate']),
      dual_optimizer=tf.keras.optimizers.Adam(settings['dual_learning_rate']),
      seed=settings['seed'] if seed is None else seed, debug_summaries=True,
      train_step_counter=train_step_counter)


def ppo_agent(settings: Dict[str, Any], model, time_step_spec, action_spec,
              seed: Optional[int] = None,
              train_step_counter: Optional[tf.Variable] = None
              ) -> ppo.PpoAgent:
  """The run's `PpoAgent`: TF-Agents' PPOClipAgent, no search.

  Its actor and critic are separate networks of the sizes of the run's
  `network`, as far as TF-Agents' `ActorDistributionNetwork` and
  `ValueNetwork` allow: `--network=mlp` gives each `--mlp_layers` SiLU layers
  of `--mlp_units` (observations normalised with
  `--normalize_observations`); `--network=residual` gives each
  `--num_residual_blocks` + 1 ReLU layers of `--torso_units` and one of
  `--head_units`, without skip connections, after one 3x3 'valid'
  convolution per `--conv_channels` stage (`--conv_residual_blocks` does not
  apply). Continuous actions: a Gaussian with tanh-squashed mean and a
  state-independent standard deviation starting at `--initial_scale`.
  `--learning_rate`, `--discount`, `--gae_lambda`, `--num_epochs` (full-batch
  epochs per rollout), `--value_loss_coef`, `--max_grad_norm` (over both
  networks' gradients together), `--ppo_clip_ratio` and
  `--ppo_entropy_coef` apply; the search and SPO settings do not.

  Args:
    settings: run settings.
    model: the planning model (only its specs are used).
    time_step_spec: `TimeStep` spec of the real environment.
    action_spec: its action spec.
    seed: seed of the collect policy's random generator (default the run's
      seed).
    train_step_counter: the step counter variable (default the agent's own).
  """
  if time_step_spec.observation != model.observation_spec():
    raise ValueError(
        f'time_step_spec.observation {time_step_spec.observation} does not '
        f'match the model observation_spec {model.observation_spec()}.')
  if settings['network'] == 'mlp':
    layers = dict(fc_layer_params=(settings['mlp_units'],) *
                  settings['mlp_layers'],
                  activation_fn=tf.keras.activations.swish)
  else:
    channels = parse_conv_channels(settings['conv_channels'])
    layers = dict(
        fc_layer_params=((settings['torso_units'],) *
                         (settings['num_residual_blocks'] + 1) +
                         (settings['head_units'],)),
        conv_layer_params=[(c, 3, 1) for c in channels] or None,
        activation_fn=tf.keras.activations.relu)
  return ppo.PpoAgent(
      time_step_spec, action_spec, **layers,
      initial_scale=settings['initial_scale'],
      normalize_observations=settings['normalize_observations'],
      config=ppo_config(settings),
      optimizer=tf.keras.optimizers.Adam(settings['learning_rate']),
      seed=settings['seed'] if seed is None else seed,
      train_step_counter=train_step_counter)


def replay_length(settings: Dict[str, Any]) -> int:
  """Steps per environment the run's replay buffer keeps.

  PPO keeps exactly one rollout, the one its next train step learns from.
  """
  if settings['algorithm'] == 'ppo':
    return settings['rollout_length']
  return settings['replay_capacity'] // settings['num_envs']


def build_run(settings: Dict[str, Any], root_dir: str,
              strategy: Optional[tf.distribute.Strategy] = None) -> Run:
  """Builds the environment, agent, replay buffer and checkpointer of a run.

  Restores the newest readable checkpoint in `<root_dir>/checkpoints`, if
  any (see `set_aside_unreadable_checkpoints`).

  Args:
    settings: run settings.
    root_dir: run directory.
    strategy: `tf.distribute` strategy whose scope holds the agent (see
      `make_strategy`); default: the current one, no distribution. Evaluation
      and export use the default whatever the run trained with.
  """
  validate_settings(settings)
  # Python, NumPy and TF seeds: Keras draws unseeded initialisers from
  # Python's random module.
  tf.keras.utils.set_random_seed(settings['seed'])
  model = make_model(settings)
  env = registry.entry(settings['env']).make_env(
      model, settings['num_envs'], settings['seed'])
  strategy = strategy or tf.distribute.get_strategy()
  with strategy.scope():
    agent = make_agent(settings, model, env.time_step_spec(),
                       env.action_spec())
  replay_buffer = replay.StatelessUniformReplayBuffer(
      agent.collect_data_spec, batch_size=settings['num_envs'],
      max_length=replay_length(settings), seed=settings['seed'])
  env_steps = tf.Variable(0, dtype=tf.int64, name='env_steps')
  wall_clock = tf.Variable(0.0, dtype=tf.float64, name='wall_clock')
  checkpoint_dir = os.path.join(root_dir, CHECKPOINT_SUBDIR)
  set_aside_unreadable_checkpoints(checkpoint_dir)
  checkpointer = common.Checkpointer(
      checkpoint_dir, max_to_keep=2, agent=agent,
      replay_buffer=replay_buffer, env_steps=env_steps,
      wall_clock=wall_clock,
      **({'env': env} if isinstance(env, tf.Module) else {}))
  # Optimizer slots are restored when first created; evaluation and export
  # never create them, so unmatched checkpoint values are expected.
  checkpointer.initialize_or_restore().expect_partial()
  return Run(settings, root_dir, env, agent, replay_buffer, env_steps,
             wall_clock, checkpointer, model, strategy)


def flag_wording(error: BaseException, names=None) -> str:
  """`error`'s message worded for the command line.

  Library errors name the argument (`time_limit must be >= 1, got 0.`); a
  flag's name where it starts a clause (before ` must`, `=`, `:`, ` >` or
  ` needs`) and outside a `[...]` range becomes the flag:
  `--time_limit must be >= 1, got 0.`

  Args:
    error: the exception.
    names: the flag names; by default every flag defined.

  Returns:
    The message.
  """
  names = sorted(flags.FLAGS if names is None else names, key=len,
                 reverse=True)
  if not names:
    return str(error)
  pattern = re.compile(r'(?<![\w`.=-])(' + '|'.join(map(re.escape, names)) +
                       r')(?= must\b|=|:| >| needs\b)')
  message = str(error)

  def as_flag(match):
    before = message[:match.start()]
    in_range = before.count('[') > before.count(']')
    return match.group(1) if in_range else f'--{match.group(1)}'

  return pattern.sub(as_flag, message)


class PathFlagError(FileNotFoundError):
  """A path flag that names no run or no SavedModel; the message names it."""


def exit_on_path_errors(main: Callable[[Any], None]) -> Callable[[Any], None]:
  """Wraps an absl `main`: a `PathFlagError` exits with its one line."""

  def checked_main(argv):
    try:
      main(argv)
    except PathFlagError as error:
      raise SystemExit(f'error: {error}') from None

  return checked_main


def check_saved_model(path: str, flag: str = 'saved_model') -> None:
  """Raises PathFlagError unless `path` is a SavedModel directory."""
  if not tf.io.gfile.exists(path):
    raise PathFlagError(f'--{flag} {path} does not exist.')
  if not tf.saved_model.contains_saved_model(path):
    raise PathFlagError(f'--{flag} {path} is not a SavedModel directory (no '
                        'saved_model.pb); export one with launch.export.')


def read_settings(root_dir: str) -> Dict[str, Any]:
  """Settings of the run in `root_dir`, from its config.json."""
  if not tf.io.gfile.isdir(root_dir):
    raise PathFlagError(f'--root_dir {root_dir} is not a directory.')
  path = os.path.join(root_dir, CONFIG_FILE)
  if not tf.io.gfile.exists(path):
    raise PathFlagError(f'--root_dir {root_dir} has no {CONFIG_FILE}: '
                        'is it the root_dir of a launch.train run?')
  with tf.io.gfile.GFile(path) as f:
    settings = json.load(f)
  # Runs from before the device, algorithm and baseline settings trained SPO
  # on the default strategy: those settings' defaults describe them.
  return {**{name: DEFAULTS[name] for name in
             DEVICE_SETTINGS + ('algorithm',) + PPO_SETTINGS +
             GUMBEL_SETTINGS + ADDED_SETTINGS}, **settings}


def write_settings(root_dir: str, settings: Dict[str, Any]) -> None:
  """Writes settings to config.json, refusing an incompatible existing run.

  Raises:
    ValueError: if `root_dir` holds a run whose settings differ in anything
      but the schedule (run length and intervals), naming the flags.
  """
  path = os.path.join(root_dir, CONFIG_FILE)
  if tf.io.gfile.exists(path):
    previous = read_settings(root_dir)
    differing = [
        f'--{name}={previous.get(name)!r} (now {settings[name]!r})'
        for name in sorted(settings)
        if name not in SCHEDULE_SETTINGS + DEVICE_SETTINGS and
        previous.get(name) != settings[name]
    ]
    if differing:
      raise ValueError(
          f'--root_dir {root_dir} holds a checkpoint of an incompatible '
          f'config: {", ".join(differing)}. Use the same flags to resume, or '
          'a new --root_dir.')
  tf.io.gfile.makedirs(root_dir)
  with tf.io.gfile.GFile(path, 'w') as f:
    json.dump(settings, f, indent=2, sort_keys=True)


PROVENANCE_FILE = 'provenance.jsonl'


def source_commit() -> Optional[str]:
  """The git commit of this source tree ('+dirty' if changed), or None."""
  source = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  try:
    commit = subprocess.run(
        ['git', '-C', source, 'rev-parse', '--short', 'HEAD'],
        capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    dirty = subprocess.run(
        ['git', '-C', source, 'status', '--porcelain', '--untracked-files=no'],
        capture_output=True, text=True, timeout=10, check=True).stdout.strip()
  except (OSError, subprocess.SubprocessError):
    return None
  return commit + ('+dirty' if dirty else '')


def _other_jobs() -> list:
  """Command lines of the other Python processes on this machine."""
  jobs = []
  for pid in os.listdir('/proc') if os.path.isdir('/proc') else ():
    if not pid.isdigit() or int(pid) == os.getpid():
      continue
    try:
      with open(f'/proc/{pid}/cmdline', 'rb') as f:
        args = f.read().split(b'\0')
    except OSError:
      continue
    command = ' '.join(a.decode(errors='replace') for a in args if a)
    if 'python' in os.path.basename(args[0].decode(errors='replace')):
      jobs.append(command[:300])
  return jobs


def record_provenance(root_dir: str, resumed_from: Optional[int]) -> None:
  """Appends where this start of a run came from to provenance.jsonl.

  One JSON line per start (a resume adds one): time, source commit, command
  line, the env step it resumed from (None for a fresh start), the machine's
  cores and load, and the other Python processes running beside it.
  """
  record = {
      'started': dt.datetime.now(dt.UTC).isoformat(
          timespec='seconds'),
      'commit': source_commit(),
      'argv': sys.argv,
      'resumed_from_env_steps': resumed_from,
      'cpu_count': os.cpu_count(),
      'load_average': (list(os.getloadavg())
                       if hasattr(os, 'getloadavg') else None),
      'other_jobs': _other_jobs(),
  }
  with tf.io.gfile.GFile(os.path.join(root_dir, PROVENANCE_FILE), 'a') as f:
    f.write(json.dumps(record) + '\n')


def command_line(module: str) -> str:
  """This process's command as `python -m <module> <its flags, quoted>`."""
  return f'python -m {module} ' + ' '.join(
      shlex.quote(arg) for arg in sys.argv[1:])


def page_header(title: str, command: str,
                generated: str = 'Generated by') -> list:
  """Markdown lines opening a results page: title, command, provenance."""
  return [f'# {title}', '', generated, '', f'    {command}', '',
          f'on {dt.date.today().isoformat()} by commit {source_commit()}, '
          f'on a machine with {os.cpu_count()} CPU cores.', '']


def write_page(path: str, text: str) -> None:
  """Writes a results page, making its directory."""
  os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
  with open(path, 'w') as f:
    f.write(text)


def read_provenance(root_dir: str) -> list:
  """The records of `record_provenance` in `root_dir` (empty if none)."""
  path = os.path.join(root_dir, PROVENANCE_FILE)
  if not tf.io.gfile.exists(path):
    return []
  with tf.io.gfile.GFile(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def restore_run(root_dir: str) -> Run:
  """Rebuilds a run from its config.json and latest checkpoint."""
  settings = read_settings(root_dir)
  if not tf.train.latest_checkpoint(os.path.join(root_dir, CHECKPOINT_SUBDIR)):
    raise PathFlagError(f'--root_dir {root_dir} has no checkpoint: its run '
                        'has not saved one yet.')
  return build_run(settings, root_dir)


class Evaluator:
  """Plays held-out episodes of one policy in one model.

  The episode loop is a `tf.function` traced on the first call and reused by
  later calls with the same number of episodes, so a training run that
  evaluates every `--eval_interval` steps traces (and compiles) it once.
  Episodes start from `model.reset(num_episodes, [seed, 0])`, so the same
  seed gives the same held-out start states every time. A search policy also
  gets a stateless seed per step, folded from `seed` and the step number, so
  its scores are a function of its weights and `seed` alone, not of how often
  its random generator ran before (a SavedModel takes no seed and uses its
  own generator). The steps run in a compiled `tf.while_loop`,
  `_EVAL_CHUNK_STEPS` per call.
  """

  def __init__(self, policy: Any, model, network_input_only: bool = False):
    """Builds the episode loop (traced on the first call).

    Args:
      policy: anything with `action(time_step)` made of TF ops, returning a
        step with `.action`: a `TFPolicy` or a policy loaded from a
        SavedModel. Its variables are read when it plays, so weights trained
        between calls are the ones scored.
      model: an `EnvironmentModel`.
      network_input_only: give the policy only the network input of the
        observations (an exported network policy).
    """
    self._model = model
    self._observe = model.observe
    if network_input_only:
      self._observe = lambda state: model_lib.network_input(
          model.observe(state))
    self._policy = policy
    self.play = tf.function(self._play)

  def _act(self, time_step, step, seed):
    if isinstance(self._policy, policy_lib.SearchPolicy):
      policy_seed = tf.stack([seed, tf.constant(1, tf.int64)])
      step_seed = tf.random.experimental.stateless_fold_in(policy_seed, step)
      return self._policy.action(time_step, seed=step_seed).action
    return self._policy.action(time_step).action

  def _play(self, state, time_step, returns, lengths, finished, first_step,
            num_steps, seed):
    """Plays up to `num_steps` steps, or until every episode has ended."""

    def body(step, *carry):
      state, time_step, returns, lengths, finished = carry
      model_step = self._model.step(
          state, self._act(time_step, first_step + step, seed))
      active = ~finished
      next_carry = (
          model_step.state,
          ts.transition(self._observe(model_step.state), model_step.reward,
                        model_step.discount),
          returns + tf.where(active, tf.cast(model_step.reward, tf.float64),
                             0.0),
          lengths + tf.cast(active, tf.int64),
          finished | model_step.done)
      # A simulator behind tf.numpy_function loses the static batch size.
      return (step + 1,) + tf.nest.map_structure(
          lambda new, old: tf.ensure_shape(new, old.shape), next_carry, carry)

    def not_done(step, *carry):
      return (step < num_steps) & ~tf.reduce_all(carry[-1])

    return tf.while_loop(
        not_done, body,
        (tf.constant(0), state, time_step, returns, lengths, finished))

  def __call__(self, num_episodes: int, seed: int, max_steps: int = 10_000,
               progress_seconds: float = 30.0) -> Dict[str, float]:
    """Plays one episode in each of `num_episodes` environments.

    Args:
      num_episodes: number of episodes, played as one batch.
      seed: seed of the start states (and of a search policy's steps).
      max_steps: safety cap on episode length (every model ends its episodes
        at its own time limit first: Snake after 4000 steps).
      progress_seconds: print progress (steps, episodes finished, seconds)
        between calls, at most this often, while episodes are running.

    Returns:
      Dict with `solve_rate` (fraction of episodes with a positive return:
      for the cube, the fraction solved), `mean_return` and `mean_length`.
    """
    seed_tensor = tf.constant(seed, tf.int64)
    state = self._model.reset(num_episodes,
                              tf.constant([seed, 0], tf.int64))
    time_step = ts.restart(self._observe(state), num_episodes)
    finished = tf.zeros([num_episodes], tf.bool)
    returns = tf.zeros([num_episodes], tf.float64)
    lengths = tf.zeros([num_episodes], tf.int64)
    start = last_print = time.time()
    step = 0
    while step < max_steps:
      played, state, time_step, returns, lengths, finished = self.play(
          state, time_step, returns, lengths, finished, tf.constant(step),
          tf.constant(min(_EVAL_CHUNK_STEPS, max_steps - step)), seed_tensor)
      step += int(played)
      if bool(tf.reduce_all(finished)):
        break
      if time.time() - last_print >= progress_seconds:
        last_print = time.time()
        done = int(tf.reduce_sum(tf.cast(finished, tf.int32)))
        print(f'[eval] {step} steps, {done}/{num_episodes} episodes '
              f'finished, {time.time() - start:.0f}s', flush=True)
    returns = returns.numpy()
    return {
        'solve_rate': float(np.mean(returns > 0)),
        'mean_return': float(np.mean(returns)),
        'mean_length': float(np.mean(lengths.numpy())),
    }


def evaluate_policy(policy: Any, model, num_episodes: int, seed: int,
                    max_steps: int = 10_000,
                    network_input_only: bool = False,
                    progress_seconds: float = 30.0) -> Dict[str, float]:
  """One `Evaluator(policy, model, network_input_only)` call (see there)."""
  return Evaluator(policy, model, network_input_only)(
      num_episodes, seed, max_steps, progress_seconds)


class ActionOnlyPolicy(tf_policy.TFPolicy):
  """Delegates `action` to a policy and exports no `distribution`.

  A SavedModel with a saved `distribution` can only be loaded after importing
  TensorFlow Probability (it registers the distributions' type specs); without
  it, the exported policies load with plain TensorFlow. The search target
  q-hat is still in the `action` outputs, as `info['search_policy']`.
  """

  def __init__(self, policy: tf_policy.TFPolicy):
    super().__init__(policy.time_step_spec, policy.action_spec,
                     policy.policy_state_spec, policy.info_spec,
                     name=policy.name)
    self._policy = policy

  def _action(self, time_step, policy_state, seed=None):
    return self._policy.action(time_step, policy_state, seed=seed)

  def _distribution(self, time_step, policy_state):
    raise NotImplementedError('Exported for action only.')


def export_policies(agent: agent_lib.SpoAgent, model,
                    export_dir: str) -> Dict[str, str]:
  """Exports the search policy and the bare network policy as SavedModels.

  They load with plain TensorFlow: `tf.saved_model.load(path)`, then
  `.action(time_step, ())` or the `action` signature. A search whose model
  runs Python (the MuJoCo simulator, behind `tf.numpy_function`) cannot be
  saved: only the network policy is exported then, as for an agent without
  search (PPO, whose `policy` is its `network_policy`).

  Args:
    agent: the trained agent.
    model: its planning model.
    export_dir: parent directory of the SavedModels.

  Returns:
    {'search': <dir>, 'network': <dir>} of the written SavedModels, without
    'search' for such models and agents.
  """
  policies = [('network', agent.export_network_policy())]
  if model.xla_compatible and agent.policy is not agent.network_policy:
    policies.insert(0, ('search', agent.policy))
  paths = {}
  verbosity = logging.get_verbosity()
  # PolicySaver warns that the distribution is not exported: that is the
  # intent of ActionOnlyPolicy.
  logging.set_verbosity(logging.ERROR)
  try:
    for kind, policy in policies:
      path = os.path.join(export_dir, kind)
      policy_saver.PolicySaver(
          ActionOnlyPolicy(policy),
          train_step=agent.train_step_counter).save(path)
      paths[kind] = path
  finally:
    logging.set_verbosity(verbosity)
  return paths
