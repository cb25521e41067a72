r"""Writes a results page (markdown) from run directories of `launch.train`.

Every number on the page comes from the runs' files: eval.csv (both
policies' headline metric at every evaluation), config.json (the settings
that set a group of runs apart from its env's CPU preset) and
provenance.jsonl (commit, resumes, what else ran). The page starts with the
command that regenerates it.

  python -m launch.results --run_dirs='runs/hc_*' \
      --title='HalfCheetah-v5' --output=docs/results/halfcheetah.md

Runs are grouped by env and by the settings they set apart from the env's
preset (seed, schedule and device settings aside); a group's table has a
row per evaluated env-step count with each seed's search / network score
and the means over the seeds that reached that row.
"""

import csv
import glob
import json
import os
from typing import Any, Dict, List, Sequence

from absl import app
from absl import flags
import numpy as np

from launch import cli
from tf_spo import experiment

FLAGS = flags.FLAGS

# Settings that do not set a group of runs apart.
_IGNORED = (('seed', 'env') + experiment.settings.SCHEDULE_SETTINGS +
            experiment.settings.DEVICE_SETTINGS + ('num_threads',))


def _run_dirs(patterns: List[str]) -> List[str]:
  """Run directories (with config.json) matching the globs, sorted."""
  found = []
  for pattern in patterns:
    matches = [path for path in glob.glob(pattern)
               if os.path.exists(os.path.join(path, experiment.CONFIG_FILE))]
    if not matches:
      raise ValueError(f'--run_dirs: {pattern!r} matches no run directory '
                       '(a directory with config.json).')
    found += matches
  return sorted(set(found))


def _distinct(settings: Dict[str, Any]) -> Dict[str, Any]:
  """The settings of a run that differ from its env's CPU preset."""
  preset = experiment.resolve_settings(settings['env'], 'cpu', {})
  return {name: value for name, value in sorted(settings.items())
          if name not in _IGNORED and preset.get(name) != value}


def _rows(run_dir: str) -> List[Dict[str, str]]:
  path = os.path.join(run_dir, 'eval.csv')
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return list(csv.DictReader(f))


def _number(value: float, metric: str) -> str:
  return f'{value:.3f}' if metric == 'solve_rate' else f'{value:,.0f}'


def _group_table(runs: List[Dict[str, Any]], metric: str) -> List[str]:
  """Markdown lines of a group's table (runs sorted by seed)."""
  by_step = {}
  for index, run in enumerate(runs):
    for row in run['rows']:
      by_step.setdefault(int(row['env_steps']), {})[index] = row
  header = (['env steps'] + [f"seed {run['seed']}" for run in runs] +
            ['mean search', 'mean network'])
  lines = ['| ' + ' | '.join(header) + ' |',
           '|' + '---|' * len(header)]
  for step in sorted(by_step):
    cells, search, network = [f'{step:,}'], [], []
    for index in range(len(runs)):
      row = by_step[step].get(index)
      if row is None:
        cells.append('')
        continue
      values = {kind: float(row[f'{kind}_{metric}'])
                for kind in ('search', 'network') if f'{kind}_{metric}' in row}
      if 'search' in values:
        search.append(values['search'])
      network.append(values['network'])
      cells.append(f"{float(row['wall_clock_s']):,.0f} s: " +
                   ' / '.join(_number(v, metric) for v in values.values()))
    cells.append(_number(np.mean(search), metric) if search else '')
    cells.append(_number(np.mean(network), metric))
    lines.append('| ' + ' | '.join(cells) + ' |')
  return lines


