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

import csv
import json
import os
import statistics
import time
from typing import Any, Dict, List, Sequence, Tuple

from absl import app
from absl import flags
import tensorflow as tf

from environments import registry
from launch import common
from tf_spo import policy as policy_lib

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


def search_configs(settings: Dict[str, Any],
                   spo_budgets: Sequence[Tuple[int, int]],
                   gumbel_simulations: Sequence[int]) -> List[Dict[str, Any]]:
  """The searches to compare: name, budget label, model steps, config.

  SMC searches keep the run's settings (its TRT-SMC switches, its resample
  period, capped at the depth); Gumbel MuZero uses the run's discount (and
  its sampled actions per node, for continuous actions).
  """
  smc = dict(settings, algorithm='spo')
  searches = []
  for particles, depth in spo_budgets:
    config = common.search_config(dict(
        smc, num_particles=particles, depth=depth,
        resample_period=min(settings['resample_period'], depth)))
    searches.append(dict(search=common.algorithm_name(smc),
                         budget=f'{particles}x{depth}',
                         model_steps=particles * depth, config=config))
  for simulations in gumbel_simulations:
    config = common.search_config(dict(
        settings, algorithm='gumbel', num_simulations=simulations))
    searches.append(dict(search='gumbel', budget=str(simulations),
                         model_steps=simulations, config=config))
  return searches


def time_search(policy: policy_lib.SearchPolicy, observation: Any,
                repeats: int) -> float:
  """Median milliseconds of one compiled search call (after a warm-up)."""
  seeds = [tf.constant([7, i], tf.int32) for i in range(repeats + 1)]
  sync = lambda output: tf.nest.map_structure(
      lambda x: x.numpy(), tf.nest.flatten(output))
  sync(policy.search(observation, seeds[0]))
  times = []
  for seed in seeds[1:]:
    start = time.perf_counter()
    sync(policy.search(observation, seed))
    times.append(time.perf_counter() - start)
  return 1000.0 * statistics.median(times)


def scaling(run: common.Run, searches: List[Dict[str, Any]],
            settings: Dict[str, Any], num_episodes: int, seed: int,
            timing_batch: int, timing_repeats: int) -> List[Dict[str, Any]]:
  """Scores and times the greedy search of each configuration.

  Args:
    run: the restored run whose network searches.
    searches: from `search_configs`.
    settings: the run's settings with the evaluation level applied.
    num_episodes: held-out episodes per search.
    seed: seed of the held-out episodes (the same for every search).
    timing_batch: roots per timed search call.
    timing_repeats: timed calls per search.

  Returns:
    One row per search: search, budget, model_steps, ms_per_step and the
    env's metrics.
  """
  model = common.make_model(settings, evaluation=True)
  timing_observation = model.observe(
      model.reset(timing_batch, tf.constant([seed, 1], tf.int64)))
  agent = run.agent
  rows = []
  for search in searches:
    policy = policy_lib.search_policy(
        agent.time_step_spec, agent.action_spec, agent.network, run.model,
        search['config'], agent.eta, greedy=True, seed=seed)
    scores = common.evaluate_policy(policy, model, num_episodes, seed)
    row = {key: search[key] for key in ('search', 'budget', 'model_steps')}
    row['ms_per_step'] = time_search(policy, timing_observation,
                                     timing_repeats)
    row.update({metric: scores[metric]
                for metric in common.metrics(settings)})
    rows.append(row)
    print(f"[scaling] {row['search']} {row['budget']}: "
          f"{row['ms_per_step']:.1f} ms/step " +
          ' '.join(f'{m}={row[m]:.3f}' for m in common.metrics(settings)),
          flush=True)
  return rows


