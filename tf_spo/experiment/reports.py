"""rliable statistics, figures and tables over training runs.

`report` reads run directories (config.json and eval.csv), groups them by
algorithm and env (the seeds are a group's runs), and writes the aggregate
figures, tables and report.json that `launch.report` documents. Needs the
`report` extra (rliable, matplotlib).
"""

import csv
import glob
import json
import os
from typing import Any, Dict, List, NamedTuple, Sequence
import warnings

import numpy as np

from environments import registry
from tf_spo.experiment import algorithms
from tf_spo.experiment import evaluation
from tf_spo.experiment import run as run_lib

AGGREGATES = ('IQM', 'Mean', 'Median', 'Optimality gap')
FIGURES = ('aggregates', 'probability_of_improvement', 'profiles',
           'curves_env_steps', 'curves_wall_clock')


class ReportError(ValueError):
  """A run directory or flag the report cannot use; the message names it."""


class RunRecord(NamedTuple):
  """One run: its algorithm, env, seed and evaluation curve.

  `env_steps`, `wall_clock_s` and `scores` are [E] arrays, one per row of
  eval.csv; `scores` is the env's headline metric of the chosen policy.
  """
  run_dir: str
  algorithm: str
  env: str
  seed: int
  metric: str
  env_steps: np.ndarray
  wall_clock_s: np.ndarray
  scores: np.ndarray


def read_run(run_dir: str, policy: str = 'search') -> RunRecord:
  """Reads a run's config.json and eval.csv.

  `policy` is 'search' or 'network'; a run whose algorithm has no search
  (PPO) is scored by its network, the policy it acts with, either way.

  Raises:
    ReportError: naming `run_dir` if a file or column is missing or
      eval.csv has no rows.
  """
  try:
    settings = run_lib.read_settings(run_dir)
  except (run_lib.RunPathError, ValueError) as error:
    raise ReportError(f'{run_dir}: not a launch.train run ({error})') from None
  path = os.path.join(run_dir, 'eval.csv')
  if not os.path.exists(path):
    raise ReportError(f'{run_dir}: no eval.csv (has the run evaluated yet?)')
  env = settings.get('env')
  if env not in registry.ENVS:
    raise ReportError(f'{run_dir}: config.json names an unknown env {env!r}')
  metric = registry.entry(env).metrics[0]
  acting = evaluation.policies(settings)
  column = f'{policy if policy in acting else acting[0]}_{metric}'
  with open(path) as f:
    rows = list(csv.DictReader(f))
  if not rows:
    raise ReportError(f'{run_dir}: eval.csv has no rows')
  for name in ('env_steps', 'wall_clock_s', column):
    if name not in rows[0]:
      raise ReportError(f'{run_dir}: eval.csv has no column {name!r}')
  return RunRecord(
      run_dir, algorithms.algorithm_name(settings), env,
      int(settings['seed']), metric,
      np.array([int(row['env_steps']) for row in rows]),
      np.array([float(row['wall_clock_s']) for row in rows]),
      np.array([float(row[column]) for row in rows]))


def find_runs(patterns: Sequence[str]) -> List[str]:
  """Run directories matching comma-separated globs, in sorted order.

  Raises:
    ReportError: naming run_dirs if a pattern matches no directory.
  """
  run_dirs = []
  for pattern in patterns:
    matches = sorted(path for path in glob.glob(pattern)
                     if os.path.isdir(path))
    if not matches:
      raise ReportError(f'run_dirs: {pattern!r} matches no directory')
    run_dirs += matches
  return sorted(set(run_dirs))


Groups = Dict[str, Dict[str, List[RunRecord]]]


