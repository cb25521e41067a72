"""Tests for environments.snake, on hand-built states with known answers."""

import numpy as np
import pytest
import tensorflow as tf
from tf_agents.specs import tensor_spec
from tf_agents.trajectories import time_step as ts

from environments import model as model_lib
from environments import snake
from tests.support import model_checks

N = 12
UP, RIGHT, DOWN, LEFT = range(4)
DELTAS = {UP: (-1, 0), RIGHT: (0, 1), DOWN: (1, 0), LEFT: (0, -1)}
BODY, HEAD, TAIL, FRUIT, ORDER = range(5)
STATE_KEYS = ('body', 'head', 'length', 'fruit', 'key', 'steps')


@pytest.fixture(name='model', scope='module')
def fixture_model():
  return snake.Snake()


as_numpy = model_checks.as_numpy


def action_between(a, b):
  """The action moving a head from cell a to the adjacent cell b."""
  delta = (b[0] - a[0], b[1] - a[1])
  return next(action for action, d in DELTAS.items() if d == delta)


def serpentine(n=N):
  """Every cell of the board on a path of adjacent cells, row by row."""
  return [(r, c) for r in range(n)
          for c in (range(n) if r % 2 == 0 else reversed(range(n)))]


def make_state(cells, fruit, keys=((1, 2),), steps=0, n=N):
  """A batch of states with the same snake and fruit, one per key.

  Args:
    cells: (row, col) of the body cells from the tail to the head.
    fruit: (row, col) of the fruit.
    keys: int pairs, the key of each batch element.
    steps: the step count.
    n: the board size.

  Returns:
    The state, a dict of tensors with batch size len(keys).
  """
  body = np.zeros((n, n), np.int32)
  for order, cell in enumerate(cells, start=1):
    body[cell] = order
  batch = len(keys)
  return {
      'body': tf.constant(np.broadcast_to(body, (batch, n, n))),
      'head': tf.constant(np.broadcast_to(cells[-1], (batch, 2)), tf.int32),
      'length': tf.fill([batch], len(cells)),
      'fruit': tf.constant(np.broadcast_to(fruit, (batch, 2)), tf.int32),
      'key': tf.constant(np.asarray(keys, np.int64).astype(np.int32)),
      'steps': tf.fill([batch], steps),
  }


def random_keys(num_keys, seed):
  return np.random.default_rng(seed).integers(
      -2**31, 2**31, (num_keys, 2)).astype(np.int32)


def step(model, state, action):
  batch = state['length'].shape[0]
  return model.step(state, tf.fill([batch], action))


def body_of(cells, n=N):
  body = np.zeros((n, n), np.int32)
  for order, cell in enumerate(cells, start=1):
    body[cell] = order
  return body


def cells_of(body):
  """Set of the (row, col) of the nonzero cells of one body [N, N]."""
  return {tuple(cell) for cell in np.argwhere(body)}


def assert_transition(model_step, reward, discount, done):
  np.testing.assert_array_equal(model_step.reward, reward)
  np.testing.assert_array_equal(model_step.discount, discount)
  np.testing.assert_array_equal(model_step.done, done)


def test_specs(model):
  spec = model.observation_spec()
  assert isinstance(spec, model_lib.PlanningObservation)
  assert spec.network_input == tensor_spec.BoundedTensorSpec(
      (N, N, 5), tf.float32, 0.0, 1.0, name='observation')
  assert spec.planning_state == {
      'body': tf.TensorSpec((N, N), tf.int32, name='body'),
      'head': tf.TensorSpec((2,), tf.int32, name='head'),
      'length': tf.TensorSpec((), tf.int32, name='length'),
      'fruit': tf.TensorSpec((2,), tf.int32, name='fruit'),
      'key': tf.TensorSpec((2,), tf.int32, name='key'),
      'steps': tf.TensorSpec((), tf.int32, name='steps'),
  }
  assert model.network_input_spec() == spec.network_input
  assert model.action_spec() == tensor_spec.BoundedTensorSpec(
      (), tf.int32, 0, 3, name='action')
  assert model.time_limit == 4000 and model.board_size == N
  small = snake.Snake(time_limit=7, board_size=5)
  assert small.time_limit == 7
  assert small.observation_spec().network_input.shape == (5, 5, 5)


