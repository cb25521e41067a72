"""A run directory: build, restore, config.json, checkpoints, provenance."""

import datetime as dt
import json
import os
import subprocess
import sys
from typing import Any, Dict, NamedTuple, Optional

import tensorflow as tf
from tf_agents.environments import tf_environment
from tf_agents.utils import common

from environments import model as model_lib
from environments import registry
from tf_spo import agent as agent_lib
from tf_spo import replay
from tf_spo.experiment import algorithms
from tf_spo.experiment import builders
from tf_spo.experiment import settings as settings_lib

CONFIG_FILE = 'config.json'
CHECKPOINT_SUBDIR = 'checkpoints'


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


def build_run(settings: Dict[str, Any], root_dir: str,
              strategy: Optional[tf.distribute.Strategy] = None) -> Run:
  """Builds the environment, agent, replay buffer and checkpointer of a run.

  Restores the newest readable checkpoint in `<root_dir>/checkpoints`, if
  any (see `set_aside_unreadable_checkpoints`).

  Args:
    settings: run settings.
    root_dir: run directory.
    strategy: `tf.distribute` strategy whose scope holds the agent (see
      `builders.make_strategy`); default: the current one, no
      distribution. Evaluation and export use the default whatever the run
      trained with.
  """
  algorithms.validate_settings(settings)
  # Python, NumPy and TF seeds: Keras draws unseeded initialisers from
  # Python's random module.
  tf.keras.utils.set_random_seed(settings['seed'])
  model = builders.make_model(settings)
  env = registry.entry(settings['env']).make_env(
      model, settings['num_envs'], settings['seed'])
  strategy = strategy or tf.distribute.get_strategy()
  with strategy.scope():
    agent = algorithms.make_agent(settings, model, env.time_step_spec(),
                                env.action_spec())
  replay_buffer = replay.StatelessUniformReplayBuffer(
      agent.collect_data_spec, batch_size=settings['num_envs'],
      max_length=algorithms.get(settings).replay_length(settings),
      seed=settings['seed'])
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


class RunPathError(FileNotFoundError):
  """A path argument that names no run or no SavedModel.

  The message starts with the argument's name (`root_dir /x is not a
  directory.`), which a binary words as its flag.
  """

  def __init__(self, argument: str, path: str, reason: str):
    super().__init__(f'{argument} {path} {reason}')
    self.argument = argument


def check_saved_model(path: str, argument: str = 'saved_model') -> None:
  """Raises RunPathError unless `path` is a SavedModel directory."""
  if not tf.io.gfile.exists(path):
    raise RunPathError(argument, path, 'does not exist.')
  if not tf.saved_model.contains_saved_model(path):
    raise RunPathError(argument, path, 'is not a SavedModel directory (no '
                       'saved_model.pb); export one with launch.export.')


def read_settings(root_dir: str) -> Dict[str, Any]:
  """Settings of the run in `root_dir`, from its config.json."""
  if not tf.io.gfile.isdir(root_dir):
    raise RunPathError('root_dir', root_dir, 'is not a directory.')
  path = os.path.join(root_dir, CONFIG_FILE)
  if not tf.io.gfile.exists(path):
    raise RunPathError('root_dir', root_dir, f'has no {CONFIG_FILE}: is it '
                       'the root_dir of a launch.train run?')
  with tf.io.gfile.GFile(path) as f:
    settings = json.load(f)
  # Runs from before the device, algorithm and baseline settings trained SPO
  # on the default strategy: those settings' defaults describe them.
  return {**{name: settings_lib.DEFAULTS[name] for name in
             settings_lib.DEVICE_SETTINGS + ('algorithm',) +
             settings_lib.PPO_SETTINGS + settings_lib.GUMBEL_SETTINGS +
             settings_lib.ADDED_SETTINGS}, **settings}


def write_settings(root_dir: str, settings: Dict[str, Any]) -> None:
  """Writes settings to config.json, refusing an incompatible existing run.

  Raises:
    ValueError: if `root_dir` holds a run whose settings differ in anything
      but the schedule (run length and intervals), naming them.
  """
  path = os.path.join(root_dir, CONFIG_FILE)
  if tf.io.gfile.exists(path):
    previous = read_settings(root_dir)
    differing = [
        f'{name}={previous.get(name)!r} (now {settings[name]!r})'
        for name in sorted(settings)
        if name not in (settings_lib.SCHEDULE_SETTINGS +
                        settings_lib.DEVICE_SETTINGS) and
        previous.get(name) != settings[name]
    ]
    if differing:
      raise ValueError(
          f'root_dir={root_dir} holds a checkpoint of an incompatible '
          f'config: {", ".join(differing)}. Use the same settings to resume, '
          'or a new root_dir.')
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
    raise RunPathError('root_dir', root_dir,
                       'has no checkpoint: its run has not saved one yet.')
  return build_run(settings, root_dir)