def group_runs(records: Sequence[RunRecord]) -> Groups:
  """{algorithm: {env: runs sorted by seed}}, checked for comparability.

  Raises:
    ReportError: naming a run directory if two runs of a group share a
      seed or evaluate at different env steps, or if an algorithm lacks an
      env that another has, or has a different number of runs on some env.
  """
  groups: Groups = {}
  for record in records:
    groups.setdefault(record.algorithm, {}).setdefault(
        record.env, []).append(record)
  envs = sorted({record.env for record in records})
  for algorithm, by_env in sorted(groups.items()):
    for env, runs in by_env.items():
      runs.sort(key=lambda run: run.seed)
      for first, run in zip(runs, runs[1:]):
        if run.seed == first.seed:
          raise ReportError(f'{run.run_dir}: seed {run.seed} of {algorithm} '
                            f'on {env} again (also {first.run_dir})')
      for run in runs[1:]:
        if not np.array_equal(run.env_steps, runs[0].env_steps):
          raise ReportError(
              f'{run.run_dir}: evaluated at other env steps than '
              f'{runs[0].run_dir} (same algorithm and env); give the runs '
              'the same total_env_steps and eval_interval')
  for algorithm, by_env in sorted(groups.items()):
    missing = [env for env in envs if env not in by_env]
    if missing:
      some_run = next(iter(by_env.values()))[0].run_dir
      raise ReportError(f'{some_run}: {algorithm} has no runs on {missing}, '
                        'which other algorithms have; every algorithm needs '
                        'the same envs')
  for algorithm, by_env in sorted(groups.items()):
    counts = {env: len(runs) for env, runs in by_env.items()}
    if len(set(counts.values())) > 1:
      env = min(counts, key=counts.get)
      raise ReportError(f'{by_env[env][0].run_dir}: {algorithm} has '
                        f'{counts} runs per env; every env needs as many')
  return groups


def normalizers(records: Sequence[RunRecord]) -> Dict[str, tuple]:
  """Per env (low, high): (0, 1) for solve rates, else min and max seen."""
  result = {}
  for env in sorted({record.env for record in records}):
    runs = [record for record in records if record.env == env]
    if runs[0].metric == 'solve_rate':
      result[env] = (0.0, 1.0)
    else:
      scores = np.concatenate([run.scores for run in runs])
      result[env] = (float(scores.min()), float(scores.max()))
  return result


def normalized(scores: np.ndarray, low_high: tuple) -> np.ndarray:
  """(scores - low) / (high - low); zeros when every score is the same."""
  low, high = low_high
  return (scores - low) / (high - low) if high > low else scores * 0.0


def final_scores(groups: Groups, norms: Dict[str, tuple]
                 ) -> Dict[str, np.ndarray]:
  """{algorithm: [runs, envs] normalised final scores}, envs sorted."""
  return {
      algorithm: np.stack([
          normalized(np.array([run.scores[-1] for run in by_env[env]]),
                     norms[env]) for env in sorted(by_env)], axis=1)
      for algorithm, by_env in groups.items()}


def _aggregate(scores: np.ndarray) -> np.ndarray:
  """IQM, mean, median and optimality gap of a [runs, envs] matrix."""
  from rliable import metrics  # pylint: disable=g-import-not-at-top
  return np.array([metrics.aggregate_iqm(scores),
                   metrics.aggregate_mean(scores),
                   metrics.aggregate_median(scores),
                   metrics.aggregate_optimality_gap(scores)])


def interval_estimates(score_dict: Dict[str, Any], func, reps: int,
                       seed: int, confidence: float = 0.95):
  """rliable's stratified bootstrap: ({key: point}, {key: [2, ...] CI})."""
  from rliable import library as rly  # pylint: disable=g-import-not-at-top
  with warnings.catch_warnings():
    # arch deprecates the RandomState that rliable hands it.
    warnings.simplefilter('ignore', FutureWarning)
    return rly.get_interval_estimates(
        score_dict, func, reps=reps, confidence_interval_size=confidence,
        random_state=np.random.RandomState(seed))


def score_distributions(scores: np.ndarray, taus: np.ndarray) -> np.ndarray:
  """The fraction of `scores` [runs, envs] above each of `taus` [T]: [T].

  rliable's default performance profile (`library.score_distributions`), in
  one array operation instead of a Python call per threshold: the same
  values, about 30x faster per bootstrap draw with 101 thresholds.
  """
  return np.mean(scores[..., None] > np.asarray(taus),
                 axis=tuple(range(np.ndim(scores))))


