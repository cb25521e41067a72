"""Tests for environments.sokoban."""

import numpy as np
import pytest
import tensorflow as tf
from tf_agents.specs import tensor_spec
from tf_agents.trajectories import time_step as ts

from environments import boxoban_levels
from environments import model as model_lib
from environments import sokoban
from tests.support import model_checks

UP, RIGHT, DOWN, LEFT = range(4)
STEPS = {UP: (-1, 0), RIGHT: (0, 1), DOWN: (1, 0), LEFT: (0, -1)}
STATE_KEYS = ('walls', 'targets', 'boxes', 'player', 'steps')

# Two boxes: pushing right puts one on its goal, then two steps down push
# the other onto its goal.
SOLVABLE_ROWS = [
    '##########',
    '#@$.     #',
    '#        #',
    '# $      #',
    '# .      #',
    '#        #',
    '#        #',
    '#        #',
    '#        #',
    '##########',
]


def rows_with_first_row(row):
  """A level whose row 1 is `row` and rows 2-8 empty floor."""
  return ['##########', row] + ['#        #'] * 7 + ['##########']


def make_levels(*levels_rows):
  text = ''.join(f'; {i}\n' + '\n'.join(rows) + '\n\n'
                 for i, rows in enumerate(levels_rows))
  return boxoban_levels.parse_levels(text)


as_numpy = model_checks.as_numpy


def run(model, state, actions):
  """Steps a batch through actions [T, B]; returns the states and steps."""
  states, steps = [as_numpy(state)], []
  for action in actions:
    model_step = model.step(state, tf.constant(action, tf.int32))
    state = model_step.state
    states.append(as_numpy(state))
    steps.append(as_numpy(model_step))
  return states, steps


def run_level(rows, actions, time_limit=120):
  """Plays one level; returns its states and per-step reward, discount, done.

  The results are numpy, without the batch dimension.
  """
  model = sokoban.Sokoban(make_levels(rows), time_limit=time_limit)
  state = model.initial_state(tf.constant([0]))
  states, steps = run(model, state, np.array(actions)[:, None])
  states = [{k: v[0] for k, v in s.items()} for s in states]
  rewards = np.array([s.reward[0] for s in steps])
  discounts = np.array([s.discount[0] for s in steps])
  dones = np.array([s.done[0] for s in steps])
  return states, rewards, discounts, dones


def reference_step(walls, targets, boxes, player, action):
  """The rules, one level at a time in numpy (float64 rewards)."""
  d_row, d_col = STEPS[int(action)]
  row, col = (int(x) for x in player)
  ahead, beyond = (row + d_row, col + d_col), (row + 2 * d_row, col + 2 * d_col)
  boxes = boxes.copy()
  reward = -0.1
  if walls[ahead]:
    pass
  elif not boxes[ahead]:
    player = ahead
  elif not walls[beyond] and not boxes[beyond]:
    boxes[ahead], boxes[beyond] = False, True
    player = ahead
    reward += float(targets[beyond]) - float(targets[ahead])
  solved = not (boxes & ~targets).any()
  if solved:
    reward += 10.0
  return boxes, np.array(player, np.int32), reward, solved


@pytest.fixture(name='generated', scope='module')
def fixture_generated():
  return boxoban_levels.generate_levels(96, seed=5)


def test_specs():
  model = sokoban.Sokoban(make_levels(SOLVABLE_ROWS))
  spec = model.observation_spec()
  assert isinstance(spec, model_lib.PlanningObservation)
  assert spec.network_input == tensor_spec.BoundedTensorSpec(
      (10, 10, 4), tf.float32, 0.0, 1.0, name='observation')
  assert model.network_input_spec() == spec.network_input
  assert spec.planning_state == {
      'walls': tf.TensorSpec((10, 10), tf.bool, name='walls'),
      'targets': tf.TensorSpec((10, 10), tf.bool, name='targets'),
      'boxes': tf.TensorSpec((10, 10), tf.bool, name='boxes'),
      'player': tf.TensorSpec((2,), tf.int32, name='player'),
      'steps': tf.TensorSpec((), tf.int32, name='steps'),
  }
  assert model.action_spec() == tensor_spec.BoundedTensorSpec(
      (), tf.int32, 0, 3, name='action')
  assert model.time_limit == 120
  assert model.num_levels == 1


def test_initial_state_is_the_level(generated):
  levels, _ = generated
  model = sokoban.Sokoban(levels)
  index = np.array([5, 0, 95, 5, 17], np.int32)
  state = as_numpy(model.initial_state(tf.constant(index)))
  for key in ('walls', 'targets', 'boxes', 'player'):
    assert state[key].dtype == getattr(levels, key).dtype
    np.testing.assert_array_equal(state[key], getattr(levels, key)[index])
  np.testing.assert_array_equal(state['steps'], 0)
  assert state['steps'].dtype == np.int32


