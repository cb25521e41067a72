"""End-to-end tests of launch/train.py."""

import csv
import glob
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from tf_agents.trajectories import time_step as ts

from launch import cli
from tests import conftest
from tests.conftest import tiny_settings
from tests.support import mirrored_loop
from tests.support.checkpoints import assert_same_checkpoint
from tests.support.checkpoints import checkpoint_tensors
from tf_spo import experiment
from tf_spo.experiment import training


def network_actions(run, summary, sample):
  """Actions of the exported and the restored network policy.

  Args:
    run: the restored `experiment.Run`.
    summary: the run's summary, naming its SavedModels.
    sample: (shape, seed) -> network inputs, e.g. tf.random.stateless_normal.

  Returns:
    (exported actions, restored actions) on 3 sampled network inputs.
  """
  loaded = tf.saved_model.load(summary['saved_models']['network'])
  policy = run.agent.export_network_policy()
  observation = sample(
      [3] + policy.time_step_spec.observation.shape.as_list(), [0, 1])
  time_step = ts.restart(observation, 3)
  return (loaded.action(time_step, ()).action,
          policy.action(time_step).action)


def test_main_job_leaves_checkpoint_policies_and_summary(tiny_run):
  root_dir, summary, stdout = tiny_run
  assert summary['env_steps'] == 1024
  assert summary['train_steps'] > 0
  assert 0.0 <= summary['search_solve_rate'] <= 1.0
  assert tf.train.latest_checkpoint(os.path.join(root_dir, 'checkpoints'))
  for kind in ('search', 'network'):
    assert os.path.exists(os.path.join(root_dir, 'policy', kind,
                                       'saved_model.pb'))
  assert os.listdir(os.path.join(root_dir, 'train'))  # TensorBoard events
  with open(os.path.join(root_dir, 'eval.csv')) as f:
    rows = list(csv.DictReader(f))
  assert [int(r['env_steps']) for r in rows] == [0, 512, 1024]
  assert '[train] env_steps=512/1024' in stdout and 'steps/s=' in stdout
  assert 'time_left=' in stdout
  assert '[summary]' in stdout


def test_summary_reports_both_policies_at_3_and_7_scramble_moves(tiny_run):
  root_dir, summary, _ = tiny_run
  by_scramble = summary['by_eval_scramble']
  assert set(by_scramble) == {'3', '7'}
  run = experiment.restore_run(root_dir)
  seed = run.settings['seed'] + experiment.EVAL_SEED_OFFSET
  for kind, policy in (('search', run.agent.policy),
                       ('network', run.agent.network_policy)):
    # launch.evaluate's sweep over the restored final weights.
    expected = experiment.evaluate_levels(policy, run.settings, 7, 16, seed)
    for level in ('3', '7'):
      assert by_scramble[level][f'{kind}_solve_rate'] == pytest.approx(
          expected[int(level)]['solve_rate'])


def test_losses_and_search_diagnostics_reach_tensorboard(tiny_run):
  root_dir, _, _ = tiny_run
  tags = set()
  for path in glob.glob(os.path.join(root_dir, 'train', 'events.*')):
    for event in tf.compat.v1.train.summary_iterator(path):
      tags.update(value.tag for value in event.summary.value)
  expected = {'loss/total', 'loss/eta', 'loss/alpha', 'loss/kl',
              'loss/q_value_loss', 'loss/grad_norm', 'search/ess',
              'search/weight_entropy', 'search/proposal_kl',
              'search/proposal_beta', 'search/alive_fraction',
              'search/retrace_value', 'eval/search_solve_rate'}
  assert expected <= tags, expected - tags


def eval_rows(root_dir):
  with open(os.path.join(root_dir, 'eval.csv')) as f:
    return [int(row['env_steps']) for row in csv.DictReader(f)]


