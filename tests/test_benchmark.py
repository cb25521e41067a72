"""Tests of the search benchmark (launch/benchmark.py); no timing asserts."""

import json
import math

import pytest

from launch import benchmark

TINY = dict(batch_size=3, num_particles=4, depth=3, resample_period=2,
            torso_units=8, num_residual_blocks=1, head_units=8, repeats=2,
            warmup=1, seed=7)

KEYS = {'env', 'batch_size', 'num_particles', 'depth', 'resample_period',
        'torso_units', 'num_residual_blocks', 'head_units', 'repeats',
        'warmup', 'seed', 'num_network_evals', 'search_ms', 'network_ms',
        'overhead_ratio', 'env_steps_per_s', 'particle_steps_per_s',
        'model_ms', 'model_steps_per_s'}


@pytest.fixture(scope='module')
def result():
  return benchmark.benchmark(**TINY)


def test_keys_and_settings(result):
  assert set(result) == KEYS
  for name, value in TINY.items():
    assert result[name] == value
  assert result['env'] == 'rubiks_cube'


@pytest.mark.parametrize('env', ['pendulum', 'sokoban', 'snake'])
def test_continuous_and_grid_envs(env):
  result = benchmark.benchmark(env=env, **TINY)
  assert result['env'] == env
  assert math.isfinite(result['overhead_ratio']) and result['search_ms'] > 0


def test_times_are_positive_and_finite(result):
  for name in ('search_ms', 'network_ms', 'overhead_ratio',
               'env_steps_per_s', 'particle_steps_per_s', 'model_ms',
               'model_steps_per_s'):
    assert math.isfinite(result[name]) and result[name] > 0, name


def test_derived_quantities(result):
  assert result['num_network_evals'] == 3 + 3 * 3 * 4
  assert result['particle_steps_per_s'] == pytest.approx(
      result['env_steps_per_s'] * 4 * 3, rel=1e-9)
  assert result['env_steps_per_s'] == pytest.approx(
      3 / (result['search_ms'] / 1e3), rel=1e-9)
  assert result['overhead_ratio'] == pytest.approx(
      result['search_ms'] / result['network_ms'], rel=1e-9)
  assert result['model_steps_per_s'] == pytest.approx(
      3 * 4 * 3 / (result['model_ms'] / 1e3), rel=1e-9)


def test_json_serialisable(result):
  assert json.loads(json.dumps(result)) == pytest.approx(result)


def test_format_table(result):
  table = benchmark.format_table(result)
  assert 'overhead ratio' in table and 'particle steps/s' in table
  assert 'model alone steps/s' in table


@pytest.mark.parametrize('name,value', [
    ('batch_size', 0),
    ('num_particles', 0),
    ('depth', 0),
    ('resample_period', 0),
    ('resample_period', 4),  # > depth = 3
    ('torso_units', 0),
    ('num_residual_blocks', -1),
    ('head_units', 0),
    ('repeats', 0),
    ('warmup', -1),
])
def test_bad_settings_name_the_flag(name, value):
  settings = dict(TINY, **{name: value})
  with pytest.raises(ValueError, match=f'--{name} '):
    benchmark.benchmark(**settings)


def test_simulator_env_reports_planning_against_rollout():
  result = benchmark.benchmark(env='halfcheetah', **TINY)
  assert set(result) == KEYS | {'simulator'}
  assert set(result['simulator']) == {
      f'{kind}_{threads}_threads' for kind in ('planning', 'rollout', 'ratio')
      for threads in (1, 2)}
  for threads in (1, 2):
    simulator = result['simulator']
    assert simulator[f'ratio_{threads}_threads'] == pytest.approx(
        simulator[f'planning_{threads}_threads'] /
        simulator[f'rollout_{threads}_threads'])
  assert 'simulator ratio_2_threads' in benchmark.format_table(result)