def test_observe_and_step_match_specs(model):
  state = model.reset(5, tf.constant([0, 1]))
  spec = model.observation_spec()
  for nest in (state, model.step(state, tf.zeros([5], tf.int32)).state):
    observation = model.observe(nest)
    tf.nest.assert_same_structure(observation, spec)
    for tensor, tensor_spec_ in zip(tf.nest.flatten(observation),
                                    tf.nest.flatten(spec)):
      assert tensor.dtype == tensor_spec_.dtype
      assert tensor.shape == [5] + tensor_spec_.shape
    assert observation.planning_state is nest


def test_reset_distribution(model):
  batch = 144 * 200
  state = as_numpy(model.reset(batch, tf.constant([1, 2])))
  np.testing.assert_array_equal(state['length'], 1)
  np.testing.assert_array_equal(state['steps'], 0)
  head, fruit = state['head'], state['fruit']
  assert head.min() >= 0 and head.max() < N
  assert fruit.min() >= 0 and fruit.max() < N
  # The body is the head alone, with order 1.
  expected_body = np.zeros((batch, N, N), np.int32)
  expected_body[np.arange(batch), head[:, 0], head[:, 1]] = 1
  np.testing.assert_array_equal(state['body'], expected_body)
  # The fruit is on another cell.
  assert not np.any(np.all(head == fruit, axis=1))
  # Both roughly uniform over the cells (200 expected per cell, sd ~14).
  for position in (head, fruit):
    counts = np.bincount(position[:, 0] * N + position[:, 1],
                         minlength=N * N)
    assert counts.min() > 130 and counts.max() < 270, counts
  # Keys differ between episodes.
  assert len({tuple(key) for key in state['key']}) == batch


def test_reset_is_deterministic_in_the_seed(model):
  first = as_numpy(model.reset(64, tf.constant([1, 2])))
  again = as_numpy(model.reset(64, tf.constant([1, 2], tf.int64)))
  other = as_numpy(model.reset(64, tf.constant([1, 3])))
  tf.nest.map_structure(np.testing.assert_array_equal, first, again)
  assert np.mean(np.all(first['head'] == other['head'], axis=1)) < 0.2
  assert not np.any(first['key'] == other['key'])


@pytest.mark.parametrize('action', range(4))
def test_actions_move_the_head(model, action):
  """Up is row - 1, right col + 1, down row + 1, left col - 1."""
  state = make_state([(5, 5)], fruit=(0, 0))
  model_step = step(model, state, action)
  delta = DELTAS[action]
  new_head = (5 + delta[0], 5 + delta[1])
  np.testing.assert_array_equal(model_step.state['head'], [new_head])
  np.testing.assert_array_equal(model_step.state['body'][0],
                                body_of([new_head]))
  assert_transition(model_step, 0.0, 1.0, False)


def test_moving_frees_the_tail(model):
  cells = [(5, 3), (5, 4), (5, 5)]
  state = make_state(cells, fruit=(0, 0))
  model_step = step(model, state, RIGHT)
  new_state = as_numpy(model_step.state)
  assert_transition(model_step, 0.0, 1.0, False)
  expected = np.zeros((N, N), np.int32)
  expected[5, 4], expected[5, 5], expected[5, 6] = 1, 2, 3
  np.testing.assert_array_equal(new_state['body'][0], expected)
  np.testing.assert_array_equal(new_state['head'], [[5, 6]])
  np.testing.assert_array_equal(new_state['length'], [3])
  np.testing.assert_array_equal(new_state['fruit'], [[0, 0]])
  np.testing.assert_array_equal(new_state['steps'], [1])
  assert not np.array_equal(new_state['key'], [[1, 2]])


