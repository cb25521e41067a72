"""Test-time scaling: a checkpoint's score against search time per step.

`scaling` plays held-out episodes with the greedy search of each budget
(`search_configs`: the run's SMC search at each particles x depth, Gumbel
MuZero at each number of simulations) and times one search call;
`write_outputs` writes the figure and tables (paper 000, fig. 3).
`launch.scaling` is its command line.
"""

import csv
import json
import os
import statistics
import time
from typing import Any, Dict, List, Sequence, Tuple

import tensorflow as tf

from tf_spo import policy as policy_lib
from tf_spo.experiment import algorithms
from tf_spo.experiment import builders
from tf_spo.experiment import evaluation
from tf_spo.experiment import run as run_lib
from tf_spo.experiment import settings as settings_lib


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
    config = settings_lib.EvalSearchConfig(
        eval_num_particles=particles, eval_depth=depth).search_config(
            algorithms.search_config(smc))
    searches.append(dict(search=algorithms.algorithm_name(smc),
                         budget=f'{particles}x{depth}',
                         model_steps=particles * depth, config=config))
  for simulations in gumbel_simulations:
    config = algorithms.search_config(dict(
        settings, algorithm='gumbel', num_simulations=simulations))
    searches.append(dict(search='gumbel', budget=str(simulations),
                         model_steps=simulations, config=config))
  return searches


def time_search(policy: policy_lib.SearchPolicy, observation: Any,
                repeats: int) -> float:
  """Median milliseconds of one compiled search call (after a warm-up)."""
  seeds = [tf.constant([7, i], tf.int32) for i in range(repeats + 1)]
  # (A continuous search's output has None fields.)
  sync = lambda output: [x.numpy() for x in tf.nest.flatten(output)
                         if x is not None]
  sync(policy.search(observation, seeds[0]))
  times = []
  for seed in seeds[1:]:
    start = time.perf_counter()
    sync(policy.search(observation, seed))
    times.append(time.perf_counter() - start)
  return 1000.0 * statistics.median(times)


def scaling(run: run_lib.Run, searches: List[Dict[str, Any]],
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
  model = builders.make_model(settings, evaluation=True)
  timing_observation = model.observe(
      model.reset(timing_batch, tf.constant([seed, 1], tf.int64)))
  agent = run.agent
  rows = []
  for search in searches:
    policy = policy_lib.search_policy(
        agent.time_step_spec, agent.action_spec, agent.network, run.model,
        search['config'], agent.eta, greedy=True, seed=seed)
    scores = evaluation.evaluate_policy(policy, model, num_episodes, seed)
    row = {key: search[key] for key in ('search', 'budget', 'model_steps')}
    row['ms_per_step'] = time_search(policy, timing_observation,
                                     timing_repeats)
    row.update({metric: scores[metric]
                for metric in builders.metrics(settings)})
    rows.append(row)
    print(f"[scaling] {row['search']} {row['budget']}: "
          f"{row['ms_per_step']:.1f} ms/step " +
          ' '.join(f'{m}={row[m]:.3f}'
                   for m in builders.metrics(settings)),
          flush=True)
  return rows


def write_outputs(rows: List[Dict[str, Any]], metric: str, title: str,
                  output_dir: str, command: str) -> Dict[str, str]:
  """Writes the figure (PNG, PDF) and the table (Markdown, CSV, JSON).

  The JSON holds `command` too, for results pages (`launch.results
  --evaluations=scaling/scaling.json`).
  """
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
    json.dump({'title': title, 'command': command, 'rows': rows}, f,
              indent=2)
  return paths

