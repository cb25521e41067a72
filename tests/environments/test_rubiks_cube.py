"""Tests for environments.rubiks_cube."""

import itertools

import numpy as np
import pytest
import tensorflow as tf
from tf_agents.specs import tensor_spec

from environments import rubiks_cube

U, F, R, B, L, D = range(6)
CLOCKWISE, ANTICLOCKWISE, HALF = range(3)
OPPOSITE_FACES = [(U, D), (F, B), (R, L)]
OPPOSITE = dict(OPPOSITE_FACES + [(b, a) for a, b in OPPOSITE_FACES])


def move(face, kind=CLOCKWISE):
  return 3 * face + kind


def inverse(action):
  face, kind = divmod(action, 3)
  return move(face, {CLOCKWISE: ANTICLOCKWISE, ANTICLOCKWISE: CLOCKWISE,
                     HALF: HALF}[kind])


def apply_sequence(permutations, stickers, actions):
  """Applies moves in order to stickers [..., 54] with numpy."""
  for action in actions:
    stickers = stickers[..., permutations[action]]
  return stickers


def solvable_in(permutations, stickers, num_moves):
  """Whether some sequence of exactly num_moves moves solves each cube.

  Args:
    permutations: int [18, 54].
    stickers: int [B, 54].
    num_moves: Python int >= 1.

  Returns:
    bool [B].
  """
  # composed[s] is the permutation of the s-th sequence of num_moves moves.
  composed = permutations
  for _ in range(num_moves - 1):
    composed = composed[:, permutations].reshape(-1, 54)
  faces = stickers[:, composed].reshape(len(stickers), -1, 6, 9)
  return np.all(faces == faces[..., :1], axis=(2, 3)).any(axis=1)


@pytest.fixture(name='cube', scope='module')
def fixture_cube():
  return rubiks_cube.RubiksCube()


@pytest.fixture(name='solved', scope='module')
def fixture_solved(cube):
  return cube.solved_stickers()


def test_specs(cube):
  assert cube.observation_spec() == tensor_spec.BoundedTensorSpec(
      (6, 3, 3), tf.int32, 0, 5, name='observation')
  assert cube.action_spec() == tensor_spec.BoundedTensorSpec(
      (), tf.int32, 0, 17, name='action')


def test_solved_stickers(solved):
  assert solved.shape == (54,)
  np.testing.assert_array_equal(solved.reshape(6, 9),
                                np.arange(6)[:, None] * np.ones(9))


def test_rows_are_permutations_fixing_centres(cube):
  permutations = cube.permutations
  assert permutations.shape == (18, 54)
  assert permutations.dtype == np.int32
  np.testing.assert_array_equal(np.sort(permutations, axis=1),
                                np.tile(np.arange(54), (18, 1)))
  centres = np.arange(6) * 9 + 4
  np.testing.assert_array_equal(permutations[:, centres],
                                np.tile(centres, (18, 1)))
  assert not permutations.flags.writeable