def test_eating_grows_the_snake_and_places_a_new_fruit(model):
  cells = [(5, 3), (5, 4), (5, 5)]
  keys = random_keys(100, seed=0)
  state = make_state(cells, fruit=(5, 6), keys=keys)
  model_step = step(model, state, RIGHT)
  new_state = as_numpy(model_step.state)
  assert_transition(model_step, 1.0, 1.0, False)
  # The tail stays and the head is the fourth cell.
  expected = np.zeros((N, N), np.int32)
  expected[5, 3], expected[5, 4], expected[5, 5], expected[5, 6] = 1, 2, 3, 4
  for body in new_state['body']:
    np.testing.assert_array_equal(body, expected)
  np.testing.assert_array_equal(new_state['head'], [[5, 6]] * 100)
  np.testing.assert_array_equal(new_state['length'], 4)
  # The new fruit is on an empty cell and depends on the key.
  fruit = new_state['fruit']
  assert np.all(expected[fruit[:, 0], fruit[:, 1]] == 0)
  assert len({tuple(f) for f in fruit}) > 50
  # A further step without fruit moves the grown snake on.
  first = tf.nest.map_structure(lambda t: t[:1], model_step.state)
  target = (4, 6) if tuple(fruit[0]) != (4, 6) else (6, 6)
  next_step = step(model, first, action_between((5, 6), target))
  assert_transition(next_step, 0.0, 1.0, False)
  np.testing.assert_array_equal(
      next_step.state['body'][0], body_of([(5, 4), (5, 5), (5, 6), target]))
  np.testing.assert_array_equal(next_step.state['fruit'], fruit[:1])


@pytest.mark.parametrize(('head', 'action'), [
    ((0, 5), UP), ((5, N - 1), RIGHT), ((N - 1, 5), DOWN), ((5, 0), LEFT),
    ((0, 0), UP), ((0, 0), LEFT), ((N - 1, N - 1), DOWN),
    ((N - 1, N - 1), RIGHT)])
def test_leaving_the_board_terminates(model, head, action):
  state = make_state([head], fruit=(6, 6) if head != (6, 6) else (7, 7))
  model_step = step(model, state, action)
  assert_transition(model_step, 0.0, 0.0, True)
  # The head is off the board and the observation shows no head.
  delta = DELTAS[action]
  np.testing.assert_array_equal(model_step.state['head'],
                                [[head[0] + delta[0], head[1] + delta[1]]])
  observation = model.observe(model_step.state).network_input.numpy()
  assert observation[0, :, :, HEAD].sum() == 0
  assert observation[0, :, :, BODY].sum() == 0


@pytest.mark.parametrize(('head', 'action'), [
    ((0, 5), LEFT), ((0, 5), RIGHT), ((0, 5), DOWN), ((N - 1, 0), UP),
    ((N - 1, 0), RIGHT)])
def test_moving_along_the_edge_does_not_terminate(model, head, action):
  model_step = step(model, make_state([head], fruit=(6, 6)), action)
  assert_transition(model_step, 0.0, 1.0, False)


def test_hitting_the_body_terminates(model):
  # A U-turn: the head at (4, 4) moving down hits (5, 4), of order 2 of 5.
  cells = [(5, 3), (5, 4), (5, 5), (4, 5), (4, 4)]
  state = make_state(cells, fruit=(0, 0))
  assert_transition(step(model, state, DOWN), 0.0, 0.0, True)
  # Moving up or left is free.
  assert_transition(step(model, state, UP), 0.0, 1.0, False)
  assert_transition(step(model, state, LEFT), 0.0, 1.0, False)