def test_sequential_reset_plays_every_level_in_order(generated):
  levels, _ = generated
  model = sokoban.Sokoban(levels, sequential=True)
  num = levels.num_levels
  for seed in ([0, 1], [5, 9]):
    state = as_numpy(model.reset(num + 3, tf.constant(seed)))
    index = np.arange(num + 3) % num
    for key in ('walls', 'targets', 'boxes', 'player'):
      np.testing.assert_array_equal(state[key], getattr(levels, key)[index])


def test_observe(generated):
  levels, _ = generated
  model = sokoban.Sokoban(levels)
  state = model.initial_state(tf.constant([3, 4]))
  observation = model.observe(state)
  assert observation.planning_state is state
  grid = observation.network_input.numpy()
  assert grid.dtype == np.float32 and grid.shape == (2, 10, 10, 4)
  for i, level in enumerate((3, 4)):
    np.testing.assert_array_equal(grid[i, :, :, 0], levels.walls[level])
    np.testing.assert_array_equal(grid[i, :, :, 1], levels.targets[level])
    np.testing.assert_array_equal(grid[i, :, :, 2], levels.boxes[level])
    player = np.zeros((10, 10), np.float32)
    player[tuple(levels.player[level])] = 1.0
    np.testing.assert_array_equal(grid[i, :, :, 3], player)


def test_known_solution_rewards():
  actions = [UP, LEFT, RIGHT, DOWN, DOWN]
  states, rewards, discounts, dones = run_level(SOLVABLE_ROWS, actions)
  # Two moves into walls, a box onto its goal, a move, the solving push.
  np.testing.assert_array_equal(
      rewards, np.float32([-0.1, -0.1, 0.9, -0.1, 10.9]))
  np.testing.assert_allclose(rewards.sum(), 11.5, rtol=1e-6)
  np.testing.assert_array_equal(discounts, [1, 1, 1, 1, 0])
  np.testing.assert_array_equal(dones, [False] * 4 + [True])
  np.testing.assert_array_equal([s['player'] for s in states],
                                [[1, 1], [1, 1], [1, 1], [1, 2], [2, 2],
                                 [3, 2]])
  np.testing.assert_array_equal([s['steps'] for s in states], range(6))
  final = states[-1]
  np.testing.assert_array_equal(final['boxes'], final['targets'])
  np.testing.assert_array_equal(final['walls'], states[0]['walls'])


def assert_only_steps_changed(before, after):
  for key in ('walls', 'targets', 'boxes', 'player'):
    np.testing.assert_array_equal(after[key], before[key], err_msg=key)
  assert after['steps'] == before['steps'] + 1


@pytest.mark.parametrize('row,action', [
    ('#@ $ .   #', UP),  # Into the top wall.
    ('#@ $ .   #', LEFT),  # Into the left wall.
    ('#$@  .   #', LEFT),  # A box against a wall.
    ('#@$$..   #', RIGHT),  # A box against a box.
    ('#@*$ .   #', RIGHT),  # A box on a goal against a box.
    ('#@$*.    #', RIGHT),  # A box against a box on a goal.
    ('# .  .$$@#', LEFT),  # A box against a box, leftwards.
])
def test_blocked_moves_are_no_ops(row, action):
  states, rewards, discounts, dones = run_level(rows_with_first_row(row),
                                                [action])
  assert_only_steps_changed(states[0], states[1])
  np.testing.assert_array_equal(rewards, np.float32([-0.1]))
  np.testing.assert_array_equal(discounts, [1.0])
  np.testing.assert_array_equal(dones, [False])


def test_push_into_wall_below_is_a_no_op():
  rows = rows_with_first_row('#   .    #')
  rows[7] = '#  @     #'
  rows[8] = '#  $     #'  # Above the bottom wall.
  states, rewards, _, _ = run_level(rows, [DOWN, DOWN])
  assert_only_steps_changed(states[0], states[1])
  assert_only_steps_changed(states[1], states[2])
  np.testing.assert_array_equal(rewards, np.float32([-0.1, -0.1]))


def test_push_off_goal_costs_one():
  row = '#@* $.   #'
  states, rewards, discounts, dones = run_level(
      rows_with_first_row(row), [RIGHT, RIGHT, LEFT, LEFT])
  # Off the goal, then into a chain (no-op), then walking back over the goal.
  np.testing.assert_array_equal(rewards,
                                np.float32([-1.1, -0.1, -0.1, -0.1]))
  np.testing.assert_array_equal(discounts, 1.0)
  assert not dones.any()
  np.testing.assert_array_equal([s['player'] for s in states],
                                [[1, 1], [1, 2], [1, 2], [1, 1], [1, 1]])
  assert [tuple(x) for x in np.argwhere(states[1]['boxes'])] == [
      (1, 3), (1, 4)]
  np.testing.assert_array_equal(states[1]['targets'], states[0]['targets'])


