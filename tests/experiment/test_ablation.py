"""Tests of launch/ablation.py (the runs themselves are launch.train's)."""

import json
import os

import pytest

from launch import ablation
from tests import conftest


def test_budgets_and_variants_become_train_flags():
  assert ablation.parse_budget('8x4') == {
      'num_particles': 8, 'depth': 4, 'resample_period': 2}
  assert ablation.parse_budget('4x1')['resample_period'] == 1
  flags = ablation.train_flags('trt_smc', '4x4', 3, ['--eval_episodes=8'])
  assert '--proposal_alpha=0.1' in flags
  assert '--policy_inference=message_passing' in flags
  assert '--seed=3' in flags and flags[-1] == '--eval_episodes=8'
  assert ablation.train_flags('spo', '4x4', 0, []) == [
      '--num_particles=4', '--depth=4', '--resample_period=2', '--seed=0']
  for bad in ('4', '0x4', 'axb'):
    with pytest.raises(ValueError, match='--budgets'):
      ablation.parse_budget(bad)


def write_run(root_dir, variant, budget, seed, rates):
  path = ablation.run_dir(str(root_dir), variant, budget, seed)
  os.makedirs(path)
  with open(os.path.join(path, 'eval.csv'), 'w') as f:
    f.write('env_steps,wall_clock_s,train_steps,search_solve_rate,'
            'network_solve_rate,search_mean_length\n')
    for i, rate in enumerate(rates):
      f.write(f'{1000 * i},{10.0 * i},{i},{rate},0.0,20.0\n')
  with open(os.path.join(path, 'summary.json'), 'w') as f:
    json.dump({}, f)


def test_summary_table_averages_seeds(tmp_path):
  write_run(tmp_path, 'spo', '4x4', 0, [0.0, 0.1, 0.2, 0.3, 0.4])
  write_run(tmp_path, 'spo', '4x4', 1, [0.0, 0.1, 0.2, 0.3, 0.6])
  write_run(tmp_path, 'trt_smc', '4x4', 0, [0.0, 0.2, 0.4, 0.6, 0.8])
  table = ablation.summarise(str(tmp_path), ['spo', 'trt_smc'], ['4x4'],
                             [0, 1])
  rows = table.strip().splitlines()
  assert rows[0].endswith('curve at 0 / 1,000 / 2,000 / 3,000 / 4,000 env '
                          'steps | wall-clock s |')
  assert rows[2] == ('| spo | 4x4 | 2 | 0.500 ± 0.141 | '
                     '0.000 / 0.100 / 0.200 / 0.300 / 0.500 | 40 |')
  assert rows[3].startswith('| trt_smc | 4x4 | 1 | 0.800 ± 0.000 |')


def test_cli_rejects_unknown_variants():
  result = conftest.run_cli('launch.ablation', '--variants=spo,magic')
  assert result.returncode != 0
  assert '--variants must be among' in result.stderr