def write_outputs(rows: List[Dict[str, Any]], metric: str, title: str,
                  output_dir: str) -> Dict[str, str]:
  """Writes the figure (PNG, PDF) and the table (Markdown, CSV, JSON)."""
  import matplotlib as mpl  # pylint: disable=g-import-not-at-top
  mpl.use('Agg')
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top

  os.makedirs(output_dir, exist_ok=True)
  paths = {kind: os.path.join(output_dir, f'scaling.{kind}')
           for kind in ('png', 'pdf', 'md', 'csv', 'json')}
  figure, axes = plt.subplots(figsize=(6, 4))
  for name in dict.fromkeys(row['search'] for row in rows):
    points = sorted((r for r in rows if r['search'] == name),
                    key=lambda r: r['model_steps'])
    axes.plot([r['ms_per_step'] for r in points],
              [r[metric] for r in points], marker='o', label=name)
    for r in points:
      axes.annotate(r['budget'], (r['ms_per_step'], r[metric]),
                    textcoords='offset points', xytext=(4, 4), fontsize=7)
  axes.set_xscale('log')
  axes.set_xlabel('search time per step (ms, log scale)')
  axes.set_ylabel(metric)
  axes.set_title(title, fontsize=9)
  axes.grid(alpha=0.3)
  axes.legend()
  figure.tight_layout()
  figure.savefig(paths['png'], dpi=120)
  figure.savefig(paths['pdf'])
  plt.close(figure)

  columns = list(rows[0])
  with open(paths['csv'], 'w', newline='') as f:
    writer = csv.DictWriter(f, columns)
    writer.writeheader()
    writer.writerows(rows)
  cell = lambda v: f'{v:.3f}' if isinstance(v, float) else str(v)
  lines = ['| ' + ' | '.join(columns) + ' |',
           '|' + '---|' * len(columns)]
  lines += ['| ' + ' | '.join(cell(r[c]) for c in columns) + ' |'
            for r in rows]
  with open(paths['md'], 'w') as f:
    f.write(title.replace('\n', ', ') + '\n\n' + '\n'.join(lines) + '\n')
  with open(paths['json'], 'w') as f:
    json.dump({'title': title, 'rows': rows}, f, indent=2)
  return paths


def main(argv):
  """Runs the scaling sweep of the flags."""
  del argv
  try:
    spo_budgets = parse_budgets(FLAGS.spo_budgets)
    gumbel_simulations = parse_simulations(FLAGS.gumbel_simulations)
    if not spo_budgets and not gumbel_simulations:
      raise ScalingError('--spo_budgets and --gumbel_simulations are both '
                         'empty: give at least one search.')
    for name in ('num_episodes', 'timing_batch', 'timing_repeats'):
      if FLAGS[name].value < 1:
        raise ScalingError(f'--{name} must be >= 1, got {FLAGS[name].value}.')
    run = common.restore_run(FLAGS.root_dir)
    settings = run.settings
    if settings['algorithm'] == 'ppo':
      raise ScalingError(f'--root_dir {FLAGS.root_dir} is a PPO run, whose '
                         'networks do not plan; give an SPO or Gumbel run.')
    sweep = registry.entry(settings['env']).eval_sweep
    if FLAGS.level:
      if not sweep:
        raise ScalingError(f'--level: env {settings["env"]} has no '
                           'evaluation levels; pass --level=0.')
      settings = dict(settings, **{sweep: FLAGS.level})
    searches = search_configs(settings, spo_budgets, gumbel_simulations)
  except ScalingError as error:
    raise app.UsageError(common.flag_wording(error)) from error
  rows = scaling(run, searches, settings, FLAGS.num_episodes, FLAGS.seed,
                 FLAGS.timing_batch, FLAGS.timing_repeats)
  metric = common.metrics(settings)[0]
  level = f', {sweep}={settings[sweep]}' if sweep else ''
  title = (f'{settings["env"]}{level}: {FLAGS.num_episodes} episodes\n'
           f'time per search of {FLAGS.timing_batch} root(s)')
  paths = write_outputs(rows, metric, title, FLAGS.output_dir or
                        os.path.join(FLAGS.root_dir, 'scaling'))
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
  app.run(common.exit_on_path_errors(main))


if __name__ == '__main__':
  run()
