"""launch/scaling.py: test-time scaling of the searches on a checkpoint."""

import json
import os

import pytest

from launch import scaling
from tests import conftest
from tf_spo import experiment
from tf_spo.experiment import scaling as scaling_lib


def test_sweep_scores_and_times_every_budget(tiny_run, tmp_path):
  root_dir, _, _ = tiny_run
  output_dir = tmp_path / 'scaling'
  result = conftest.run_cli(
      'launch.scaling', f'--root_dir={root_dir}', '--spo_budgets=2x2,4x2',
      '--gumbel_simulations=4,8', '--level=2', '--num_episodes=8',
      '--timing_repeats=2', f'--output_dir={output_dir}')
  assert result.returncode == 0, result.stderr[-3000:]
  with open(output_dir / 'scaling.json') as f:
    report = json.load(f)
  rows = report['rows']
  # The cube's cpu preset searches with TRT-SMC's message passing and
  # search values: its SMC searches are named trt_smc.
  assert [(r['search'], r['budget'], r['model_steps']) for r in rows] == [
      ('trt_smc', '2x2', 4), ('trt_smc', '4x2', 8), ('gumbel', '4', 4),
      ('gumbel', '8', 8)]
  for row in rows:
    assert 0.0 <= row['solve_rate'] <= 1.0
    assert row['ms_per_step'] > 0.0
  assert 'eval_scramble=2' in report['title']
  assert report['command'] == (
      f'python -m launch.scaling --root_dir={root_dir} --spo_budgets=2x2,4x2 '
      '--gumbel_simulations=4,8 --level=2 --num_episodes=8 '
      f'--timing_repeats=2 --output_dir={output_dir}')
  for kind in ('png', 'pdf', 'md', 'csv'):
    assert os.path.getsize(output_dir / f'scaling.{kind}') > 0
  with open(output_dir / 'scaling.csv') as f:
    assert len(f.read().splitlines()) == 5


def test_budgets_parse_and_bad_ones_name_the_flag():
  assert scaling.parse_budgets('4x4, 16X2,') == [(4, 4), (16, 2)]
  assert scaling.parse_simulations('16,64') == [16, 64]
  for bad in ('4', '4x', '0x4', 'axb', '4x4x4'):
    with pytest.raises(scaling.ScalingError, match='--spo_budgets'):
      scaling.parse_budgets(bad)
  with pytest.raises(scaling.ScalingError, match='--gumbel_simulations'):
    scaling.parse_simulations('16,0')


def test_smc_budgets_keep_the_run_switches_and_cap_the_period():
  settings = experiment.resolve_settings('rubiks_cube', 'trt_smc', {})
  searches = scaling_lib.search_configs(settings, [(8, 2), (16, 4)], [32])
  assert [s['search'] for s in searches] == ['trt_smc', 'trt_smc', 'gumbel']
  first = searches[0]['config']
  assert (first.num_particles, first.depth, first.resample_period) == (8, 2,
                                                                        1)
  assert first.proposal_alpha == settings['proposal_alpha']
  assert searches[2]['config'].num_simulations == 32


def test_gumbel_on_continuous_actions_samples_its_edges():
  settings = experiment.resolve_settings('pendulum', 'cpu', {})
  (gumbel,) = scaling_lib.search_configs(settings, [], [8])
  assert gumbel['config'].num_simulations == 8
  assert gumbel['config'].num_sampled_actions == settings[
      'num_sampled_actions']


def test_sweep_runs_a_continuous_search(tmp_path):
  # The pendulum's Gaussian search (whose output has None fields), on an
  # untrained network: every budget is scored over whole episodes and timed.
  settings = experiment.resolve_settings('pendulum', 'cpu', {})
  run = experiment.build_run(settings, str(tmp_path / 'run'))
  rows = scaling_lib.scaling(
      run, scaling_lib.search_configs(settings, [(2, 2)], [4]), settings,
      num_episodes=2, seed=0, timing_batch=1, timing_repeats=1)
  assert [(r['search'], r['budget']) for r in rows] == [('spo', '2x2'),
                                                         ('gumbel', '4')]
  for row in rows:
    assert row['ms_per_step'] > 0.0
    # Pendulum-v1's reward is in [-16.3, 0] per step, 200 steps.
    assert -16.3 * 200 <= row['mean_return'] <= 0.0


def test_cli_errors_are_one_line(tmp_path):
  result = conftest.run_cli('launch.scaling', f'--root_dir={tmp_path}')
  assert result.returncode != 0
  assert 'has no config.json' in result.stderr
  assert 'Traceback' not in result.stderr
  result = conftest.run_cli('launch.scaling', f'--root_dir={tmp_path}',
                            '--spo_budgets=4', '--gumbel_simulations=')
  assert result.returncode != 0
  assert '--spo_budgets must be' in result.stderr