def _evaluation_lines(runs: List[Dict[str, Any]],
                      evaluations: List[str]) -> List[str]:
  """A table of each run's `launch.evaluate --output` files, if any.

  A row per seed, a column per file name (the mean return, or the solve
  rate, of its first level), a mean row; then the commands that wrote them,
  with the run directory written as <run_dir>.
  """
  found = {}
  for run in runs:
    for name in evaluations:
      path = os.path.join(run['dir'], name)
      if os.path.exists(path):
        with open(path) as f:
          found[run['dir'], name] = json.load(f)
  if not found:
    return []
  metric = experiment.metrics(runs[0]['settings'])[0]
  lines = ['Evaluations after training:', '',
           '| seed | ' + ' | '.join(f'`{n}`' for n in evaluations) + ' |',
           '|' + '---|' * (len(evaluations) + 1)]
  columns = {name: [] for name in evaluations}
  for run in runs:
    cells = [str(run['seed'])]
    for name in evaluations:
      record = found.get((run['dir'], name))
      if record is None:
        cells.append('')
        continue
      value = next(iter(record['results'].values()))[metric]
      columns[name].append(value)
      cells.append(_number(value, metric))
    lines.append('| ' + ' | '.join(cells) + ' |')
  lines.append('| mean | ' + ' | '.join(
      _number(np.mean(values), metric) if values else ''
      for values in columns.values()) + ' |')
  commands = sorted({record['command'].replace(run_dir, '<run_dir>')
                     for (run_dir, _), record in found.items()})
  lines += ['', 'by', ''] + [f'    {command}' for command in commands] + ['']
  return lines


def _provenance_lines(runs: List[Dict[str, Any]]) -> List[str]:
  lines = []
  for run in runs:
    starts = experiment.read_provenance(run['dir'])
    if not starts:
      lines.append(f"- `{run['dir']}`: no provenance.jsonl (a run from "
                   'before it was recorded).')
      continue
    parts = []
    for start in starts:
      resumed = start['resumed_from_env_steps']
      others = [job for job in start['other_jobs'] if 'launch.' in job
                or 'pytest' in job]
      parts.append(
          f"{start['started']} at {start['commit']}"
          + ('' if resumed is None else f', resumed from {resumed:,} steps')
          + (f', beside {len(others)} other job(s): '
             + '; '.join(f'`{job[:120]}`' for job in others)
             if others else ', alone'))
    lines.append(f"- `{run['dir']}` (seed {run['seed']}): " +
                 ' | '.join(parts))
  return lines


def page(run_dirs: List[str], title: str, command: str,
         evaluations: Sequence[str] = ()) -> str:
  """The markdown page of the runs."""
  groups = {}
  for run_dir in run_dirs:
    settings = experiment.read_settings(run_dir)
    distinct = _distinct(settings)
    key = (settings['env'], tuple(distinct.items()))
    groups.setdefault(key, []).append(dict(
        dir=run_dir, seed=settings['seed'], rows=_rows(run_dir),
        settings=settings))
  lines = experiment.page_header(
      title, command, 'Generated from the run directories by') + [
          'Cells: training wall-clock, then search / network policy score '
          '(the network alone for an algorithm without search) '
          "(the env's headline metric) at each evaluation.", '']
  for (env, distinct), runs in sorted(groups.items(),
                                      key=lambda item: str(item[0])):
    runs.sort(key=lambda run: run['seed'])
    metric = experiment.metrics(runs[0]['settings'])[0]
    settings = ', '.join(f'--{name}={value}' for name, value in distinct)
    lines += [f'## {env}: {settings or "the CPU preset"}', '',
              f'Metric: {metric} over {runs[0]["settings"]["eval_episodes"]}'
              ' episodes per evaluation.', '']
    lines += _group_table(runs, metric) + ['']
    lines += _evaluation_lines(runs, list(evaluations))
    lines += ['Runs:', ''] + _provenance_lines(runs) + ['']
  return '\n'.join(lines)


def main(argv):
  """Writes the page of --run_dirs to --output."""
  del argv
  try:
    run_dirs = _run_dirs(FLAGS.run_dirs)
  except ValueError as error:
    raise app.UsageError(cli.flag_wording(error)) from error
  text = page(run_dirs, FLAGS.title,
              experiment.command_line('launch.results'), FLAGS.evaluations)
  experiment.write_page(FLAGS.output, text)
  print(f'[results] wrote {FLAGS.output} from {len(run_dirs)} runs')


def run():
  """Defines the flags and runs `main`."""
  flags.DEFINE_list('run_dirs', None, 'Comma-separated globs of launch.train '
                    'run directories.', required=True)
  flags.DEFINE_string('title', 'Results', 'Title of the page.')
  flags.DEFINE_string('output', 'docs/results/results.md', 'Page to write.')
  flags.DEFINE_list('evaluations', [], 'File names of `launch.evaluate '
                    '--output` results inside each run directory to tabulate '
                    '(e.g. gym_search.json).')
  app.run(main)


if __name__ == '__main__':
  run()
