r"""TRT-SMC ablation on the Rubik's Cube: SPO vs each switch vs all switches.

Runs `launch.train` once per (variant, particle budget, seed), one run after
the other in subprocesses (each run owns the machine), skipping runs that
already finished, so an interrupted ablation resumes. Then writes
`<root_dir>/ablation.md`: the mean and spread over seeds of the final solve
rate of the greedy search policy on held-out 7-scramble cubes, its mean at
every evaluation (solve rate vs env steps) and the training wall-clock.

  python -m launch.ablation --root_dir=runs/ablation --seeds=0,1 \
      --budgets=4x4,8x8 --total_env_steps=300000
"""

import csv
import json
import os
import statistics
import subprocess
import sys
from typing import Dict, List, Sequence

from absl import app
from absl import flags

from launch import cli

FLAGS = flags.FLAGS

# Settings each variant adds to SPO (paper 001, tables 6 and 7), and
# ESS-adaptive resampling (resample a root only when its ESS < N / 2).
VARIANTS = {
    'spo': {},
    'ess_adaptive': {'ess_threshold': 0.5},
    'twisted_proposal': {'proposal_alpha': 0.1},
    'revived_resampling': {'revived_resampling': True},
    'message_passing': {'policy_inference': 'message_passing'},
    'search_values': {'search_value_weight': 0.5},
    'trt_smc': {'proposal_alpha': 0.1, 'revived_resampling': True,
                'policy_inference': 'message_passing',
                'search_value_weight': 0.5},
}


def parse_budget(budget: str) -> Dict[str, int]:
  """'KxM' -> particles K, depth M, resampling every max(M // 2, 1) steps."""
  try:
    particles, depth = (int(x) for x in budget.lower().split('x'))
  except ValueError as error:
    raise ValueError(f'--budgets entries must look like 4x4, got '
                     f'{budget!r}.') from error
  if particles < 1 or depth < 1:
    raise ValueError(f'--budgets entries must be >= 1x1, got {budget!r}.')
  return {'num_particles': particles, 'depth': depth,
          'resample_period': max(depth // 2, 1)}


def run_dir(root_dir: str, variant: str, budget: str, seed: int) -> str:
  """The run directory of one (variant, budget, seed)."""
  return os.path.join(root_dir, f'{variant}_{budget}_seed{seed}')


def train_flags(variant: str, budget: str, seed: int,
                extra: Sequence[str]) -> List[str]:
  """The launch.train flags of one run, then `extra`."""
  settings = dict(VARIANTS[variant], **parse_budget(budget), seed=seed)
  return [f'--{name}={value}' for name, value in settings.items()] + list(
      extra)


def read_eval(path: str) -> List[Dict[str, float]]:
  """The rows of a run's eval.csv."""
  with open(os.path.join(path, 'eval.csv')) as f:
    return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def summarise(root_dir: str, variants: Sequence[str], budgets: Sequence[str],
              seeds: Sequence[int]) -> str:
  """Markdown table of the finished runs.

  The curve column is the mean over seeds of the search solve rate at each
  evaluation (the env steps of the header row, which all runs share).
  """
  lines = []
  for budget in budgets:
    for variant in variants:
      curves = [read_eval(run_dir(root_dir, variant, budget, seed))
                for seed in seeds
                if os.path.exists(os.path.join(
                    run_dir(root_dir, variant, budget, seed), 'summary.json'))]
      if not curves:
        continue
      if not lines:
        steps = ' / '.join(f'{int(row["env_steps"]):,}' for row in curves[0])
        lines = [f'| variant | budget | seeds | final solve rate (mean ± sd) | '
                 f'curve at {steps} env steps | wall-clock s |',
                 '|---|---|---|---|---|---|']
      finals = [c[-1]['search_solve_rate'] for c in curves]
      spread = statistics.stdev(finals) if len(finals) > 1 else 0.0
      curve = ' / '.join(
          f'{statistics.mean(c[i]["search_solve_rate"] for c in curves):.3f}'
          for i in range(min(len(c) for c in curves)))
      clock = statistics.mean(c[-1]['wall_clock_s'] for c in curves)
      lines.append(f'| {variant} | {budget} | {len(curves)} | '
                   f'{statistics.mean(finals):.3f} ± {spread:.3f} | {curve} | '
                   f'{clock:.0f} |')
  return '\n'.join(lines) + '\n'


def main(argv):
  """Runs the missing runs one after the other, then summarises."""
  del argv
  variants = FLAGS.variants
  unknown = sorted(set(variants) - set(VARIANTS))
  if unknown:
    raise app.UsageError(f'--variants must be among {sorted(VARIANTS)}, got '
                         f'{unknown}.')
  with cli.flag_errors():
    for budget in FLAGS.budgets:
      parse_budget(budget)
  seeds = [int(s) for s in FLAGS.seeds]
  extra = [f'--total_env_steps={FLAGS.total_env_steps}',
           f'--eval_interval={FLAGS.eval_interval}',
           f'--eval_episodes={FLAGS.eval_episodes}',
           f'--checkpoint_interval={FLAGS.total_env_steps}',
           f'--log_interval={FLAGS.eval_interval}'] + list(FLAGS.train_flags)
  for seed in seeds:
    for budget in FLAGS.budgets:
      for variant in variants:
        path = run_dir(FLAGS.root_dir, variant, budget, seed)
        if os.path.exists(os.path.join(path, 'summary.json')):
          continue
        print(f'[ablation] {variant} {budget} seed {seed}', flush=True)
        subprocess.run(
            [sys.executable, '-m', 'launch.train', f'--root_dir={path}'] +
            train_flags(variant, budget, seed, extra), check=True)
  table = summarise(FLAGS.root_dir, variants, FLAGS.budgets, seeds)
  with open(os.path.join(FLAGS.root_dir, 'ablation.md'), 'w') as f:
    f.write(table)
  with open(os.path.join(FLAGS.root_dir, 'ablation.json'), 'w') as f:
    json.dump({'variants': {v: VARIANTS[v] for v in variants},
               'budgets': {b: parse_budget(b) for b in FLAGS.budgets},
               'seeds': seeds, 'train_flags': extra}, f, indent=2)
  print(table)


def run():
  """Defines the flags and runs `main`."""
  flags.DEFINE_string('root_dir', 'runs/ablation', 'Directory of all runs.')
  flags.DEFINE_list('variants', list(VARIANTS), 'Variants to run.')
  flags.DEFINE_list('budgets', ['4x4', '8x8'], 'Particle budgets KxM: K '
                    'particles, depth M, resampling every M // 2 steps.')
  flags.DEFINE_list('seeds', ['0', '1'], 'Seeds.')
  flags.DEFINE_integer('total_env_steps', 300_000, 'Env steps per run.')
  flags.DEFINE_integer('eval_interval', 50_000, 'Eval every this many steps.')
  flags.DEFINE_integer('eval_episodes', 200, 'Held-out cubes per eval.')
  flags.DEFINE_multi_string('train_flags', [], 'Extra launch.train flags, '
                            'e.g. --train_flags=--num_envs=32.')
  cli.run(main)


if __name__ == '__main__':
  run()
