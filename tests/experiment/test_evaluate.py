"""Tests of launch/evaluate.py and the episode runner it uses."""

import json

from absl import app
import numpy as np
import pytest
import tensorflow as tf
from tf_agents.trajectories import policy_step

from environments import boxoban_levels
from environments import pendulum
from environments import rubiks_cube
from launch import evaluate
from tests import conftest
from tf_spo import experiment


class OneMoveOracle:
  """Plays the move that solves the cube if one does, else move 0."""

  def __init__(self, cube):
    self._cube = cube

  def action(self, time_step):
    state = self._cube.state_from_observation(time_step.observation)
    batch = tf.shape(time_step.observation)[0]
    solves = tf.stack([
        self._cube.step(state, tf.fill([batch], a)).reward > 0
        for a in range(18)], axis=1)
    return policy_step.PolicyStep(
        tf.argmax(tf.cast(solves, tf.int32), axis=1, output_type=tf.int32))


def test_evaluate_policy_known_answers():
  one_move = rubiks_cube.RubiksCube(1, 1, time_limit=5)
  oracle = OneMoveOracle(one_move)
  result = experiment.evaluate_policy(oracle, one_move, 32, seed=3)
  assert result == {'solve_rate': 1.0, 'mean_return': 1.0, 'mean_length': 1.0}
  # From the solved cube no move solves: the oracle plays U (move 0), then
  # finds U' and solves on the second move; with a time limit of 1 it can't.
  solved = rubiks_cube.RubiksCube(0, 0, time_limit=5)
  result = experiment.evaluate_policy(OneMoveOracle(solved), solved, 8, seed=3)
  assert result == {'solve_rate': 1.0, 'mean_return': 1.0, 'mean_length': 2.0}
  limited = rubiks_cube.RubiksCube(0, 0, time_limit=1)
  result = experiment.evaluate_policy(OneMoveOracle(limited), limited, 8,
                                      seed=3)
  assert result == {'solve_rate': 0.0, 'mean_return': 0.0, 'mean_length': 1.0}


def test_evaluate_levels_covers_every_scramble_depth():
  settings = experiment.resolve_settings('rubiks_cube', 'cpu',
                                         {'time_limit': 3})
  results = experiment.evaluate_levels(
      OneMoveOracle(rubiks_cube.RubiksCube(1, 1)), settings, max_level=2,
      num_episodes=8, seed=0)
  assert sorted(results) == [1, 2]
  assert results[1]['solve_rate'] == 1.0
  assert set(results[2]) == {'solve_rate', 'mean_return', 'mean_length'}


class ZeroTorque:
  """Applies no torque: the pendulum swings freely."""

  def action(self, time_step):
    return policy_step.PolicyStep(
        tf.zeros([tf.shape(time_step.observation)[0], 1]))


class ConstantTorque:
  """Applies the torque held in a variable."""

  def __init__(self):
    self.torque = tf.Variable(0.0)

  def action(self, time_step):
    batch = tf.shape(time_step.observation)[0]
    return policy_step.PolicyStep(tf.fill([batch, 1], self.torque))


def test_evaluator_traces_once_and_plays_the_current_weights():
  model = pendulum.Pendulum(time_limit=60)
  policy = ConstantTorque()
  evaluator = experiment.Evaluator(policy, model, network_input_only=True)
  at_zero = evaluator(4, seed=0)
  policy.torque.assign(1.0)
  at_one = evaluator(4, seed=0)
  # Two 50-step chunks per call, one trace in all: the step counters and
  # the seed are tensors, and the torque is read from its variable.
  assert evaluator.play.experimental_get_tracing_count() == 1
  assert at_one != at_zero
  assert at_one == experiment.evaluate_policy(policy, model, 4, seed=0,
                                              network_input_only=True)
  policy.torque.assign(0.0)
  assert evaluator(4, seed=0) == at_zero


def test_pendulum_is_evaluated_by_mean_return_from_network_inputs():
  settings = experiment.resolve_settings('pendulum', 'cpu', {'time_limit': 5})
  results = experiment.evaluate_levels(ZeroTorque(), settings, max_level=3,
                                     num_episodes=4, seed=0,
                                     network_input_only=True)
  assert list(results) == [0]  # No sweep for the pendulum.
  assert set(results[0]) == {'mean_return', 'mean_length'}
  assert results[0]['mean_length'] == 5.0
  # Five steps of -(theta^2 + 0.1 theta_dot^2) from held-out starts.
  model = pendulum.Pendulum(time_limit=5)
  state = model.reset(4, tf.constant([0, 0], tf.int64))
  expected = 0.0
  for _ in range(5):
    out = model.step(state, tf.zeros([4, 1]))
    expected += float(tf.reduce_mean(out.reward))
    state = out.state
  assert abs(results[0]['mean_return'] - expected) < 1e-4