def iqm_with_interval(scores: np.ndarray, reps: int, seed: int
                      ) -> List[float]:
  """[IQM, CI low, CI high] of a [runs, envs] matrix."""
  from rliable import metrics  # pylint: disable=g-import-not-at-top
  points, intervals = interval_estimates(
      {'x': scores}, lambda x: np.array([metrics.aggregate_iqm(x)]), reps,
      seed)
  return [float(points['x'][0]), float(intervals['x'][0, 0]),
          float(intervals['x'][1, 0])]


def probabilities_of_improvement(scores: Dict[str, np.ndarray], reps: int,
                                 seed: int):
  """P(X > Y) with intervals, for every ordered pair of algorithms."""
  from rliable import metrics  # pylint: disable=g-import-not-at-top
  pairs = {f'{x},{y}': (scores[x], scores[y])
           for x in sorted(scores) for y in sorted(scores) if x != y}
  if not pairs:
    return {}, {}
  return interval_estimates(pairs, metrics.probability_of_improvement, reps,
                            seed)


def curves(groups: Groups, norms: Dict[str, tuple], reps: int, seed: int):
  """Per (algorithm, env): the IQM over seeds at each evaluation, with CIs.

  Returns:
    {algorithm: {env: {'env_steps', 'wall_clock_s', 'iqm', 'ci_low',
    'ci_high'}}}, lists of length E (wall-clock is the mean over seeds).
  """
  from rliable import metrics  # pylint: disable=g-import-not-at-top
  result = {}
  for algorithm, by_env in groups.items():
    result[algorithm] = {}
    for env, runs in by_env.items():
      # [runs, 1 task, E evaluations].
      matrix = np.stack([normalized(run.scores, norms[env]) for run in runs])
      matrix = matrix[:, None, :]
      points, intervals = interval_estimates(
          {'curve': matrix},
          lambda x: np.array([metrics.aggregate_iqm(x[..., e])
                              for e in range(x.shape[-1])]), reps, seed)
      result[algorithm][env] = {
          'env_steps': runs[0].env_steps.tolist(),
          'wall_clock_s': np.mean([run.wall_clock_s for run in runs],
                                  axis=0).tolist(),
          'iqm': points['curve'].tolist(),
          'ci_low': intervals['curve'][0].tolist(),
          'ci_high': intervals['curve'][1].tolist()}
  return result


def _save(figure, output_dir: str, name: str) -> List[str]:
  paths = []
  for extension in ('png', 'pdf'):
    path = os.path.join(output_dir, f'{name}.{extension}')
    figure.savefig(path, bbox_inches='tight', dpi=120)
    paths.append(path)
  return paths