def test_push_from_goal_to_goal_earns_nothing():
  states, rewards, _, dones = run_level(
      rows_with_first_row('#@*.$    #'), [RIGHT])
  np.testing.assert_array_equal(rewards, np.float32([-0.1]))
  assert not dones.any()
  assert [tuple(x) for x in np.argwhere(states[1]['boxes'])] == [
      (1, 3), (1, 4)]


def test_push_onto_goal_and_off_again():
  states, rewards, _, _ = run_level(
      rows_with_first_row('#@$.  $. #'), [RIGHT, RIGHT, RIGHT])
  np.testing.assert_array_equal(rewards, np.float32([0.9, -1.1, -0.1]))
  np.testing.assert_array_equal(states[-1]['player'], [1, 4])


def test_truncation_at_time_limit():
  states, rewards, discounts, dones = run_level(
      SOLVABLE_ROWS, [UP, LEFT, UP, RIGHT], time_limit=3)
  np.testing.assert_array_equal(rewards, np.float32([-0.1, -0.1, -0.1, 0.9]))
  # Truncated: done with discount 1, and the model keeps stepping after.
  np.testing.assert_array_equal(dones, [False, False, True, True])
  np.testing.assert_array_equal(discounts, 1.0)
  assert states[-1]['steps'] == 4


def test_solving_on_the_last_step_terminates():
  _, rewards, discounts, dones = run_level(
      SOLVABLE_ROWS, [UP, RIGHT, DOWN, DOWN], time_limit=4)
  np.testing.assert_array_equal(rewards[-1], np.float32(10.9))
  np.testing.assert_array_equal(discounts, [1, 1, 1, 0])
  np.testing.assert_array_equal(dones, [False, False, False, True])


def test_batch_of_mixed_levels_steps_independently(generated):
  levels, _ = generated
  model = sokoban.Sokoban(levels)
  index = np.array([7, 2, 7, 40, 2, 91], np.int32)
  rng = np.random.default_rng(1)
  actions = rng.integers(0, 4, (30, len(index))).astype(np.int32)
  _, batch_steps = run(model, model.initial_state(tf.constant(index)),
                       actions)
  for i, level in enumerate(index):
    _, single_steps = run(model, model.initial_state(tf.constant([level])),
                          actions[:, i:i + 1])
    for batch_step, single_step in zip(batch_steps, single_steps):
      batch_row = tf.nest.map_structure(lambda x, i=i: x[i:i + 1], batch_step)
      tf.nest.map_structure(np.testing.assert_array_equal, batch_row,
                            single_step)


def test_matches_reference_rules(generated):
  """Plays generated levels against a numpy transcription of the rules.

  The actions follow each level's solution with random deviations, so that
  boxes are pushed onto and off goals, into walls and other boxes, and
  some levels are solved.
  """
  levels, solutions = generated
  time_limit = 50
  model = sokoban.Sokoban(levels, time_limit=time_limit)
  num_levels = levels.num_levels
  rng = np.random.default_rng(2)
  actions = rng.integers(0, 4, (60, num_levels)).astype(np.int32)
  follow = rng.random((60, num_levels)) < 0.8
  follow[:, ::4] = True  # A quarter of the levels solved, then random.
  for i, solution in enumerate(solutions):
    n = min(len(solution), 60)
    actions[:n, i] = np.where(follow[:n, i], solution[:n], actions[:n, i])
  index = np.arange(num_levels, dtype=np.int32)
  states, steps = run(model, model.initial_state(tf.constant(index)), actions)
  boxes, player = levels.boxes.copy(), levels.player.copy()
  seen_rewards = set()
  for t, step in enumerate(steps):
    for i in range(num_levels):
      boxes[i], player[i], reward, solved = reference_step(
          levels.walls[i], levels.targets[i], boxes[i], player[i],
          actions[t, i])
      np.testing.assert_allclose(step.reward[i], reward, rtol=0, atol=1e-6)
      assert step.discount[i] == (0.0 if solved else 1.0)
      assert step.done[i] == (solved or t + 1 >= time_limit)
      seen_rewards.add(round(reward, 1))
    np.testing.assert_array_equal(states[t + 1]['boxes'], boxes)
    np.testing.assert_array_equal(states[t + 1]['player'], player)
  # Every kind of step happened.
  assert seen_rewards >= {-1.1, -0.1, 0.9, 10.9}