def test_evaluate_policy_prints_progress_of_long_episodes(capsys):
  model = pendulum.Pendulum(time_limit=120)
  result = experiment.evaluate_policy(ZeroTorque(), model, 2, seed=0,
                                      network_input_only=True,
                                      progress_seconds=0.0)
  assert result['mean_length'] == 120.0
  # After every compiled chunk of 50 steps but the last, at which every
  # episode has ended.
  progress = [line.split(',')[:2]
              for line in capsys.readouterr().out.splitlines()]
  assert progress == [[f'[eval] {step} steps', ' 0/2 episodes finished']
                      for step in (50, 100)]
  experiment.evaluate_policy(ZeroTorque(), model, 2, seed=0,
                             network_input_only=True)
  assert not capsys.readouterr().out  # Under the default 30 s.


def test_cli_on_checkpoint_and_saved_model(tiny_run, tmp_path):
  root_dir, summary, _ = tiny_run
  output = tmp_path / 'results.json'
  result = conftest.run_cli(
      'launch.evaluate', f'--root_dir={root_dir}', '--max_level=2',
      '--num_episodes=8', f'--output={output}')
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'solve_rate' in result.stdout and output.exists()
  written = json.loads(output.read_text())
  assert written['command'].startswith('python -m launch.evaluate --root_dir=')
  assert set(written['results']) == {'1', '2'}
  assert 0.0 <= written['results']['2']['solve_rate'] <= 1.0
  result = conftest.run_cli(
      'launch.evaluate', f'--saved_model={summary["saved_models"]["search"]}',
      '--max_level=1', '--num_episodes=8')
  assert result.returncode == 0, result.stderr[-3000:]
  result = conftest.run_cli('launch.evaluate', '--max_level=1')
  assert result.returncode != 0
  assert 'exactly one of --root_dir and --saved_model' in result.stderr


class SolutionPlayer:
  """Plays, in episode i, the known solution of level i."""

  def __init__(self, solutions):
    length = max(len(s) for s in solutions)
    self._moves = tf.constant(
        [list(s) + [0] * (length - len(s)) for s in solutions], tf.int32)

  def action(self, time_step):
    steps = time_step.observation.planning_state['steps']
    batch = tf.shape(steps)[0]
    moves = tf.gather(self._moves, tf.range(batch) % self._moves.shape[0])
    # Finished episodes go on stepping until every episode has ended.
    steps = tf.minimum(steps, self._moves.shape[1] - 1)
    return policy_step.PolicyStep(tf.gather(moves, steps, batch_dims=1))


def test_sokoban_evaluates_every_level_of_a_directory_in_order(tmp_path):
  levels, solutions = boxoban_levels.generate_levels(5, seed=7)
  (tmp_path / '000.txt').write_text(boxoban_levels.format_levels(levels))
  settings = experiment.resolve_settings(
      'sokoban', 'cpu', {'eval_levels_dir': str(tmp_path)})
  model = experiment.make_model(settings, evaluation=True)
  assert model.num_levels == 5
  results = experiment.evaluate_levels(SolutionPlayer(solutions), settings,
                                     max_level=None, num_episodes=5, seed=0)
  # Solving earns 4 boxes + 10 and every step costs 0.1.
  lengths = [len(s) for s in solutions]
  assert results[0]['solve_rate'] == 1.0
  np.testing.assert_allclose(results[0]['mean_length'], np.mean(lengths))
  np.testing.assert_allclose(results[0]['mean_return'],
                             np.mean([14 - 0.1 * n for n in lengths]),
                             rtol=1e-5)
  # Shifted by one level, the solutions solve nothing.
  shifted = SolutionPlayer(solutions[1:] + solutions[:1])
  results = experiment.evaluate_levels(shifted, settings, max_level=None,
                                     num_episodes=5, seed=0)
  assert results[0]['solve_rate'] == 0.0


def test_level_flags_pick_a_directory_or_the_generated_levels(tmp_path):
  levels, _ = boxoban_levels.generate_levels(5, seed=7)
  (tmp_path / '000.txt').write_text(boxoban_levels.format_levels(levels))
  run_settings = experiment.resolve_settings(
      'sokoban', 'cpu', {'eval_levels_dir': str(tmp_path)})
  assert evaluate.choose_levels(run_settings, '', False, 30) == (
      run_settings, 30, None)
  settings, episodes, model = evaluate.choose_levels(
      run_settings, str(tmp_path), False, 30)
  assert episodes == 5 and settings['eval_levels_dir'] == str(tmp_path)
  # The model that counted the levels, handed on to be played, starts its
  # episodes from those levels.
  start = model.initial_state(tf.range(5))
  np.testing.assert_array_equal(start['boxes'].numpy(), levels.boxes)
  np.testing.assert_array_equal(start['player'].numpy(), levels.player)
  # A run evaluated on a directory can still be scored on the held-out
  # generated levels: all 1000 of them, each once.
  settings, episodes, _ = evaluate.choose_levels(run_settings, '', True, 30)
  assert episodes == 1000 and settings['eval_levels_dir'] == ''
  with pytest.raises(app.UsageError, match='at most one of --levels_dir'):
    evaluate.choose_levels(run_settings, str(tmp_path), True, 30)
  with pytest.raises(app.UsageError,
                     match='--generated_levels: env rubiks_cube has no level'):
    evaluate.choose_levels(
        experiment.resolve_settings('rubiks_cube', 'cpu', {}), '', True, 30)