def write_figures(result: Dict[str, Any], output_dir: str) -> List[str]:
  """Writes the figures of `FIGURES` (PNG and PDF); returns their paths."""
  import matplotlib as mpl  # pylint: disable=g-import-not-at-top
  mpl.use('Agg')
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
  from matplotlib import ticker  # pylint: disable=g-import-not-at-top
  from rliable import plot_utils  # pylint: disable=g-import-not-at-top

  algorithms = sorted(result['aggregates'])
  paths = []
  points = {a: np.array(result['aggregates'][a]['point'])
            for a in algorithms}
  intervals = {a: np.array(result['aggregates'][a]['interval'])
               for a in algorithms}
  figure, _ = plot_utils.plot_interval_estimates(
      points, intervals, metric_names=list(AGGREGATES),
      algorithms=algorithms, xlabel='Normalised score',
      xlabel_y_coordinate=-1.6 / len(algorithms))
  paths += _save(figure, output_dir, 'aggregates')
  plt.close(figure)

  improvement = result['probability_of_improvement']
  figure, axis = plt.subplots(figsize=(5, 0.6 + 0.5 * max(len(improvement),
                                                          1)))
  labels = list(improvement)
  for row, pair in enumerate(labels):
    low, high = improvement[pair]['interval']
    axis.barh(row, high - low, left=low, height=0.6, alpha=0.7)
    axis.plot([improvement[pair]['point']] * 2, [row - 0.3, row + 0.3], 'k')
  axis.set_yticks(range(len(labels)),
                  [f'P({pair.replace(",", " > ")})' for pair in labels])
  axis.axvline(0.5, color='grey', linestyle='--')
  axis.set_xlim(0, 1)
  axis.set_xlabel('Probability of improvement')
  paths += _save(figure, output_dir, 'probability_of_improvement')
  plt.close(figure)

  profiles = result['profiles']
  figure, axis = plt.subplots(figsize=(5, 3.5))
  plot_utils.plot_performance_profiles(
      {a: np.array(profiles[a]['fraction']) for a in algorithms},
      np.array(profiles['tau']),
      performance_profile_cis={
          a: np.array(profiles[a]['interval']) for a in algorithms},
      xlabel=r'Normalised score $\tau$', ax=axis, legend=True)
  paths += _save(figure, output_dir, 'profiles')
  plt.close(figure)

  envs = sorted(next(iter(result['curves'].values())))
  for x_key, name, label in (('env_steps', 'curves_env_steps', 'Env steps'),
                             ('wall_clock_s', 'curves_wall_clock',
                              'Training wall-clock (s)')):
    figure, axes = plt.subplots(1, len(envs), figsize=(4.5 * len(envs), 3.5),
                                squeeze=False)
    for axis, env in zip(axes[0], envs):
      for algorithm in algorithms:
        curve = result['curves'][algorithm][env]
        axis.plot(curve[x_key], curve['iqm'], label=algorithm)
        axis.fill_between(curve[x_key], curve['ci_low'], curve['ci_high'],
                          alpha=0.2)
      axis.set_title(env)
      axis.xaxis.set_major_formatter(ticker.EngFormatter(sep=''))
      axis.set_xlabel(label)
      axis.set_ylabel('IQM normalised score')
      axis.legend()
    paths += _save(figure, output_dir, name)
    plt.close(figure)
  return paths


def write_tables(result: Dict[str, Any], output_dir: str) -> List[str]:
  """table.csv and table.md: final scores per env, then the aggregates."""
  header = ['algorithm', 'env', 'runs', 'metric', 'final mean (raw)',
            'IQM', 'IQM CI low', 'IQM CI high']
  rows = []
  for algorithm, by_env in sorted(result['per_env'].items()):
    for env, entry in sorted(by_env.items()):
      rows.append([algorithm, env, entry['runs'], entry['metric'],
                   entry['raw_mean'], *entry['iqm']])
    aggregate = result['aggregates'][algorithm]
    rows.append([algorithm, 'all (normalised)', aggregate['runs'], '',
                 '', aggregate['point'][0], aggregate['interval'][0][0],
                 aggregate['interval'][1][0]])
  csv_path = os.path.join(output_dir, 'table.csv')
  with open(csv_path, 'w', newline='') as f:
    writer = csv.writer(f)
    writer.writerow(header)
    writer.writerows(rows)

  def cell(value):
    return f'{value:.3f}' if isinstance(value, float) else str(value)

  lines = ['| ' + ' | '.join(header) + ' |',
           '|' + '---|' * len(header)]
  lines += ['| ' + ' | '.join(cell(v) for v in row) + ' |' for row in rows]
  lines += ['', '| algorithm | ' + ' | '.join(
      f'{name} [95% CI]' for name in AGGREGATES) + ' |',
            '|---|' + '---|' * len(AGGREGATES)]
  for algorithm, aggregate in sorted(result['aggregates'].items()):
    lines.append(f'| {algorithm} | ' + ' | '.join(
        f'{point:.3f} [{low:.3f}, {high:.3f}]'
        for point, low, high in zip(aggregate['point'],
                                    *aggregate['interval'])) + ' |')
  if result['probability_of_improvement']:
    lines += ['', '| comparison | P(X > Y) [95% CI] |', '|---|---|']
    for pair, entry in result['probability_of_improvement'].items():
      x, y = pair.split(',')
      low, high = entry['interval']
      lines.append(f'| P({x} > {y}) | {entry["point"]:.3f} '
                   f'[{low:.3f}, {high:.3f}] |')
  md_path = os.path.join(output_dir, 'table.md')
  with open(md_path, 'w') as f:
    f.write('\n'.join(lines) + '\n')
  return [csv_path, md_path]


