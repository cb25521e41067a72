"""The registry of tasks: one table from an env name to everything about it.

Each entry gives the model (the planning model, and the real environment
unless the entry gives another: gymnasium for the MuJoCo tasks), the
settings a run of that env starts from (network sizes, episode limits, the
CPU preset), its presets per env family, and its evaluation metric. Launch
scripts take `--env=NAME` and never special-case an env.

Settings are the flat dict of `launch/train.py` flag values; a model is
built from them by `make_model(settings, evaluation)`.
"""

import functools
from typing import Any, Callable, Dict, NamedTuple, Optional, Tuple

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
  """What the launch scripts need to know about one task.

  Attributes:
    make_model: (settings, evaluation) -> `EnvironmentModel`; with
      `evaluation`, the model of the held-out evaluation episodes.
    defaults: settings of this env on top of the global defaults (the CPU
      preset of the env).
    presets: named settings on top of `defaults`, e.g. the paper's
      hyperparameters for this env family.
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
  """
  make_model: Callable[[Dict[str, Any], bool], model_lib.EnvironmentModel]
  defaults: Dict[str, Any]
  presets: Dict[str, Dict[str, Any]]
  metrics: Tuple[str, ...]
  eval_settings: Tuple[str, ...]
  eval_sweep: Optional[str] = None
  summary_levels: Tuple[int, ...] = ()
  make_env: Callable[[Any, int, int], tf_environment.TFEnvironment] = (
      model_lib.ModelEnvironment)
  make_py_env: Callable[[Any, int, int], py_environment.PyEnvironment] = (
      model_lib.ModelPyEnvironment)


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
  """Training: levels drawn at random from `--levels_dir` or generated ones.

  Evaluation: every level of `--eval_levels_dir`, or of 1000 held-out
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


# Paper 000, appendix D.3, table 3, discrete column.
_PAPER_DISCRETE = dict(
    num_envs=768, rollout_length=21, num_particles=16, depth=4,
    resample_period=4, learning_rate=3e-4, dual_learning_rate=3e-4,
    discount=0.99, gae_lambda=0.95, target_update_tau=5e-3, epsilon_eta=0.5,
    epsilon_alpha=1e-3, initial_eta=0.5, initial_alpha=0.5, max_grad_norm=0.5,
    batch_size=64, sequence_length=17, num_epochs=16, replay_capacity=65_536,
    root_dirichlet_alpha=0.03, root_exploration_fraction=0.25,
    eta_update='gradient')

# Paper 000, appendix D.3, table 3, continuous column.
_PAPER_CONTINUOUS = dict(
    num_envs=1024, rollout_length=32, num_particles=16, depth=4,
    resample_period=4, learning_rate=3e-4, dual_learning_rate=1e-3,
    discount=0.99, gae_lambda=0.95, target_update_tau=5e-3, epsilon_eta=0.2,
    initial_eta=10.0, initial_alpha_mean=10.0, initial_alpha_cov=500.0,
    epsilon_alpha_mean=5e-2, epsilon_alpha_cov=5e-4, max_grad_norm=0.5,
    batch_size=32, sequence_length=32, num_epochs=128, replay_capacity=65_536,
    eta_update='gradient')

# Paper 001, tables 6 and 7 (Jumanji column) on top of an env's CPU preset:
# K = m = 4, alpha = 0.1, message passing, revived resampling,
# Retrace(0.95) search values mixed in with sigma = 0.5.
_TRT_SMC = dict(
    num_particles=4, depth=4, resample_period=1, proposal_alpha=0.1,
    proposal_atoms=30, revived_resampling=True,
    policy_inference='message_passing', retrace_lambda=0.95,
    search_value_weight=0.5)

# The MuJoCo tasks on a 2-core CPU: the simulator is the planning model, so
# every search step costs B * N simulator steps (docs/history.md, "MuJoCo:
# planning-model throughput").
# With few gradient steps (10k to 30k in a run, the paper's ~400k) the
# paper's multipliers (alpha_mu from 10, alpha_Sigma from 500) hold the
# network's mean and scale at their start through the KL to the slow target
# network, and the network policy did not learn: they start at 1 here
# (docs/results/mstep_probe.md). The replay holds the last 8 iterations
# (the paper's holds 2), and eta is solved per batch for a 1-nat E-step
# bound (docs/results/halfcheetah.md).
_MUJOCO_CPU = dict(
    network='mlp', normalize_observations=True, num_envs=16,
    rollout_length=32, num_particles=16, depth=4, resample_period=4,
    num_threads=2, total_env_steps=1_000_000,
    learning_rate=1e-3, dual_learning_rate=1e-2, epsilon_eta=1.0,
    eta_update='solve', initial_eta=1.0, initial_alpha_mean=1.0,
    initial_alpha_cov=1.0, batch_size=32, sequence_length=32, num_epochs=16,
    replay_capacity=4_096, eval_episodes=8, eval_interval=50_000,
    checkpoint_interval=25_000, log_interval=5_000)

# Snake on a 2-core CPU: paper 001's network (app. B.1 embeds the board with
# one 3x3 convolution of 3 channels before a 2 x 128 MLP) and its Jumanji
# discount. The 3-channel embedding makes training ~3.4x faster than a
# 16-channel conv ResNet front end (docs/history.md, "Snake: learning").
_SNAKE_CPU = dict(
    time_limit=4000, conv_channels='3', conv_residual_blocks=0,
    torso_units=128, num_residual_blocks=1, head_units=128, num_envs=64,
    rollout_length=16, discount=0.997, learning_rate=3e-4,
    total_env_steps=3_000_000, batch_size=64, sequence_length=16,
    num_epochs=8, replay_capacity=65_536, eval_episodes=32,
    eval_interval=100_000, checkpoint_interval=50_000, log_interval=10_000)

# Boxoban on a 2-core CPU: the paper's conv ResNet (appendix A.1.2) at a
# fraction of its width and depth.
_SOKOBAN_CPU = dict(
    time_limit=120, conv_channels='32,32', conv_residual_blocks=1,
    torso_units=128, num_residual_blocks=1, head_units=128, num_envs=64,
    rollout_length=16, learning_rate=3e-4, total_env_steps=1_000_000,
    batch_size=64, sequence_length=17, num_epochs=8, replay_capacity=65_536,
    eval_episodes=200, eval_interval=100_000, checkpoint_interval=50_000,
    log_interval=10_000)

ENVS: Dict[str, EnvEntry] = {
    'rubiks_cube': EnvEntry(
        make_model=_cube,
        # The main job: ~3.5 minutes of training on 2 cores (docs/using.md).
        # A looser M-step trust region and a faster target network than the
        # paper's (eps_alpha 1e-3, tau 5e-3) learn faster at this budget, and
        # eta starts near where the eps_eta = 0.5 bound holds (~0.1): from the
        # paper's 0.5 at dual lr 3e-4 it is still 0.3 after 144k steps, and
        # the search targets stay close to the prior (docs/history.md, "What
        # limits it": 0.55 vs 0.31 solved at 7 moves after 256k steps).
        defaults=dict(time_limit=20, min_scramble=1, max_scramble=7,
                      eval_scramble=7, epsilon_alpha=1e-2, initial_eta=0.05,
                      target_update_tau=2e-2, total_env_steps=192_000,
                      eval_interval=64_000, checkpoint_interval=64_000,
                      log_interval=16_000),
        # With the paper's Rubik's Cube network (appendix A.2.2) and
        # training scrambles [3, 7].
        presets=dict(
            # About 30 minutes on 2 cores (docs/history.md, "Learning on the
            # Rubik's Cube"): for that budget the paper's 512-wide network
            # does a little better (3 seeds) than the default 256-wide one,
            # though it runs a third of the env steps per second.
            cpu_30min=dict(torso_units=512, head_units=512,
                           total_env_steps=500_000, eval_interval=100_000,
                           checkpoint_interval=100_000, log_interval=50_000),
            paper=dict(_PAPER_DISCRETE, torso_units=512, head_units=512,
                       min_scramble=3, max_scramble=7),
            trt_smc=_TRT_SMC),
        metrics=('solve_rate', 'mean_return'),
        eval_settings=('eval_scramble', 'time_limit'),
        eval_sweep='eval_scramble',
        summary_levels=(3, 7)),
    'pendulum': EnvEntry(
        make_model=_pendulum,
        # Tuned for a 2-core CPU (docs/results/pendulum.md): the MuJoCo
        # preset's M-step (a replay of the last 8 iterations, multipliers
        # from 1, eta solved per batch for a 1-nat bound). The previous one
        # (eps_eta 0.2, alpha_mu and alpha_Sigma from 10 and 500, a
        # 64-iteration replay) ended near -196.
        defaults=dict(
            time_limit=200, num_envs=32, rollout_length=16,
            total_env_steps=200_000, torso_units=64, num_residual_blocks=1,
            head_units=64, learning_rate=1e-3, dual_learning_rate=1e-2,
            epsilon_eta=1.0, eta_update='solve', initial_eta=1.0,
            initial_alpha_mean=1.0, initial_alpha_cov=1.0, batch_size=32,
            sequence_length=16, num_epochs=16, replay_capacity=4_096,
            eval_episodes=100, eval_interval=25_000,
            checkpoint_interval=50_000, log_interval=10_000),
        presets=dict(paper=_PAPER_CONTINUOUS, trt_smc=_TRT_SMC),
        metrics=('mean_return',),
        eval_settings=('time_limit',)),
    'sokoban': EnvEntry(
        make_model=_sokoban,
        defaults=_SOKOBAN_CPU,
        # The paper's Boxoban network: four [conv, residual, residual]
        # blocks of 256, 256, 512, 512 channels, heads of 128 units.
        presets=dict(
            paper=dict(_PAPER_DISCRETE, conv_channels='256,256,512,512',
                       conv_residual_blocks=2, head_units=128),
            trt_smc=_TRT_SMC),
        # An episode is solved iff its return is positive: solving earns
        # 10 + 4 boxes, and 120 steps cost 12.
        metrics=('solve_rate', 'mean_return'),
        eval_settings=('eval_levels_dir', 'time_limit')),
    'snake': EnvEntry(
        make_model=_snake,
        defaults=_SNAKE_CPU,
        presets=dict(paper=_PAPER_DISCRETE, trt_smc=_TRT_SMC),
        metrics=('mean_return',),
        eval_settings=('time_limit',)),
    **{name: EnvEntry(
        make_model=_mujoco(name),
        defaults=dict(_MUJOCO_CPU, time_limit=task.time_limit),
        presets=dict(paper=_PAPER_CONTINUOUS, trt_smc=_TRT_SMC),
        metrics=('mean_return',),
        eval_settings=('time_limit',),
        make_env=_gymnasium_env,
        make_py_env=gym_adapter.GymnasiumEnvironment)
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