@pytest.mark.parametrize('action', range(18))
def test_move_moves_8_face_and_12_adjacent_stickers(cube, action):
  moved = np.flatnonzero(cube.permutations[action] != np.arange(54))
  on_face = moved // 9 == action // 3
  assert on_face.sum() == 8
  assert (~on_face).sum() == 12
  # The 12 adjacent stickers are 3 on each of the 4 neighbouring faces.
  neighbours, counts = np.unique(moved[~on_face] // 9, return_counts=True)
  assert len(neighbours) == 4
  np.testing.assert_array_equal(counts, 3)
  assert action // 3 not in neighbours
  assert OPPOSITE[action // 3] not in neighbours


def test_quarter_turns_are_clockwise_seen_from_outside(cube, solved):
  # U clockwise: the top row of F comes from R, that of L from F.
  faces = apply_sequence(cube.permutations, solved, [move(U)]).reshape(6, 3, 3)
  np.testing.assert_array_equal(faces[F, 0], R)
  np.testing.assert_array_equal(faces[L, 0], F)
  np.testing.assert_array_equal(faces[F, 1:], F)
  # R clockwise: the right column of U comes from F, that of F from D.
  faces = apply_sequence(cube.permutations, solved, [move(R)]).reshape(6, 3, 3)
  np.testing.assert_array_equal(faces[U, :, 2], F)
  np.testing.assert_array_equal(faces[F, :, 2], D)
  np.testing.assert_array_equal(faces[U, :, :2], U)


@pytest.mark.parametrize('face', range(6))
def test_move_algebra(cube, face):
  identity = np.arange(54)
  p = cube.permutations
  clockwise = move(face, CLOCKWISE)
  np.testing.assert_array_equal(apply_sequence(p, identity, [clockwise] * 4),
                                identity)
  assert not np.array_equal(apply_sequence(p, identity, [clockwise] * 2),
                            identity)
  np.testing.assert_array_equal(
      apply_sequence(p, identity, [clockwise, move(face, ANTICLOCKWISE)]),
      identity)
  np.testing.assert_array_equal(apply_sequence(p, identity, [clockwise] * 2),
                                p[move(face, HALF)])


@pytest.mark.parametrize('face_a,face_b', OPPOSITE_FACES)
def test_opposite_faces_commute(cube, face_a, face_b):
  identity = np.arange(54)
  for kind_a, kind_b in itertools.product(range(3), repeat=2):
    a, b = move(face_a, kind_a), move(face_b, kind_b)
    np.testing.assert_array_equal(
        apply_sequence(cube.permutations, identity, [a, b]),
        apply_sequence(cube.permutations, identity, [b, a]))


@pytest.mark.parametrize('face_a,face_b', [(U, R), (U, F), (F, R), (D, L)])
def test_adjacent_faces_do_not_commute(cube, face_a, face_b):
  identity = np.arange(54)
  a, b = move(face_a), move(face_b)
  assert not np.array_equal(
      apply_sequence(cube.permutations, identity, [a, b]),
      apply_sequence(cube.permutations, identity, [b, a]))


def test_sexy_move_has_order_6(cube, solved):
  sexy_move = [move(R), move(U), move(R, ANTICLOCKWISE),
               move(U, ANTICLOCKWISE)]
  stickers = solved
  for repetitions in range(1, 7):
    stickers = apply_sequence(cube.permutations, stickers, sexy_move)
    assert np.array_equal(stickers, solved) == (repetitions == 6)


def test_apply_move_matches_permutations(cube):
  stickers = np.random.default_rng(0).integers(0, 6, (18, 54), dtype=np.int8)
  moved = cube.apply_move(tf.constant(stickers), tf.range(18))
  assert moved.dtype == tf.int8
  expected = [stickers[a, cube.permutations[a]] for a in range(18)]
  np.testing.assert_array_equal(moved, expected)


def test_is_solved(cube, solved):
  single_moves = np.stack(
      [apply_sequence(cube.permutations, solved, [a]) for a in range(18)])
  scramble = [move(R), move(U, HALF), move(F, ANTICLOCKWISE), move(L),
              move(D), move(B, HALF)]
  scrambled = apply_sequence(cube.permutations, solved, scramble)
  unscrambled = apply_sequence(cube.permutations, scrambled,
                               [inverse(a) for a in reversed(scramble)])
  stickers = np.concatenate(
      [solved[None], single_moves, scrambled[None], unscrambled[None]])
  np.testing.assert_array_equal(
      cube.is_solved(tf.constant(stickers)),
      [True] + [False] * 18 + [False, True])
  # Uniform faces count as solved whatever their colours.
  np.testing.assert_array_equal(
      cube.is_solved(tf.constant(np.repeat([5, 1, 2, 3, 4, 0], 9)[None])),
      [True])


def test_step_rewards_the_solving_move(cube, solved):
  scramble = [move(R), move(U), move(F)]
  state = {
      'stickers': tf.constant(
          apply_sequence(cube.permutations, solved, scramble)[None]),
      'steps': tf.zeros([1], tf.int32),
  }
  rewards, discounts, dones = [], [], []
  for action in [inverse(a) for a in reversed(scramble)]:
    model_step = cube.step(state, tf.constant([action]))
    state = model_step.state
    rewards.append(model_step.reward.numpy()[0])
    discounts.append(model_step.discount.numpy()[0])
    dones.append(model_step.done.numpy()[0])
  assert rewards == [0.0, 0.0, 1.0]
  assert discounts == [1.0, 1.0, 0.0]
  assert dones == [False, False, True]
  np.testing.assert_array_equal(state['steps'], [3])
  np.testing.assert_array_equal(state['stickers'], [solved])
  assert model_step.reward.dtype == tf.float32
  assert model_step.discount.dtype == tf.float32


def test_time_limit_terminates_without_reward(cube, solved):
  # R followed by any number of U turns is never solved.
  state = {
      'stickers': tf.constant(
          apply_sequence(cube.permutations, solved, [move(R)])[None]),
      'steps': tf.zeros([1], tf.int32),
  }
  for steps in range(1, 21):
    model_step = cube.step(state, tf.constant([move(U)]))
    state = model_step.state
    assert model_step.state['steps'].numpy()[0] == steps
    assert model_step.reward.numpy()[0] == 0.0
    assert model_step.done.numpy()[0] == (steps == 20)
    assert model_step.discount.numpy()[0] == (0.0 if steps == 20 else 1.0)


def test_reset_state(cube):
  state = cube.reset(5, tf.constant([0, 1]))
  assert state['stickers'].dtype == tf.int8
  assert state['stickers'].shape == (5, 54)
  np.testing.assert_array_equal(state['steps'], np.zeros(5))
  assert state['steps'].dtype == tf.int32
  # Scrambling permutes the stickers: 9 of each colour, centres unmoved.
  stickers = state['stickers'].numpy()
  for colour in range(6):
    np.testing.assert_array_equal((stickers == colour).sum(axis=1), 9)
  np.testing.assert_array_equal(stickers[:, 4::9], np.tile(np.arange(6),
                                                           (5, 1)))


def test_one_move_scrambles_are_solved_by_exactly_one_move():
  cube = rubiks_cube.RubiksCube(min_scramble=1, max_scramble=1)
  stickers = cube.reset(32, tf.constant([3, 4]))['stickers'].numpy()
  solving_moves = np.stack([
      cube.is_solved(apply_sequence(cube.permutations, stickers, [a]))
      for a in range(18)], axis=1)
  np.testing.assert_array_equal(solving_moves.sum(axis=1), 1)
  # The scrambling moves are spread over the 18 actions.
  assert len(np.unique(np.argmax(solving_moves, axis=1))) > 6


def test_scrambles_are_solvable_within_their_depth():
  cube = rubiks_cube.RubiksCube(min_scramble=3, max_scramble=3)
  stickers = cube.reset(16, tf.constant([5, 6]))['stickers'].numpy()
  assert solvable_in(cube.permutations, stickers, 3).all()
  assert not solvable_in(cube.permutations, stickers, 1).all()


def test_scramble_depth_range():
  solved = rubiks_cube.RubiksCube(min_scramble=0, max_scramble=0).reset(
      8, tf.constant([7, 8]))['stickers']
  assert np.all(rubiks_cube.RubiksCube.is_solved(solved))
  cube = rubiks_cube.RubiksCube(min_scramble=0, max_scramble=1)
  stickers = cube.reset(64, tf.constant([7, 8]))['stickers'].numpy()
  is_solved = cube.is_solved(stickers).numpy()
  # Both depths 0 and 1 occur, and depth 1 is one move from solved.
  assert 0 < is_solved.sum() < 64
  assert solvable_in(cube.permutations, stickers[~is_solved], 1).all()


def test_reset_is_reproducible(cube):
  first = cube.reset(16, tf.constant([1, 2]))['stickers']
  again = cube.reset(16, tf.constant([1, 2], tf.int64))['stickers']
  other = cube.reset(16, tf.constant([1, 3]))['stickers']
  np.testing.assert_array_equal(first, again)
  assert not np.array_equal(first, other)
  # The cubes of a batch are scrambled independently.
  assert len(np.unique(first.numpy(), axis=0)) > 8


def test_observation_round_trip(cube):
  state = cube.reset(6, tf.constant([9, 9]))
  observation = cube.observe(state)
  assert observation.dtype == tf.int32
  assert observation.shape == (6, 6, 3, 3)
  np.testing.assert_array_equal(tf.reshape(observation, [6, 54]),
                                tf.cast(state['stickers'], tf.int32))
  rebuilt = cube.state_from_observation(observation)
  np.testing.assert_array_equal(rebuilt['stickers'], state['stickers'])
  assert rebuilt['stickers'].dtype == tf.int8
  np.testing.assert_array_equal(rebuilt['steps'], np.zeros(6))
  assert rebuilt['steps'].dtype == tf.int32
  np.testing.assert_array_equal(cube.observe(rebuilt), observation)


def test_runs_under_xla_with_dynamic_batch_size(cube):
  reset = tf.function(
      cube.reset, jit_compile=True,
      input_signature=[tf.TensorSpec([], tf.int32),
                       tf.TensorSpec([2], tf.int64)])
  state_spec = {'stickers': tf.TensorSpec([None, 54], tf.int8),
                'steps': tf.TensorSpec([None], tf.int32)}

  @tf.function(jit_compile=True,
               input_signature=[state_spec, tf.TensorSpec([None], tf.int32)])
  def step_and_observe(state, action):
    model_step = cube.step(state, action)
    observation = cube.observe(model_step.state)
    return model_step, cube.state_from_observation(observation)

  for batch_size in (3, 8):
    seed = tf.constant([batch_size, 0], tf.int64)
    state = reset(batch_size, seed)
    expected_state = cube.reset(batch_size, seed)
    tf.nest.map_structure(np.testing.assert_array_equal, state,
                          expected_state)
    action = tf.range(batch_size, dtype=tf.int32)
    model_step, rebuilt = step_and_observe(state, action)
    tf.nest.map_structure(np.testing.assert_array_equal, model_step,
                          cube.step(state, action))
    np.testing.assert_array_equal(rebuilt['stickers'],
                                  model_step.state['stickers'])
  assert reset.experimental_get_tracing_count() == 1
  assert step_and_observe.experimental_get_tracing_count() == 1


@pytest.mark.parametrize('kwargs,name', [
    (dict(min_scramble=-1), 'min_scramble'),
    (dict(min_scramble=4, max_scramble=3), 'max_scramble'),
    (dict(time_limit=0), 'time_limit'),
])
def test_constructor_rejects_bad_arguments(kwargs, name):
  with pytest.raises(ValueError, match=name):
    rubiks_cube.RubiksCube(**kwargs)
