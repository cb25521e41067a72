"""Tests of launch/benchmarks.py (search and training loop), no timings."""

import json
import math

import pytest
import tensorflow as tf
from tf_agents.specs import tensor_spec

from tf_spo import networks
from tf_spo.experiment import benchmarks

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
  return benchmarks.benchmark(**TINY)


def test_keys_and_settings(result):
  assert set(result) == KEYS
  for name, value in TINY.items():
    assert result[name] == value
  assert result['env'] == 'rubiks_cube'


# Snake stands for the grid tasks: Sokoban's preset generates its 10,000
# levels first (about 12 s), which is no part of the benchmark.
@pytest.mark.parametrize('env', ['pendulum', 'snake'])
def test_continuous_and_grid_envs(env):
  result = benchmarks.benchmark(env=env, **TINY)
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
  table = benchmarks.format_table(result)
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
def test_bad_settings_name_the_argument(name, value):
  settings = dict(TINY, **{name: value})
  with pytest.raises(ValueError, match=f'^{name} '):
    benchmarks.benchmark(**settings)


def test_simulator_env_reports_planning_against_rollout():
  result = benchmarks.benchmark(env='halfcheetah', **TINY)
  assert set(result) == KEYS | {'simulator'}
  assert set(result['simulator']) == {
      f'{kind}_{threads}_threads' for kind in ('planning', 'rollout', 'ratio')
      for threads in (1, 2)}
  for threads in (1, 2):
    simulator = result['simulator']
    assert simulator[f'ratio_{threads}_threads'] == pytest.approx(
        simulator[f'planning_{threads}_threads'] /
        simulator[f'rollout_{threads}_threads'])
  assert 'simulator ratio_2_threads' in benchmarks.format_table(result)


def test_network_flops_match_a_hand_count():
  net = networks.PolicyValueNetwork(
      tf.TensorSpec([6], tf.float32),
      tensor_spec.BoundedTensorSpec([], tf.int32, 0, 3),
      torso_units=8, num_residual_blocks=0, head_units=5)
  # Dense: 2 * in * out multiply-adds + out bias adds. Torso 6 -> 8; policy
  # and value heads 8 -> 5 -> (4 logits, 1 value).
  def dense(n_in, n_out):
    return 2 * n_in * n_out + n_out
  expected = (dense(6, 8) + dense(8, 5) + dense(5, 4) + dense(8, 5) +
              dense(5, 1))
  assert benchmarks.network_flops(net, net.input_tensor_spec) == expected


TINY_TRAIN = dict(num_envs=4, rollout_length=4, sequence_length=4,
                  batch_size=4, num_epochs=2, torso_units=8,
                  num_residual_blocks=1, head_units=8, num_particles=2,
                  depth=2, resample_period=1)


def test_train_mode_splits_the_iteration_and_its_flop_ideal():
  result = benchmarks.train_benchmark('rubiks_cube', 'cpu', repeats=2,
                                     warmup=1, overrides=TINY_TRAIN)
  assert result['env_steps_per_iteration'] == 16
  for name in ('iteration_s', 'collect_s', 'train_s', 'env_steps_per_s',
               'peak_gflops', 'ideal_s', 'flop_ratio'):
    assert math.isfinite(result[name]) and result[name] > 0, name
  # 16 env steps x (1 + 2 x 2) search forwards + 2 x 4 x 4 x 4 training.
  assert result['iteration_gflop'] == pytest.approx(
      (16 * 5 + 128) * result['network_flops'] / 1e9)
  assert result['ideal_s'] == pytest.approx(
      result['iteration_gflop'] / result['peak_gflops'])
  assert result['flop_ratio'] == pytest.approx(
      result['ideal_s'] / result['iteration_s'])
  table = benchmarks.format_train_table(result)
  assert 'ratio to FLOP ideal' in table and 'collect ms' in table
  with pytest.raises(ValueError, match=r'^repeats '):
    benchmarks.train_benchmark(repeats=0, overrides=TINY_TRAIN)


def test_train_mode_times_the_ppo_loop():
  result = benchmarks.train_benchmark(
      'rubiks_cube', 'cpu', repeats=1, warmup=1,
      overrides=dict(TINY_TRAIN, algorithm='ppo'))
  assert result['algorithm'] == 'ppo'
  assert result['env_steps_per_iteration'] == 16
  assert math.isfinite(result['flop_ratio']) and result['flop_ratio'] > 0
  # 16 env steps x (collect + rollout values + 2 epochs x 3) forwards of the
  # actor and the critic, each: the 54 stickers minus their minimum, one-hot
  # (324) -> 8 -> 8 -> 8 -> 18 logits or 1 value.
  def dense(n_in, n_out):
    return 2 * n_in * n_out + n_out
  trunk = 54 + dense(324, 8) + dense(8, 8) + dense(8, 8)
  assert result['network_flops'] == 2 * trunk + dense(8, 18) + dense(8, 1)
  assert result['iteration_gflop'] == pytest.approx(
      16 * 8 * result['network_flops'] / 1e9)
  assert '2 PPO epochs on the 4x4 rollout' in benchmarks.format_train_table(
      result)
