"""The registry of tasks: one table from an env name to everything about it.

Each entry gives the model (the planning model, and the real environment
unless the entry gives another: gymnasium for the MuJoCo tasks), the task's
own settings (its episode limit), and its evaluation metric. Nothing outside
the registry special-cases an env.

Settings are the flat dict of a run (`tf_spo.experiment.settings`); a model
is built from them by `make_model(settings, evaluation)`.
"""

import functools
from typing import Any, Callable, Dict, NamedTuple, Optional, Tuple

import numpy as np
from tf_agents.environments import py_environment
from tf_agents.environments import tf_environment
from tf_agents.environments import tf_py_environment

from environments import boxoban_levels
from environments import gym_adapter
from environments import model as model_lib
from environments import mujoco_model
from environments import mujoco_tasks
from environments import pendulum
from environments import rubiks_cube
from environments import snake
from environments import sokoban


class EnvEntry(NamedTuple):
  """What a run needs to know about one task.

  Attributes:
    make_model: (settings, evaluation) -> `EnvironmentModel`; with
      `evaluation`, the model of the held-out evaluation episodes.
    settings: the task's own settings on top of the global defaults
      (its episode limit; the cube's scrambles). The presets of runs are
      `tf_spo.experiment.presets`.
    metrics: evaluation metrics reported for this env, the first being the
      headline: `solve_rate` only where solving means something.
    eval_settings: names of the settings that define the evaluation
      episodes, reported with the results.
    eval_sweep: optional setting that `launch.evaluate` sweeps over levels
      1..max_level (the difficulty of the evaluation episodes).
    summary_levels: levels of `eval_sweep` at which the final summary of a
      training run also reports both policies (besides the run's own
      evaluation episodes).
    make_env: (model, num_envs, seed) -> the real `TFEnvironment` of
      training; by default the model itself, as a `ModelEnvironment`.
    make_py_env: (model, num_envs, seed) -> the same real environment as a
      batched `PyEnvironment`, for `tf_agents.train.Actor`, `PyDriver` and
      Reverb observers; by default a `ModelPyEnvironment`.
    reads: the settings of one task or a few (the cube's scrambles,
      Sokoban's levels, the MuJoCo simulator's threads) that this task's
      model reads; setting one the task does not read is an error
      (`check_reads`).
    play_gymnasium: optional (policy, model, num_episodes, seed,
      network_input_only) -> [num_episodes] returns of the policy in
      gymnasium's own environment of the task, for a task that has one.
  """
  make_model: Callable[[Dict[str, Any], bool], model_lib.EnvironmentModel]
  settings: Dict[str, Any]
  metrics: Tuple[str, ...]
  eval_settings: Tuple[str, ...]
  eval_sweep: Optional[str] = None
  summary_levels: Tuple[int, ...] = ()
  make_env: Callable[[Any, int, int], tf_environment.TFEnvironment] = (
      model_lib.ModelEnvironment)
  make_py_env: Callable[[Any, int, int], py_environment.PyEnvironment] = (
      model_lib.ModelPyEnvironment)
  reads: Tuple[str, ...] = ()
  play_gymnasium: Optional[Callable[..., np.ndarray]] = None


def _cube(settings, evaluation: bool) -> rubiks_cube.RubiksCube:
  """Training scramble range, or exactly `eval_scramble` moves."""
  low, high = ((settings['eval_scramble'],) * 2 if evaluation else
               (settings['min_scramble'], settings['max_scramble']))
  return rubiks_cube.RubiksCube(low, high, time_limit=settings['time_limit'])


def _pendulum(settings, evaluation: bool) -> pendulum.Pendulum:
  del evaluation
  return pendulum.Pendulum(time_limit=settings['time_limit'])


# Seeds of the built-in generated Boxoban levels: one set to train on, a
# disjoint held-out set to evaluate on.
_TRAIN_LEVELS_SEED = 0
_EVAL_LEVELS_SEED = 1
_NUM_EVAL_LEVELS = 1000


@functools.lru_cache(maxsize=4)
def _generated_levels(num_levels: int, seed: int) -> boxoban_levels.Levels:
  """Built-in reverse-play levels (memoised: runs build several models)."""
  levels, _ = boxoban_levels.generate_levels(num_levels, seed)
  return levels