def test_moving_back_into_the_neck_terminates(model):
  cells = [(5, 3), (5, 4), (5, 5)]
  state = make_state(cells, fruit=(0, 0))
  assert_transition(step(model, state, LEFT), 0.0, 0.0, True)
  for action in (UP, RIGHT, DOWN):
    assert_transition(step(model, state, action), 0.0, 1.0, False)


def test_length_two_may_reverse_into_its_tail(model):
  """The neck of a snake of length 2 is its tail, vacated (as Jumanji)."""
  state = make_state([(5, 4), (5, 5)], fruit=(0, 0))
  model_step = step(model, state, LEFT)
  assert_transition(model_step, 0.0, 1.0, False)
  np.testing.assert_array_equal(model_step.state['body'][0],
                                body_of([(5, 5), (5, 4)]))


def test_entering_the_vacated_tail_cell_does_not_terminate(model):
  """A snake of length 4 fills a 2x2 loop and chases its tail."""
  loop = [(4, 4), (4, 5), (5, 5), (5, 4)]
  state = make_state(loop, fruit=(0, 0))
  for t in range(12):
    head = tuple(state['head'][0].numpy())
    tail = loop[t % 4]
    model_step = step(model, state, action_between(head, tail))
    assert_transition(model_step, 0.0, 1.0, False)
    state = model_step.state
    rotated = [loop[(t + 1 + i) % 4] for i in range(4)]
    np.testing.assert_array_equal(state['body'][0], body_of(rotated))
    np.testing.assert_array_equal(state['head'][0], rotated[-1])
    np.testing.assert_array_equal(state['length'], [4])


def test_fruit_is_placed_uniformly_on_empty_cells_only(model):
  """A snake of 134 cells eats; 9 cells are left for the new fruit."""
  path = serpentine()
  length = 134
  num_keys = 9000
  state = make_state(path[:length], fruit=path[length],
                     keys=random_keys(num_keys, seed=1))
  model_step = step(model, state, action_between(path[length - 1],
                                                 path[length]))
  assert_transition(model_step, 1.0, 1.0, False)
  body = model_step.state['body'][0].numpy()
  np.testing.assert_array_equal(body, body_of(path[:length + 1]))
  fruit = model_step.state['fruit'].numpy()
  cells = fruit[:, 0] * N + fruit[:, 1]
  empty = sorted(r * N + c for r, c in path[length + 1:])
  assert set(cells) == set(empty)
  # 1000 expected per cell, sd ~30.
  counts = np.bincount(cells, minlength=N * N)[empty]
  assert counts.min() > 850 and counts.max() < 1150, counts


def test_fruit_placement_covers_a_sparse_board(model):
  """After the first fruit, every one of the 142 empty cells is reachable."""
  num_keys = 142 * 200
  state = make_state([(3, 7)], fruit=(3, 8),
                     keys=random_keys(num_keys, seed=2))
  model_step = step(model, state, RIGHT)
  assert_transition(model_step, 1.0, 1.0, False)
  fruit = model_step.state['fruit'].numpy()
  counts = np.bincount(fruit[:, 0] * N + fruit[:, 1], minlength=N * N)
  occupied = [3 * N + 7, 3 * N + 8]
  np.testing.assert_array_equal(counts[occupied], 0)
  # 200 expected per cell, sd ~14.
  free = np.delete(counts, occupied)
  assert free.min() > 130 and free.max() < 270, counts


@pytest.mark.parametrize('board_size', [3, N])
def test_filling_the_board_terminates(board_size):
  model = snake.Snake(board_size=board_size)
  path = serpentine(board_size)
  state = make_state(path[:-1], fruit=path[-1], keys=random_keys(8, seed=3),
                     n=board_size)
  model_step = step(model, state, action_between(path[-2], path[-1]))
  assert_transition(model_step, 1.0, 0.0, True)
  np.testing.assert_array_equal(model_step.state['length'],
                                board_size * board_size)
  np.testing.assert_array_equal(model_step.state['body'][0],
                                body_of(path, board_size))
  # No cell is left: the fruit stays where it was eaten.
  np.testing.assert_array_equal(model_step.state['fruit'],
                                [path[-1]] * 8)
  # One cell short of full does not terminate.
  state = make_state(path[:-2], fruit=path[-2], n=board_size)
  model_step = step(model, state, action_between(path[-3], path[-2]))
  assert_transition(model_step, 1.0, 1.0, False)
  np.testing.assert_array_equal(model_step.state['fruit'], [path[-1]])


