r"""Evaluates a trained SPO policy on held-out episodes of its task.

Loads either a training checkpoint (`--root_dir`, rebuilt from the run's
`config.json`, whose env it evaluates) or an exported SavedModel
(`--saved_model`, of the task `--env`), plays `--num_episodes` held-out
episodes, and reports the env's metrics: `mean_return` for every env, and
`solve_rate` where solving means something. Tasks with an evaluation sweep
(the cube's scramble depth) are evaluated at each level 1..`--max_level`.

  python -m launch.evaluate --root_dir=runs/cube --max_level=10
  python -m launch.evaluate --saved_model=runs/cube/policy/search
  python -m launch.evaluate --env=pendulum \
      --saved_model=runs/pendulum/policy/network --num_episodes=100
  python -m launch.evaluate --env=pendulum --gymnasium \
      --saved_model=runs/pendulum/policy/search --num_episodes=500
  python -m launch.evaluate --env=halfcheetah --gymnasium \
      --saved_model=runs/halfcheetah/policy/network --num_episodes=100
"""

import json
import time
from typing import Any, Dict, Optional, Tuple

from absl import app
from absl import flags

from environments import registry
from launch import cli
from tf_spo import experiment

FLAGS = flags.FLAGS


def load(root_dir: str, saved_model: str, policy_kind: str,
         env: Optional[str]):
  """The policy and the run settings to evaluate it with."""
  if saved_model:
    return experiment.load_saved_policy(saved_model, env)
  run = experiment.restore_run(root_dir)
  policy = {'search': run.agent.policy,
            'network': run.agent.network_policy}[policy_kind]
  return policy, run.settings


def choose_levels(settings: Dict[str, Any], levels_dir: str,
                  generated_levels: bool, num_episodes: int
                  ) -> Tuple[Dict[str, Any], int, Any]:
  """The settings, episode count and model of the level flags.

  Either flag makes the evaluation play every level of its set once, in
  order: the Boxoban files of `levels_dir`, or the built-in held-out
  generated levels (whatever `--eval_levels_dir` the run was trained with).
  With neither, the run's own evaluation episodes are played
  `num_episodes` times.

  Returns:
    (settings, num_episodes, model): the evaluation model built to count the
    levels (so a level directory is parsed once), or None with neither flag.

  Raises:
    app.UsageError: both flags given, or an env without level sets.
  """
  if not (levels_dir or generated_levels):
    return settings, num_episodes, None
  flag = '--levels_dir' if levels_dir else '--generated_levels'
  if levels_dir and generated_levels:
    raise app.UsageError('Pass at most one of --levels_dir and '
                         '--generated_levels.')
  settings = dict(settings, eval_levels_dir=levels_dir)
  model = experiment.make_model(settings, evaluation=True)
  if not hasattr(model, 'num_levels'):
    raise app.UsageError(f'{flag}: env {settings["env"]} has no level sets '
                         '(only sokoban has).')
  return settings, model.num_levels, model


def run():
  """Defines the flags and runs `main`."""
  flags.DEFINE_string('root_dir', '', 'Run directory of launch.train to '
                      'restore the latest checkpoint from.')
  flags.DEFINE_string('saved_model', '', 'Exported SavedModel directory '
                      '(instead of --root_dir).')
  flags.DEFINE_enum('env', 'rubiks_cube', sorted(registry.ENVS),
                    'With --saved_model: the task of the policy (by default '
                    'the one it was exported for).')
  flags.DEFINE_enum('policy', 'search', ['search', 'network'],
                    'With --root_dir: evaluate the SMC search policy or the '
                    'bare network policy.')
  flags.DEFINE_integer('max_level', 0, 'Envs with an evaluation sweep (the '
                       'cube: scramble moves): evaluate levels '
                       "1..max_level; 0 evaluates the run's own episodes.")
  flags.DEFINE_integer('num_episodes', 100, 'Episodes per level.')
  flags.DEFINE_integer('time_limit', 0, "Episode step limit (0: the run's "
                       "or the env's default).")
  flags.DEFINE_integer('seed', 12345, 'Seed of the held-out episodes.')
  flags.DEFINE_string('levels_dir', '', 'sokoban: Boxoban-format level file '
                      'or directory; every level is played once, in order '
                      '(overrides --num_episodes).')
  flags.DEFINE_bool('generated_levels', False, 'sokoban: play every level of '
                    "the built-in held-out generated set once, in order, "
                    "instead of the run's evaluation levels (overrides "
                    '--num_episodes).')
  flags.DEFINE_string('output', '', 'Optional JSON file for the results '
                      '(with the command and commit that made them).')
  flags.DEFINE_bool('gymnasium', False, "pendulum and MuJoCo tasks: play "
                    "gymnasium's own environment of the task (one per "
                    'episode, seeded from --seed) instead of the model.')
  cli.run(main)


def main(argv):
  """Evaluates the policy given by the flags and prints a table."""
  del argv
  if bool(FLAGS.root_dir) == bool(FLAGS.saved_model):
    raise app.UsageError('Pass exactly one of --root_dir and --saved_model.')
  for name in ('max_level', 'time_limit'):
    if FLAGS[name].value < 0:
      raise app.UsageError(f'--{name} must be >= 0, got {FLAGS[name].value}.')
  if FLAGS.num_episodes < 1:
    raise app.UsageError(
        f'--num_episodes must be >= 1, got {FLAGS.num_episodes}.')
  with cli.flag_errors():
    policy, settings = load(FLAGS.root_dir, FLAGS.saved_model, FLAGS.policy,
                            FLAGS.env if FLAGS['env'].present else None)
  if FLAGS.time_limit:
    settings = dict(settings, time_limit=FLAGS.time_limit)
  settings, num_episodes, model = choose_levels(
      settings, FLAGS.levels_dir, FLAGS.generated_levels, FLAGS.num_episodes)
  if model is None:
    model = experiment.make_model(settings, evaluation=True)
  # Which inputs an exported policy reads shows in its signature only.
  network_input_only = bool(FLAGS.saved_model) and (
      experiment.reads_network_input_only(policy, model))
  start = time.time()
  if FLAGS.gymnasium:
    with cli.flag_errors():
      results = experiment.play_gymnasium(policy, model, settings,
                                          num_episodes, FLAGS.seed,
                                          network_input_only)
  else:
    results = experiment.evaluate_levels(
        policy, settings, FLAGS.max_level, num_episodes, FLAGS.seed,
        network_input_only, model)
  columns = list(next(iter(results.values())))
  print(f'env={settings["env"]}')
  print(f'{"level":>6} ' + ' '.join(f'{c:>12}' for c in columns))
  for level, result in results.items():
    print(f'{level:>6} ' + ' '.join(f'{result[c]:>12.3f}' for c in columns))
  print(f'evaluated in {time.time() - start:.1f}s')
  if FLAGS.output:
    with open(FLAGS.output, 'w') as f:
      json.dump({
          'command': experiment.command_line('launch.evaluate'),
          'commit': experiment.source_commit(),
          'results': {str(k): v for k, v in results.items()}}, f, indent=2)


if __name__ == '__main__':
  run()