def _sokoban(settings, evaluation: bool) -> sokoban.Sokoban:
  """Training: levels drawn at random from `levels_dir` or generated ones.

  Evaluation: every level of `eval_levels_dir`, or of 1000 held-out
  generated levels, in order (episode i plays level i).
  """
  directory = settings['eval_levels_dir' if evaluation else 'levels_dir']
  if directory:
    levels = boxoban_levels.load_levels(directory)
  elif evaluation:
    levels = _generated_levels(_NUM_EVAL_LEVELS, _EVAL_LEVELS_SEED)
  else:
    levels = _generated_levels(settings['num_levels'], _TRAIN_LEVELS_SEED)
  return sokoban.Sokoban(levels, time_limit=settings['time_limit'],
                         sequential=evaluation)


def _snake(settings, evaluation: bool) -> snake.Snake:
  del evaluation
  return snake.Snake(time_limit=settings['time_limit'])


def _gymnasium_env(model, num_envs: int, seed: int):
  """gymnasium's environments of a MuJoCo task, as a TF environment."""
  return tf_py_environment.TFPyEnvironment(
      gym_adapter.GymnasiumEnvironment(model, num_envs, seed))


def _mujoco(name: str):
  """make_model of a MuJoCo task: the simulator, run on `num_threads`."""

  def make_model(settings, evaluation: bool) -> mujoco_model.MujocoModel:
    del evaluation
    return mujoco_model.MujocoModel(
        mujoco_tasks.task(name), time_limit=settings['time_limit'],
        num_threads=settings['num_threads'])

  return make_model


ENVS: Dict[str, EnvEntry] = {
    'rubiks_cube': EnvEntry(
        make_model=_cube,
        settings=dict(time_limit=20, min_scramble=1, max_scramble=7,
                      eval_scramble=7),
        metrics=('solve_rate', 'mean_return'),
        eval_settings=('eval_scramble', 'time_limit'),
        eval_sweep='eval_scramble',
        summary_levels=(3, 7),
        reads=('min_scramble', 'max_scramble', 'eval_scramble')),
    'pendulum': EnvEntry(
        make_model=_pendulum,
        settings=dict(time_limit=200),
        metrics=('mean_return',),
        eval_settings=('time_limit',),
        play_gymnasium=pendulum.play_gymnasium),
    'sokoban': EnvEntry(
        make_model=_sokoban,
        settings=dict(time_limit=120),
        # An episode is solved iff its return is positive: solving earns
        # 10 + 4 boxes, and 120 steps cost 12.
        metrics=('solve_rate', 'mean_return'),
        eval_settings=('eval_levels_dir', 'time_limit'),
        reads=('levels_dir', 'num_levels', 'eval_levels_dir')),
    'snake': EnvEntry(
        make_model=_snake,
        settings=dict(time_limit=4000),
        metrics=('mean_return',),
        eval_settings=('time_limit',)),
    **{name: EnvEntry(
        make_model=_mujoco(name),
        settings=dict(time_limit=task.time_limit),
        metrics=('mean_return',),
        eval_settings=('time_limit',),
        make_env=_gymnasium_env,
        make_py_env=gym_adapter.GymnasiumEnvironment,
        reads=('num_threads',),
        play_gymnasium=gym_adapter.play_gymnasium)
       for name, task in mujoco_tasks.TASKS.items()},
}


def entry(name: str) -> EnvEntry:
  """The registry entry of env `name`.

  Raises:
    ValueError: naming `env` and the registered names.
  """
  if name not in ENVS:
    raise ValueError(f'env must be one of {sorted(ENVS)}, got {name!r}.')
  return ENVS[name]


def check_reads(env: str, names) -> None:
  """Raises unless task `env` reads each task setting in `names` it is given.

  Args:
    env: registry name of the task.
    names: names of settings given explicitly.

  Raises:
    ValueError: naming the first setting that only other tasks read.
  """
  for name in sorted(names):
    readers = sorted(key for key, value in ENVS.items() if name in value.reads)
    if readers and env not in readers:
      raise ValueError(f'{name}: a setting of {", ".join(readers)} only; '
                       f'env={env} does not read it.')