def test_steps_are_deterministic_in_the_state(model):
  """Equal particles stay equal; different keys place different fruit."""
  path = serpentine()
  keys = random_keys(64, seed=4)
  keys[1] = keys[0]
  state = make_state(path[:20], fruit=path[20], keys=keys)
  action = action_between(path[19], path[20])
  first = as_numpy(step(model, state, action))
  again = as_numpy(step(model, state, action))
  tf.nest.map_structure(np.testing.assert_array_equal, first, again)
  for key in STATE_KEYS:
    np.testing.assert_array_equal(first.state[key][0], first.state[key][1])
  fruit = first.state['fruit']
  assert len({tuple(f) for f in fruit[1:]}) > 40
  # Changing either word of a key changes the draw and the next key.
  base = np.array([[12345, -678], [12346, -678], [12345, -677]], np.int32)
  draws = snake.hash_key(tf.constant(base), 0).numpy()
  assert len(set(draws)) == 3 and draws.min() >= 0
  next_keys = snake.split_key(tf.constant(base)).numpy()
  assert len({tuple(k) for k in next_keys}) == 3
  assert not np.any(next_keys == base)


def test_key_changes_every_step_and_fruit_depends_on_it(model):
  """The same snake eating at different steps gets different fruit."""
  state = make_state([(0, 0)], fruit=(0, 11), keys=[(7, 8)])
  fruits = set()
  keys = set()
  for delay in range(12):
    current = state
    for _ in range(delay):  # Wait by moving down and back up, no fruit.
      for action in (DOWN, UP):
        current = step(model, current, action).state
        keys.add(tuple(current['key'][0].numpy()))
    # Walk right to the fruit.
    for _ in range(11):
      model_step = step(model, current, RIGHT)
      current = model_step.state
    assert_transition(model_step, 1.0, 1.0, False)
    fruits.add(tuple(current['fruit'][0].numpy()))
  assert len(keys) == 2 * 11
  assert len(fruits) > 6


def test_truncation_at_the_time_limit():
  model = snake.Snake(time_limit=5)
  state = make_state([(5, 5)], fruit=(0, 0), steps=3)
  model_step = step(model, state, UP)
  assert_transition(model_step, 0.0, 1.0, False)
  np.testing.assert_array_equal(model_step.state['steps'], [4])
  model_step = step(model, model_step.state, UP)
  assert_transition(model_step, 0.0, 1.0, True)
  np.testing.assert_array_equal(model_step.state['steps'], [5])
  # Eating on the last step is rewarded and truncated.
  state = make_state([(5, 5)], fruit=(4, 5), steps=4)
  assert_transition(step(model, state, UP), 1.0, 1.0, True)
  # Terminating on the last step is a termination.
  state = make_state([(0, 5)], fruit=(4, 5), steps=4)
  assert_transition(step(model, state, UP), 0.0, 0.0, True)


def test_observation_channels(model):
  cells = [(2, 1), (2, 2), (3, 2), (4, 2)]
  state = make_state(cells, fruit=(7, 9))
  observation = model.observe(state).network_input.numpy()[0]
  expected = np.zeros((N, N, 5), np.float32)
  for order, cell in enumerate(cells, start=1):
    expected[cell][BODY] = 1.0
    expected[cell][ORDER] = order / 4
  expected[4, 2, HEAD] = 1.0
  expected[2, 1, TAIL] = 1.0
  expected[7, 9, FRUIT] = 1.0
  np.testing.assert_array_equal(observation, expected)
  # A snake of length 1 is head, tail and body at once.
  observation = model.observe(make_state([(0, 11)], fruit=(11, 0)))
  observation = observation.network_input.numpy()[0]
  np.testing.assert_array_equal(observation[0, 11], [1, 1, 1, 0, 1])
  np.testing.assert_array_equal(observation[11, 0], [0, 0, 0, 1, 0])
  assert observation.sum() == 5