def test_sigkilled_run_resumes_exactly_where_it_stopped(tiny_run, tmp_path):
  """SIGKILL + the same command again = the session's tiny run, bit for bit.

  The tiny run is `launch.train` with `TINY_FLAGS`, uninterrupted, in a
  process of its own; this run evaluates every 256 env steps (evaluation
  draws nothing from training's streams) and is killed after its evaluation
  at 768 env steps, past its checkpoint at 512.
  """
  flags = (*conftest.TINY_FLAGS, '--eval_interval=256')
  root_dir = str(tmp_path / 'killed')
  process = subprocess.Popen(
      [sys.executable, '-m', 'launch.train', f'--root_dir={root_dir}', *flags],
      cwd=conftest.REPO_ROOT, stdout=subprocess.PIPE,
      stderr=subprocess.DEVNULL, text=True)
  for line in process.stdout:
    if line.startswith('[eval] env_steps=768'):
      process.send_signal(signal.SIGKILL)
      break
  assert process.wait(timeout=60) == -signal.SIGKILL
  assert eval_rows(root_dir)[-1] == 768
  killed = experiment.restore_run(root_dir)
  assert int(killed.env_steps.numpy()) == 512
  assert int(killed.replay_buffer.num_frames()) == 512
  assert int(killed.replay_buffer.draws.numpy()) > 0

  result = conftest.run_cli('launch.train', f'--root_dir={root_dir}', *flags)
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'ckpt-512 at env_steps=512' in result.stdout
  assert_same_checkpoint(root_dir, checkpoint_tensors(tiny_run[0]))
  assert eval_rows(root_dir) == list(range(0, 1025, 256))  # None twice.


def test_mujoco_run_resumes_and_exports_the_normalised_network(tmp_path):
  """gymnasium is the real env; only the network policy can be saved."""
  settings = tiny_settings(
      env='halfcheetah', network='mlp', normalize_observations=True,
      mlp_units=16, mlp_layers=1, time_limit=20, total_env_steps=512,
      num_envs=4, rollout_length=16, sequence_length=8, eval_episodes=2,
      eval_interval=256, checkpoint_interval=256, log_interval=256,
      num_threads=2)
  root_dir = str(tmp_path)
  assert experiment.train(settings, root_dir, stop_after_env_steps=256) == {}
  summary = experiment.train(settings, root_dir)  # resumes, new episodes
  assert summary['env_steps'] == 512
  assert set(summary['saved_models']) == {'network'}
  run = experiment.restore_run(root_dir)
  normalizer = run.agent.network.normalizer
  assert normalizer.count.numpy() > 0
  exported, restored = network_actions(
      run, summary, tf.random.stateless_normal)
  np.testing.assert_allclose(exported, restored, atol=1e-6)


@pytest.mark.parametrize('env,channels', [('snake', 5), ('sokoban', 4)])
def test_grid_run_trains_the_conv_network_and_exports_both_policies(
    tmp_path, env, channels):
  """Pure-TF grid tasks with the conv torso; the search exports too."""
  settings = tiny_settings(
      env=env, conv_channels='4', conv_residual_blocks=1, time_limit=50,
      num_levels=20, total_env_steps=512, num_envs=8, rollout_length=16,
      sequence_length=8, eval_episodes=4, eval_interval=512,
      checkpoint_interval=512, log_interval=512)
  summary = experiment.train(settings, str(tmp_path))
  assert summary['env_steps'] == 512 and summary['train_steps'] > 0
  assert set(summary['saved_models']) == {'search', 'network'}
  run = experiment.restore_run(str(tmp_path))
  conv = [v for v in run.agent.network.trainable_variables
          if v.shape.rank == 4]
  assert [tuple(v.shape) for v in conv] == [
      (3, 3, channels, 4), (3, 3, 4, 4), (3, 3, 4, 4)]
  # The exported network policy acts as the restored one.
  exported, restored = network_actions(
      run, summary, tf.random.stateless_uniform)
  np.testing.assert_array_equal(exported, restored)
  # launch.evaluate tells the two apart by the inputs they read: the search
  # plans from the env state the observation carries, the network does not.
  model = experiment.make_model(settings, evaluation=True)
  for kind, network_input_only in (('search', False), ('network', True)):
    policy = tf.saved_model.load(summary['saved_models'][kind])
    assert experiment.reads_network_input_only(
        policy, model) == network_input_only


