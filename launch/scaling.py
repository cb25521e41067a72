r"""Test-time scaling: score against search time per step on one checkpoint.

Restores the network of a `launch.train` run and, for each search budget,
plays held-out episodes with the greedy search and times one search call:
the run's SMC search (SPO, or TRT-SMC with the run's switches) at each
`--spo_budgets` particles x depth, and Gumbel MuZero at each
`--gumbel_simulations` (paper 000, fig. 3: the cube at 10 scramble moves).

  python -m launch.scaling --root_dir=runs/cube --level=10
  python -m launch.scaling --root_dir=runs/cube --spo_budgets=4x4,16x4,64x4 \
      --gumbel_simulations=16,64,256 --timing_batch=64

Outputs in --output_dir (default <root_dir>/scaling): scaling.png and
scaling.pdf (the env's headline metric against milliseconds per search
call, log scale), scaling.md, scaling.csv and scaling.json (every number).
A budget's model steps per env step are particles x depth for SMC and the
simulations for Gumbel MuZero, so 16x4 and 64 simulations cost the same
model steps and network evaluations.
"""

import os
from typing import List, Tuple

from absl import flags

from environments import registry
from launch import cli
from tf_spo import experiment
from tf_spo.experiment import scaling

FLAGS = flags.FLAGS


class ScalingError(ValueError):
  """A bad flag value; the message names the flag."""


def parse_budgets(text: str) -> List[Tuple[int, int]]:
  """'4x4,16x4' -> [(4, 4), (16, 4)] (particles, depth).

  Raises:
    ScalingError: naming --spo_budgets unless every item is NxD, N, D >= 1.
  """
  budgets = []
  for item in filter(None, (x.strip() for x in text.split(','))):
    parts = item.lower().split('x')
    if (len(parts) != 2 or not all(p.isdigit() for p in parts)
        or min(int(p) for p in parts) < 1):
      raise ScalingError('--spo_budgets must be comma-separated NxD '
                         f'(particles x depth, both >= 1), got {item!r}.')
    budgets.append((int(parts[0]), int(parts[1])))
  return budgets


def parse_simulations(text: str) -> List[int]:
  """'16,64' -> [16, 64].

  Raises:
    ScalingError: naming --gumbel_simulations unless every item is >= 1.
  """
  items = [x.strip() for x in text.split(',') if x.strip()]
  if not all(x.isdigit() and int(x) >= 1 for x in items):
    raise ScalingError('--gumbel_simulations must be comma-separated '
                       f'integers >= 1, got {text!r}.')
  return [int(x) for x in items]


def main(argv):
  """Runs the scaling sweep of the flags."""
  del argv
  with cli.flag_errors():
    spo_budgets = parse_budgets(FLAGS.spo_budgets)
    gumbel_simulations = parse_simulations(FLAGS.gumbel_simulations)
    if not spo_budgets and not gumbel_simulations:
      raise ScalingError('--spo_budgets and --gumbel_simulations are both '
                         'empty: give at least one search.')
    for name in ('num_episodes', 'timing_batch', 'timing_repeats'):
      if FLAGS[name].value < 1:
        raise ScalingError(f'--{name} must be >= 1, got {FLAGS[name].value}.')
    run = experiment.restore_run(FLAGS.root_dir)
    settings = run.settings
    if experiment.search_config(settings) is None:
      raise ScalingError(
          f'--root_dir {FLAGS.root_dir} is a run of --algorithm='
          f"{settings['algorithm']}, which has no search; give an SPO or "
          'Gumbel run.')
    sweep = registry.entry(settings['env']).eval_sweep
    if FLAGS.level:
      if not sweep:
        raise ScalingError(f'--level: env {settings["env"]} has no '
                           'evaluation levels; pass --level=0.')
      settings = dict(settings, **{sweep: FLAGS.level})
    searches = scaling.search_configs(settings, spo_budgets, gumbel_simulations)
  rows = scaling.scaling(run, searches, settings, FLAGS.num_episodes,
                         FLAGS.seed, FLAGS.timing_batch, FLAGS.timing_repeats)
  metric = experiment.metrics(settings)[0]
  level = f', {sweep}={settings[sweep]}' if sweep else ''
  title = (f'{settings["env"]}{level}: {FLAGS.num_episodes} episodes\n'
           f'time per search of {FLAGS.timing_batch} root(s)')
  paths = scaling.write_outputs(
      rows, metric, title,
      FLAGS.output_dir or os.path.join(FLAGS.root_dir, 'scaling'),
      experiment.command_line('launch.scaling'))
  print('[scaling] wrote ' + ', '.join(paths.values()), flush=True)


def run():
  """Defines the flags and runs `main`."""
  flags.DEFINE_string('root_dir', None, 'Run directory of launch.train whose '
                      'latest checkpoint searches.')
  flags.DEFINE_string('spo_budgets', '4x4,8x4,16x4,32x4',
                      "SMC budgets, particles x depth, with the run's "
                      'search settings; empty for none.')
  flags.DEFINE_string('gumbel_simulations', '16,32,64,128',
                      'Gumbel MuZero simulations; empty for none.')
  flags.DEFINE_integer('level', 0, 'Evaluation level of the env (the cube: '
                       "scramble moves; the paper's figure uses 10); 0: the "
                       "run's own.")
  flags.DEFINE_integer('num_episodes', 200, 'Held-out episodes per search.')
  flags.DEFINE_integer('seed', 12345, 'Seed of the held-out episodes.')
  flags.DEFINE_integer('timing_batch', 1, 'Roots per timed search call '
                       '(1: the latency of one env step).')
  flags.DEFINE_integer('timing_repeats', 20, 'Timed calls per search '
                       '(median).')
  flags.DEFINE_string('output_dir', '', 'Where to write the figure and '
                      'tables (default <root_dir>/scaling).')
  flags.mark_flag_as_required('root_dir')
  cli.run(main)


if __name__ == '__main__':
  run()