def planning_state_signature(model):
  return tf.nest.map_structure(
      lambda spec: tf.TensorSpec([None, *spec.shape], spec.dtype),
      model.observation_spec().planning_state)


def test_xla_with_unknown_batch_size_matches_eager(model):
  num_steps = 12
  rollout = model_checks.rollout_fn(model, num_steps)
  compiled_rollout = model_checks.compiled_rollout_fn(model, num_steps)

  def step_and_observe(state, action):
    model_step = model.step(state, action)
    return model_step, model.observe(model_step.state)

  compiled_step = tf.function(
      step_and_observe, jit_compile=True, input_signature=[
          planning_state_signature(model), tf.TensorSpec([None], tf.int32)])
  rng = np.random.default_rng(9)
  path = serpentine()

  for batch_size in (1, 300):
    seed = tf.constant([11, batch_size], tf.int64)
    actions = tf.constant(rng.integers(0, 4, (num_steps, batch_size)),
                          tf.int32)
    model_checks.assert_nests_equal(as_numpy(rollout(seed, actions)),
                 as_numpy(compiled_rollout(seed, actions)))
    # Eating, with fruit placement, on a crowded and an empty board.
    for length in (1, 100):
      state = make_state(path[:length], fruit=path[length],
                         keys=random_keys(batch_size, seed=length))
      action = tf.fill([batch_size], action_between(path[length - 1],
                                                    path[length]))
      expected = as_numpy(step_and_observe(state, action))
      model_checks.assert_nests_equal(
          expected, as_numpy(compiled_step(state, action)))
      np.testing.assert_array_equal(expected[0].reward, 1.0)


def test_model_environment_runs_episodes():
  """Moving up from row r ends the episode on the top edge at step r + 1."""
  batch_size = 4
  env = model_lib.ModelEnvironment(snake.Snake(), batch_size=batch_size,
                                   seed=0)
  time_step = env.current_time_step()
  assert isinstance(time_step.observation, model_lib.PlanningObservation)
  np.testing.assert_array_equal(time_step.step_type, ts.StepType.FIRST)
  rows = time_step.observation.planning_state['head'][:, 0].numpy()
  action = tf.fill([batch_size], UP)
  ended = np.zeros(batch_size, bool)
  for t in range(1, N + 1):
    time_step = env.step(action)
    assert time_step.observation.network_input.shape == (batch_size, N, N, 5)
    step_type = time_step.step_type.numpy()
    last = (rows + 1 == t)
    np.testing.assert_array_equal(step_type[last], ts.StepType.LAST)
    np.testing.assert_array_equal(time_step.discount.numpy()[last], 0.0)
    np.testing.assert_array_equal(step_type[~ended & ~last], ts.StepType.MID)
    # The step after the last restarts with a snake of length 1.
    restarted = ended & (rows + 2 == t)
    np.testing.assert_array_equal(step_type[restarted], ts.StepType.FIRST)
    np.testing.assert_array_equal(
        time_step.observation.planning_state['length'].numpy()[restarted], 1)
    ended |= last


@pytest.mark.parametrize('time_limit', [0, -1])
def test_invalid_time_limit_raises(time_limit):
  with pytest.raises(ValueError, match='time_limit must be >= 1'):
    snake.Snake(time_limit=time_limit)


def test_invalid_board_size_raises():
  with pytest.raises(ValueError, match='board_size must be >= 2'):
    snake.Snake(board_size=1)
