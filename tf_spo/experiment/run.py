"""A run directory: build, restore, config.json, checkpoints, provenance."""

import contextlib
import datetime as dt
import fcntl
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
from tf_spo.experiment import checkpoints
from tf_spo.experiment import settings as settings_lib

CONFIG_FILE = 'config.json'
CHECKPOINT_SUBDIR = 'checkpoints'


class Run(NamedTuple):
  """Everything a training run is made of; all state is in `checkpointer`.

  A run restored read-only (`restore_run`) has no checkpointer.

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
  checkpointer: Optional[common.Checkpointer]
  model: model_lib.EnvironmentModel
  strategy: tf.distribute.Strategy


def build_run(settings: Dict[str, Any], root_dir: str,
              strategy: Optional[tf.distribute.Strategy] = None,
              read_only: bool = False) -> Run:
  """Builds the environment, agent, replay buffer and checkpointer of a run.

  Restores the newest readable checkpoint in `<root_dir>/checkpoints`, if
  any. The run's writer (`read_only=False`) first repairs the directory
  (`checkpoints.repair`); a reader changes nothing in it and gets no
  checkpointer.

  Args:
    settings: run settings.
    root_dir: run directory.
    strategy: `tf.distribute` strategy whose scope holds the agent (see
      `builders.make_strategy`); default: the current one, no
      distribution. Evaluation and export use the default whatever the run
      trained with.
    read_only: restore without writing anything (evaluation, export).

  Raises:
    RunPathError: naming `root_dir` if `read_only` and it has no readable
      checkpoint.
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
  parts = dict(agent=agent, replay_buffer=replay_buffer, env_steps=env_steps,
               wall_clock=wall_clock,
               **({'env': env} if isinstance(env, tf.Module) else {}))
  checkpointer = None
  if read_only:
    newest = checkpoints.newest_readable(checkpoint_dir)
    if newest is None:
      raise RunPathError('root_dir', root_dir,
                         'has no checkpoint: its run has not saved one yet.')
    # Optimizer slots are restored when first created; evaluation and
    # export never create them, so unmatched values are expected.
    tf.train.Checkpoint(**parts).restore(newest).expect_partial()
  else:
    checkpoints.repair(checkpoint_dir)
    checkpointer = common.Checkpointer(checkpoint_dir, max_to_keep=2, **parts)
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


class RunInUseError(RuntimeError):
  """Another process writes the run directory; the message names it."""


LOCK_FILE = 'lock'
EVAL_LOCK_FILE = 'eval.lock'


@contextlib.contextmanager
def locked(root_dir: str, lock_file: str = LOCK_FILE):
  """Holds the run directory's writer lock, or raises naming its holder.

  One process writes a run directory at a time. The lock (an flock on
  <root_dir>/<lock_file>, which names its holder) is this process's inside
  the `with` block, released however the process ends. Paths of a remote
  file system (`gs://...`) are not locked. A distributed run's learner holds
  `LOCK_FILE` and its evaluator, the one writer of eval.csv,
  `EVAL_LOCK_FILE`.

  Raises:
    RunInUseError: naming `root_dir` and the process holding it.
  """
  if '://' in root_dir:
    yield
    return
  os.makedirs(root_dir, exist_ok=True)
  with open(os.path.join(root_dir, lock_file), 'a+') as handle:
    try:
      fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
      handle.seek(0)
      holder = handle.read().strip() or 'another process'
      raise RunInUseError(
          f'root_dir={root_dir} is in use by {holder}; wait for it to end '
          'or use another root_dir.') from None
    handle.seek(0)
    handle.truncate()
    handle.write(f'process {os.getpid()} ({" ".join(sys.argv)[:200]})')
    handle.flush()
    yield


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


def source_commit(source: Optional[str] = None) -> Optional[str]:
  """The git commit of a source tree ('+dirty' if changed), or None.

  Args:
    source: a directory in the git work tree; this package's by default.
      Changes under its top-level docs/ (results pages one generation writes
      before the next reads the commit) don't make it dirty.
  """
  source = source or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  try:
    commit = subprocess.run(
        ['git', '-C', source, 'rev-parse', '--short', 'HEAD'],
        capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    dirty = subprocess.run(
        ['git', '-C', source, 'status', '--porcelain', '--untracked-files=no',
         '--', ':/', ':(top,exclude)docs'],
        capture_output=True, text=True, timeout=10, check=True).stdout.strip()
  except (OSError, subprocess.SubprocessError):
    return None
  return commit + ('+dirty' if dirty else '')


# Longer commands are cut (and pages mark the cut).
MAX_COMMAND_CHARS = 1000


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
      jobs.append(command[:MAX_COMMAND_CHARS])
  return jobs


def _append_provenance(root_dir: str, record: dict) -> None:
  with tf.io.gfile.GFile(os.path.join(root_dir, PROVENANCE_FILE), 'a') as f:
    f.write(json.dumps(record) + '\n')


def _load_average() -> Optional[list]:
  return list(os.getloadavg()) if hasattr(os, 'getloadavg') else None


def _now() -> str:
  return dt.datetime.now(dt.UTC).isoformat(timespec='seconds')


def record_provenance(root_dir: str, resumed_from: Optional[int]) -> list:
  """Appends where this start of a run came from to provenance.jsonl.

  One JSON line per start (a resume adds one): time ('started'), source
  commit, command line, the env step it resumed from (None for a fresh
  start), the machine's cores and load, and the other Python processes
  running beside it.

  Returns:
    The other processes' command lines (`record_sharing`'s `previous`).
  """
  record = {
      'started': _now(),
      'commit': source_commit(),
      'argv': sys.argv,
      'resumed_from_env_steps': resumed_from,
      'cpu_count': os.cpu_count(),
      'load_average': _load_average(),
      'other_jobs': _other_jobs(),
  }
  _append_provenance(root_dir, record)
  return record['other_jobs']


def record_sharing(root_dir: str, env_steps: int, previous: list) -> list:
  """Appends what runs beside a run to provenance.jsonl, when it changed.

  Called along a run (at its progress lines), so that jobs started after the
  run's start are on record: a JSON line (time 'checked', `env_steps`, the
  load and the other Python processes) is written only when the other
  processes differ from `previous` (the last recorded ones).

  Returns:
    The other processes' command lines now (the next call's `previous`).
  """
  jobs = _other_jobs()
  if sorted(jobs) != sorted(previous):
    _append_provenance(root_dir, {
        'checked': _now(), 'env_steps': env_steps,
        'load_average': _load_average(),
        'other_jobs': jobs})
  return jobs


def read_provenance(root_dir: str) -> list:
  """The records in `root_dir`'s provenance.jsonl (empty if none).

  In file order: each start's (`record_provenance`, with 'started') and the
  changes of what ran beside it (`record_sharing`, with 'checked').
  """
  path = os.path.join(root_dir, PROVENANCE_FILE)
  if not tf.io.gfile.exists(path):
    return []
  with tf.io.gfile.GFile(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def restore_run(root_dir: str) -> Run:
  """Rebuilds a run from its config.json and newest readable checkpoint.

  Reads only: the run directory is left as it is (the run may still be
  training, or be read-only); the returned run has no checkpointer.
  """
  return build_run(read_settings(root_dir), root_dir, read_only=True)