def test_generated_solutions_solve_their_levels(generated):
  levels, solutions = generated
  model = sokoban.Sokoban(levels)
  lengths = np.array([len(s) for s in solutions])
  actions = np.zeros((lengths.max(), len(solutions)), np.int32)
  for i, solution in enumerate(solutions):
    actions[:len(solution), i] = solution
  index = np.arange(levels.num_levels, dtype=np.int32)
  states, steps = run(model, model.initial_state(tf.constant(index)), actions)
  rewards = np.stack([s.reward for s in steps])
  discounts = np.stack([s.discount for s in steps])
  dones = np.stack([s.done for s in steps])
  for i, n in enumerate(lengths):
    assert not dones[:n - 1, i].any(), i
    assert dones[n - 1, i] and discounts[n - 1, i] == 0.0, i
    # The solving push puts the last box on its goal.
    assert rewards[n - 1, i] == np.float32(10.9), i
    # From no box on a goal to all four: 4 + 10 - 0.1 per step.
    np.testing.assert_allclose(rewards[:n, i].sum(), 14.0 - 0.1 * n,
                               atol=1e-4)
    final = states[n]
    np.testing.assert_array_equal(final['boxes'][i], levels.targets[i])


def test_reset_samples_levels_uniformly():
  levels = make_levels(SOLVABLE_ROWS, rows_with_first_row('#@$.     #'),
                       rows_with_first_row('#@ $.    #'))
  model = sokoban.Sokoban(levels)
  state = as_numpy(model.reset(3000, tf.constant([1, 2], tf.int64)))
  # The levels differ in the box in row 1.
  level = np.argmax(state['boxes'][:, 1, 2:4], axis=1) + 1
  level[state['boxes'][:, 3, 2]] = 0
  counts = np.bincount(level, minlength=3)
  assert counts.sum() == 3000 and counts.min() > 900
  np.testing.assert_array_equal(state['steps'], 0)
  again = as_numpy(model.reset(3000, tf.constant([1, 2], tf.int32)))
  tf.nest.map_structure(np.testing.assert_array_equal, state, again)
  other = as_numpy(model.reset(3000, tf.constant([1, 3], tf.int64)))
  assert (other['boxes'] != state['boxes']).any()


def test_xla_with_unknown_batch_size_matches_eager(generated):
  levels, _ = generated
  model = sokoban.Sokoban(levels, time_limit=6)
  num_steps = 8
  rollout = model_checks.rollout_fn(model, num_steps)
  compiled = model_checks.compiled_rollout_fn(model, num_steps)
  rng = np.random.default_rng(3)
  for batch_size in (1, 37):
    seed = tf.constant([13, batch_size], tf.int64)
    actions = tf.constant(
        rng.integers(0, 4, (num_steps, batch_size)).astype(np.int32))
    actual = as_numpy(compiled(seed, actions))
    model_checks.assert_nests_equal(as_numpy(rollout(seed, actions)), actual)
    assert actual[-1][3].all()  # Truncated at the time limit.
  assert compiled.experimental_get_tracing_count() == 1


def test_model_environment_runs():
  levels = boxoban_levels.generate_levels(8, seed=9)[0]
  env = model_lib.ModelEnvironment(sokoban.Sokoban(levels, time_limit=2),
                                   batch_size=3, seed=0)
  time_step = env.current_time_step()
  assert isinstance(time_step.observation, model_lib.PlanningObservation)
  assert time_step.observation.network_input.shape == (3, 10, 10, 4)
  np.testing.assert_array_equal(time_step.step_type, ts.StepType.FIRST)
  action = tf.constant([UP, RIGHT, DOWN])
  for t in (1, 2):
    time_step = env.step(action)
    np.testing.assert_array_equal(
        time_step.observation.planning_state['steps'], t)
    np.testing.assert_array_equal(
        time_step.step_type, ts.StepType.LAST if t == 2 else ts.StepType.MID)
    np.testing.assert_array_equal(time_step.discount, 1.0)
    assert time_step.reward.dtype == tf.float32
    assert time_step.reward.shape == (3,)
  time_step = env.step(action)
  np.testing.assert_array_equal(time_step.step_type, ts.StepType.FIRST)
  np.testing.assert_array_equal(time_step.observation.planning_state['steps'],
                                0)


def test_constructor_rejects_bad_arguments():
  levels = make_levels(SOLVABLE_ROWS)
  with pytest.raises(ValueError, match='time_limit must be >= 1'):
    sokoban.Sokoban(levels, time_limit=0)
  with pytest.raises(ValueError, match='at least one level'):
    sokoban.Sokoban(boxoban_levels.empty_levels())
  walls = levels.walls.copy()
  walls[0, 0, 5] = False
  with pytest.raises(ValueError, match='level 0: open border'):
    sokoban.Sokoban(levels._replace(walls=walls))