def report(run_dirs: Sequence[str], output_dir: str, policy: str = 'search',
           reps: int = 2000, seed: int = 0) -> Dict[str, Any]:
  """Computes every statistic of the runs and writes figures and tables.

  Args:
    run_dirs: run directories of `launch.train`.
    output_dir: where the figures, tables and report.json go (created).
    policy: 'search' or 'network', whose eval.csv columns are scored.
    reps: bootstrap resamples.
    seed: seed of the bootstrap.

  Returns:
    The contents of report.json; its 'warnings' name the groups of one run.

  Raises:
    ReportError: naming the run directory or flag at fault.
  """
  if policy not in ('search', 'network'):
    raise ReportError(f"policy must be 'search' or 'network', got "
                      f'{policy!r}')
  if reps < 10:
    raise ReportError(f'reps must be >= 10, got {reps}')
  if not run_dirs:
    raise ReportError('run_dirs: no run directories given')
  records = [read_run(run_dir, policy) for run_dir in run_dirs]
  groups = group_runs(records)
  norms = normalizers(records)
  scores = final_scores(groups, norms)
  points, intervals = interval_estimates(scores, _aggregate, reps, seed)
  improvement_points, improvement_intervals = probabilities_of_improvement(
      scores, reps, seed)
  from rliable import library as rly  # pylint: disable=g-import-not-at-top
  taus = np.linspace(0.0, 1.0, 101)
  # Its bootstrap draws from NumPy's global generator.
  np.random.seed(seed)
  profiles, profile_cis = rly.create_performance_profile(
      scores, taus, custom_profile_func=score_distributions, reps=reps)
  result = {
      'policy': policy,
      'normalization': {env: list(low_high) for env, low_high in
                        norms.items()},
      'per_env': {
          algorithm: {env: {
              'runs': len(runs), 'metric': runs[0].metric,
              'run_dirs': [run.run_dir for run in runs],
              'raw_mean': float(np.mean([run.scores[-1] for run in runs])),
              'iqm': iqm_with_interval(normalized(
                  np.array([[run.scores[-1]] for run in runs]), norms[env]),
                                       reps, seed)}
                      for env, runs in by_env.items()}
          for algorithm, by_env in groups.items()},
      'aggregates': {algorithm: {
          'runs': int(scores[algorithm].size),
          'point': points[algorithm].tolist(),
          'interval': intervals[algorithm].tolist()}
                     for algorithm in scores},
      'probability_of_improvement': {pair: {
          'point': float(improvement_points[pair]),
          'interval': np.ravel(improvement_intervals[pair]).tolist()}
                                     for pair in improvement_points},
      'profiles': {'tau': taus.tolist(), **{algorithm: {
          'fraction': profiles[algorithm].tolist(),
          'interval': profile_cis[algorithm].tolist()}
                                            for algorithm in scores}},
      'curves': curves(groups, norms, reps, seed),
      # A group of one seed has intervals of zero width: say so.
      'warnings': [
          f'{algorithm} on {env} has 1 run: its intervals are its score '
          'alone; run more seeds for intervals that say something'
          for algorithm, by_env in groups.items()
          for env, runs in by_env.items() if len(runs) == 1],
  }
  os.makedirs(output_dir, exist_ok=True)
  result['files'] = (write_figures(result, output_dir) +
                     write_tables(result, output_dir))
  with open(os.path.join(output_dir, 'report.json'), 'w') as f:
    json.dump(result, f, indent=1)
  return result