def test_two_replica_run_trains_exports_and_steps_like_one_replica(
    two_cpu_strategy, tmp_path):
  """`--strategy=mirrored --num_replicas=2` on 2 logical CPU devices.

  The tiny run trains, evaluates and exports with each replica searching for
  half of the environments and training on half of each batch; from its
  final checkpoint, two more steps of its loop match one replica's loop on
  the same replay buffer (tests/support/mirrored_loop.py).
  """
  output = mirrored_loop.mirrored_run(two_cpu_strategy, str(tmp_path))
  summary = output['summary']
  assert summary['env_steps'] == 512 and summary['train_steps'] > 0
  assert set(summary['saved_models']) == {'search', 'network'}
  assert eval_rows(str(tmp_path / 'mirrored')) == [0, 512]
  assert output['parts'] == [[0, 1, 2, 3], [4, 5, 6, 7]]
  differences = output['differences']
  assert len(differences) > 50  # Losses, network, target and dual weights.
  assert max(differences.values()) < 1e-5, differences


def test_incompatible_root_dir_is_refused(tmp_path):
  experiment.write_settings(str(tmp_path), tiny_settings())
  with pytest.raises(ValueError, match=r'num_particles=4 \(now 8\)'):
    experiment.train(tiny_settings(num_particles=8), str(tmp_path))
  # Schedule settings may change on resume.
  experiment.write_settings(str(tmp_path), tiny_settings(total_env_steps=4096))


def test_cli_reports_bad_flags(tmp_path):
  result = conftest.run_cli('launch.train', f'--root_dir={tmp_path}',
                            '--num_particles=0')
  assert result.returncode != 0
  assert '--num_particles must be >= 1, got 0' in result.stderr
  assert 'Traceback' not in result.stderr
  result = conftest.run_cli('launch.train', f'--root_dir={tmp_path}',
                            '--depth=2', '--resample_period=3')
  assert '--resample_period must be in [1, depth=2], got 3' in result.stderr
  result = conftest.run_cli('launch.train', f'--root_dir={tmp_path}',
                            '--strategy=tpu')
  assert "--strategy=tpu: no TPU at --tpu=''" in result.stderr
  assert 'Traceback' not in result.stderr
  assert not os.listdir(tmp_path)  # nothing written for a bad config


def test_presets_fill_in_flags_not_given():
  with conftest.temporary_flags() as flag_values:
    cli.define_setting_flags()
    flag_values(['train', '--preset=paper', '--num_envs=8'])
    settings = cli.settings_from_flags()
  assert settings['num_envs'] == 8  # explicit flag wins
  assert settings['rollout_length'] == 21  # from the paper preset
  assert settings['num_epochs'] == 16
  assert settings['torso_units'] == 512
  with conftest.temporary_flags() as flag_values:
    cli.define_setting_flags()
    flag_values(['train', '--preset=trt_smc', '--proposal_alpha=0.3'])
    settings = cli.settings_from_flags()
  assert settings['proposal_alpha'] == 0.3
  assert settings['policy_inference'] == 'message_passing'
  assert settings['revived_resampling'] is True


@pytest.mark.slow
def test_short_training_raises_the_solve_rate(tmp_path):
  """SPO on 1-3 scramble cubes beats the untrained network in 12k env steps.

  The run's own loop and scorer (`experiment.train` without its checkpoints,
  export and summary levels). Speed is the benchmarks' business (README): no
  wall-clock bound here, so that the test holds on a loaded machine.
  """
  settings = tiny_settings(
      total_env_steps=12_288, num_envs=64, rollout_length=8,
      sequence_length=17, batch_size=64, num_epochs=8, torso_units=256,
      head_units=256, num_residual_blocks=2, num_particles=16, depth=4,
      resample_period=4, min_scramble=1, max_scramble=3, eval_scramble=3,
      eval_episodes=200)
  run = experiment.build_run(settings, str(tmp_path))
  score = experiment.policy_scorer(run.agent, settings)
  untrained = score()
  loop = experiment.make_loop(run)
  while run.env_steps.numpy() < settings['total_env_steps']:
    experiment.run_iteration(loop, settings['num_epochs'])
  trained = score()
  # Seeds 0-2 gain 0.21-0.27 (network) and 0.16-0.21 (search).
  assert trained['network_solve_rate'] >= (
      untrained['network_solve_rate'] + 0.15), (untrained, trained)
  assert trained['search_solve_rate'] > untrained['search_solve_rate'], (
      untrained, trained)


def test_time_left_counts_training_then_the_evaluations_to_come():
  # 6,000 steps at 100/s, then 3 evaluations of 20 s.
  assert training.time_left(6_000, 100.0, 3, 20.0) == 120.0
  # Past the last step (an iteration overshoots): no time, never negative.
  assert training.time_left(-512, 100.0, 0, 20.0) == 0.0
