"""Tests of launch/reports.py on fabricated run directories."""

import os

import numpy as np
import pytest

from tests import conftest
from tests.support.runs import ENV_STEPS
from tests.support.runs import fabricate
from tf_spo import experiment
from tf_spo.experiment import reports

SPO_CUBE = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]
TRT_CUBE = [0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
# Snake returns; min-max normalised over every evaluation (min 0, max 60).
SPO_SNAKE = [10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 15.0, 25.0]
TRT_SNAKE = [30.0, 35.0, 40.0, 45.0, 50.0, 55.0, 20.0, 5.0]


def fabricate_all(root):
  return [fabricate(root, algorithm, env, seed, final)
          for algorithm, env, finals in (
              ('spo', 'rubiks_cube', SPO_CUBE),
              ('trt_smc', 'rubiks_cube', TRT_CUBE),
              ('spo', 'snake', SPO_SNAKE), ('trt_smc', 'snake', TRT_SNAKE))
          for seed, final in enumerate(finals)]


def iqm(values):
  """Mean of the middle half of the sorted values (a multiple of 4)."""
  values = np.sort(np.ravel(values))
  quarter = len(values) // 4
  return float(np.mean(values[quarter:len(values) - quarter]))


def probability_of_improvement(x, y):
  """P(X > Y) + P(X = Y) / 2 over all pairs of runs (one env)."""
  return float(np.mean([[1.0 if a > b else 0.5 if a == b else 0.0
                         for b in y] for a in x]))


@pytest.fixture(scope='module', name='result')
def fixture_result(tmp_path_factory):
  root = str(tmp_path_factory.mktemp('runs'))
  fabricated = fabricate_all(root)
  run_dirs = reports.find_runs([os.path.join(root, 'spo_*'),
                               os.path.join(root, 'trt_smc_*')])
  assert run_dirs == sorted(fabricated)
  return reports.report(run_dirs, os.path.join(root, 'report'), reps=500), root


def test_per_env_iqm_and_normalisation_are_the_hand_computed_ones(result):
  result, _ = result
  assert result['normalization'] == {'rubiks_cube': [0.0, 1.0],
                                     'snake': [0.0, 60.0]}
  per_env = result['per_env']
  assert per_env['spo']['rubiks_cube']['iqm'][0] == pytest.approx(0.45)
  assert per_env['trt_smc']['rubiks_cube']['iqm'][0] == pytest.approx(0.65)
  assert per_env['spo']['snake']['iqm'][0] == pytest.approx(
      iqm(np.array(SPO_SNAKE) / 60))
  assert per_env['spo']['snake']['raw_mean'] == pytest.approx(
      np.mean(SPO_SNAKE))
  for algorithm in ('spo', 'trt_smc'):
    for entry in per_env[algorithm].values():
      point, low, high = entry['iqm']
      assert low <= point <= high and entry['runs'] == 8


def test_aggregates_over_envs_are_the_hand_computed_ones(result):
  result, _ = result
  spo = np.stack([SPO_CUBE, np.array(SPO_SNAKE) / 60], axis=1)
  point = result['aggregates']['spo']['point']
  assert point[0] == pytest.approx(iqm(spo))
  assert point[1] == pytest.approx(spo.mean())
  assert point[2] == pytest.approx(np.median(spo.mean(axis=0)))
  # Optimality gap: mean shortfall below 1.
  assert point[3] == pytest.approx(np.mean(1 - spo))
  low, high = np.array(result['aggregates']['spo']['interval'])
  assert np.all(low <= np.array(point) + 1e-9)
  assert np.all(np.array(point) <= high + 1e-9)


def test_probability_of_improvement_is_the_hand_computed_one(result):
  result, _ = result
  # Averaged over the envs.
  expected = np.mean([
      probability_of_improvement(TRT_CUBE, SPO_CUBE),
      probability_of_improvement(TRT_SNAKE, SPO_SNAKE)])
  improvement = result['probability_of_improvement']
  assert improvement['trt_smc,spo']['point'] == pytest.approx(expected)
  assert improvement['spo,trt_smc']['point'] == pytest.approx(1 - expected)
  low, high = improvement['trt_smc,spo']['interval']
  assert low <= expected <= high


def test_curves_profiles_and_files(result):
  result, root = result
  curve = result['curves']['trt_smc']['rubiks_cube']
  assert curve['env_steps'] == ENV_STEPS
  # The scores at each evaluation are i / 2 of the final ones.
  np.testing.assert_allclose(curve['iqm'], [0.0, 0.325, 0.65])
  np.testing.assert_allclose(curve['wall_clock_s'], [3.5, 13.5, 23.5])
  profile = result['profiles']
  tau = np.array(profile['tau'])
  spo = np.concatenate([SPO_CUBE, np.array(SPO_SNAKE) / 60])
  # Fraction of runs (over both envs) scoring above tau.
  np.testing.assert_allclose(
      profile['spo']['fraction'],
      [np.mean(spo > t) for t in tau], atol=1e-9)
  for name in reports.FIGURES:
    for extension, magic in (('png', b'\x89PNG'), ('pdf', b'%PDF')):
      path = os.path.join(root, 'report', f'{name}.{extension}')
      with open(path, 'rb') as f:
        content = f.read()
      assert content.startswith(magic) and len(content) > 2000, path
  with open(os.path.join(root, 'report', 'table.md')) as f:
    table = f.read()
  assert '| trt_smc | rubiks_cube | 8 | solve_rate | 0.650 | 0.650 |' in table
  assert 'P(trt_smc > spo)' in table
  with open(os.path.join(root, 'report', 'table.csv')) as f:
    assert f.readline().startswith('algorithm,env,runs,metric')


def test_score_distributions_are_rliables_own():
  """The vectorised performance profile equals rliable's, value for value."""
  from rliable import library as rly  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(3)
  taus = np.linspace(0.0, 1.0, 101)
  for shape in ((3, 1), (100, 1), (5, 4)):
    # Rounded: scores equal to a threshold are counted as rliable does.
    scores = np.round(rng.uniform(size=shape), 2)
    np.testing.assert_array_equal(reports.score_distributions(scores, taus),
                                  rly.score_distributions(scores, taus))
  np.testing.assert_array_equal(
      reports.score_distributions(np.array([[0.2], [0.6]]), [0.0, 0.2, 0.5]),
      [1.0, 0.5, 0.5])


def test_bootstrap_interval_of_the_mean_is_the_normal_one(tmp_path):
  """100 runs: the 95% CI of the mean is close to mean +- 1.96 sd / 10."""
  # eval.csv keeps 4 decimals.
  finals = np.round(np.random.default_rng(0).uniform(size=100), 4)
  run_dirs = [fabricate(str(tmp_path), 'spo', 'rubiks_cube', seed, final)
              for seed, final in enumerate(finals)]
  result = reports.report(run_dirs, str(tmp_path / 'report'), reps=4000)
  low, high = np.array(result['aggregates']['spo']['interval'])[:, 1]
  half_width = 1.96 * finals.std() / np.sqrt(len(finals))
  assert result['aggregates']['spo']['point'][1] == pytest.approx(
      finals.mean())
  assert low == pytest.approx(finals.mean() - half_width,
                              abs=0.15 * half_width)
  assert high == pytest.approx(finals.mean() + half_width,
                               abs=0.15 * half_width)
  # No second algorithm: no comparison.
  assert result['probability_of_improvement'] == {}
  assert result['warnings'] == []


def test_a_group_of_one_run_is_reported_with_a_warning(tmp_path):
  run_dir = fabricate(str(tmp_path), 'spo', 'rubiks_cube', 0, 0.5)
  result = conftest.run_cli('launch.report', f'--run_dirs={run_dir}',
                            f'--output_dir={tmp_path / "report"}',
                            '--reps=50')
  assert result.returncode == 0, result.stderr
  assert ('[report] warning: spo on rubiks_cube has 1 run: its intervals are '
          'its score alone; run more seeds for intervals that say something'
          ) in result.stdout.splitlines()


def test_bad_run_dirs_are_named(tmp_path):
  root = str(tmp_path)
  cube = [fabricate(root, 'spo', 'rubiks_cube', seed, 0.5)
          for seed in range(2)]
  trt = fabricate(root, 'trt_smc', 'rubiks_cube', 0, 0.5)
  snake = fabricate(root, 'spo', 'snake', 0, 5.0)
  out = str(tmp_path / 'report')
  with pytest.raises(reports.ReportError,
                     match=f'{trt}: trt_smc has no runs on .*snake'):
    reports.report(cube + [snake, trt], out)
  other_steps = fabricate(root, 'spo', 'rubiks_cube', 5, 0.5,
                          env_steps=[0, 500, 1000])
  with pytest.raises(reports.ReportError,
                     match=f'{other_steps}: evaluated at other env steps'):
    reports.report(cube + [other_steps], out)
  empty = tmp_path / 'empty'
  empty.mkdir()
  with pytest.raises(reports.ReportError,
                     match=f'{empty}: not a launch.train run'):
    reports.report(cube + [str(empty)], out)
  os.remove(os.path.join(cube[1], 'eval.csv'))
  with pytest.raises(reports.ReportError, match=f'{cube[1]}: no eval.csv'):
    reports.report(cube, out)
  with pytest.raises(reports.ReportError, match=r'run_dirs: .* matches no'):
    reports.find_runs([str(tmp_path / 'nothing*')])
  assert not os.path.exists(out)


def test_cli_reports_errors_in_one_line(tmp_path):
  result = conftest.run_cli('launch.report',
                            f'--run_dirs={tmp_path}/none*',
                            f'--output_dir={tmp_path}/report')
  assert result.returncode != 0
  assert "error: --run_dirs: '" in result.stderr
  assert 'Traceback' not in result.stderr


def test_ppo_and_gumbel_runs_are_named_by_their_algorithm():
  settings = dict(experiment.DEFAULTS, proposal_alpha=0.1)
  assert experiment.algorithm_name(settings) == 'trt_smc'
  assert experiment.algorithm_name(dict(settings, algorithm='ppo')) == 'ppo'
  assert experiment.algorithm_name(
      dict(settings, algorithm='gumbel')) == 'gumbel'
  assert experiment.algorithm_name(experiment.DEFAULTS) == 'spo'
