"""The 3x3 Rubik's cube as an `EnvironmentModel`.

Faces U, F, R, B, L, D are numbered 0..5 and sticker `face * 9 + row * 3 + col`
is at (row, col) of its face seen from outside the cube, row 0 at the top. U
is seen with F at the bottom, D with F at the top, and F, R, B, L upright. The
solved cube has every sticker of face f coloured f.

Action `3 * face + k` turns a face clockwise (k = 0), anticlockwise (k = 1) or
by a half turn (k = 2), clockwise as seen from outside the cube.
"""

import numpy as np
import tensorflow as tf
from tf_agents.specs import tensor_spec

from environments import model as model_lib

_NUM_FACES = 6
_NUM_STICKERS = 54
_NUM_ACTIONS = 18

# Outward normals of the faces U, F, R, B, L, D, and the directions of their
# top rows seen from outside, in coordinates x (right), y (up), z (front).
_FACE_NORMALS = np.array(
    [[0, 1, 0], [0, 0, 1], [1, 0, 0], [0, 0, -1], [-1, 0, 0], [0, -1, 0]])
_FACE_UPS = np.array(
    [[0, 0, -1], [0, 1, 0], [0, 1, 0], [0, 1, 0], [0, 1, 0], [0, 0, 1]])
# Clockwise quarter turns making up a clockwise, anticlockwise and half turn.
_QUARTER_TURNS = (1, 3, 2)
# An explicit algorithm: with 'auto_select', XLA-compiled and uncompiled
# stateless sampling differ for the same seed.
_RNG_ALG = 'philox'


def _sticker_geometry():
  """Returns the position and outward normal of every sticker.

  Returns:
    A tuple (positions, normals) of int arrays [54, 3]: the centre of the
    sticker's cubie in {-1, 0, 1}^3 and the normal of the sticker's face.
  """
  rows, cols = np.divmod(np.arange(_NUM_STICKERS // _NUM_FACES), 3)
  positions = []
  for normal, up in zip(_FACE_NORMALS, _FACE_UPS):
    right = np.cross(up, normal)
    positions.append(normal + np.outer(cols - 1, right) +
                     np.outer(1 - rows, up))
  normals = np.repeat(_FACE_NORMALS, _NUM_STICKERS // _NUM_FACES, axis=0)
  return np.concatenate(positions), normals


def _quarter_turn(vectors, axis):
  """Rotates vectors [N, 3] a quarter turn clockwise, seen from the axis tip."""
  return np.outer(vectors @ axis, axis) - np.cross(axis, vectors)


def _move_permutations():
  """Derives the sticker permutation of every move from the cube's geometry.

  Returns:
    int32 [18, 54] array `p` such that move `a` takes stickers `s` to
    `s[p[a]]`.
  """
  positions, normals = _sticker_geometry()
  index = {(tuple(p), tuple(n)): i
           for i, (p, n) in enumerate(zip(positions, normals))}
  permutations = np.empty((_NUM_ACTIONS, _NUM_STICKERS), np.int32)
  for face, axis in enumerate(_FACE_NORMALS):
    layer = positions @ axis == 1
    for kind, quarter_turns in enumerate(_QUARTER_TURNS):
      new_positions, new_normals = positions.copy(), normals.copy()
      for _ in range(quarter_turns):
        new_positions[layer] = _quarter_turn(new_positions[layer], axis)
        new_normals[layer] = _quarter_turn(new_normals[layer], axis)
      destinations = [index[(tuple(p), tuple(n))]
                      for p, n in zip(new_positions, new_normals)]
      permutations[3 * face + kind, destinations] = np.arange(_NUM_STICKERS)
  return permutations


class RubiksCube(model_lib.EnvironmentModel):
  """Solving a scrambled Rubik's cube within a time limit.

  State: dict with 'stickers', int8 [B, 54], the colour of every sticker, and
  'steps', int32 [B], the number of moves made in the episode. Observation:
  int32 [B, 6, 3, 3], the colours as (face, row, col). Episodes start from the
  solved cube scrambled by a uniformly random number of uniformly random moves
  in [min_scramble, max_scramble]. The reward is 1.0 on the move that solves
  the cube, else 0.0. An episode terminates (discount 0.0) when the cube is
  solved or after `time_limit` moves.
  """

  def __init__(self, min_scramble=3, max_scramble=7, time_limit=20):
    """Creates the model.

    Args:
      min_scramble: Python int >= 0, the fewest scramble moves.
      max_scramble: Python int >= min_scramble, the most scramble moves.
      time_limit: Python int >= 1, the number of moves per episode.

    Raises:
      ValueError: If an argument is out of range.
    """
    if min_scramble < 0:
      raise ValueError(f'min_scramble must be >= 0, got {min_scramble}.')
    if max_scramble < min_scramble:
      raise ValueError(f'max_scramble must be >= min_scramble '
                       f'({min_scramble}), got {max_scramble}.')
    if time_limit < 1:
      raise ValueError(f'time_limit must be >= 1, got {time_limit}.')
    super().__init__(name='rubiks_cube')
    self._min_scramble = min_scramble
    self._max_scramble = max_scramble
    self._time_limit = time_limit
    self._permutations = _move_permutations()
    self._permutations.flags.writeable = False

  @property
  def permutations(self):
    """Read-only int32 [18, 54]: move `a` takes stickers `s` to `s[p[a]]`."""
    return self._permutations

  @staticmethod
  def solved_stickers():
    """Returns the stickers of the solved cube, int8 [54]."""
    return np.repeat(np.arange(_NUM_FACES, dtype=np.int8),
                     _NUM_STICKERS // _NUM_FACES)

  @staticmethod
  def is_solved(stickers):
    """Returns whether every face is uniform.

    Args:
      stickers: Integer [B, 54].

    Returns:
      bool [B].
    """
    faces = tf.reshape(stickers, [-1, _NUM_FACES, _NUM_STICKERS // _NUM_FACES])
    return tf.reduce_all(tf.equal(faces, faces[:, :, :1]), axis=[1, 2])

  def apply_move(self, stickers, action):
    """Applies one move per cube.

    Args:
      stickers: [B, 54], any dtype.
      action: int32 [B], the moves.

    Returns:
      The moved stickers, [B, 54] with the dtype of `stickers`.
    """
    return tf.gather(stickers, tf.gather(self._permutations, action),
                     batch_dims=1)

  def observation_spec(self):
    return tensor_spec.BoundedTensorSpec(
        (_NUM_FACES, 3, 3), tf.int32, 0, _NUM_FACES - 1, name='observation')

  def action_spec(self):
    return tensor_spec.BoundedTensorSpec(
        (), tf.int32, 0, _NUM_ACTIONS - 1, name='action')

  def reset(self, batch_size, seed):
    # Cast so that int32 and int64 seeds of the same value agree.
    depth_seed, moves_seed = tf.unstack(tf.random.experimental.stateless_split(
        tf.cast(seed, tf.int64), 2, alg=_RNG_ALG))
    depths = tf.random.stateless_uniform(
        [batch_size], depth_seed, minval=self._min_scramble,
        maxval=self._max_scramble + 1, dtype=tf.int32, alg=_RNG_ALG)
    moves = tf.random.stateless_uniform(
        [batch_size, self._max_scramble], moves_seed, minval=0,
        maxval=_NUM_ACTIONS, dtype=tf.int32, alg=_RNG_ALG)
    stickers = tf.broadcast_to(self.solved_stickers(),
                               [batch_size, _NUM_STICKERS])
    for i in range(self._max_scramble):
      stickers = tf.where((depths > i)[:, None],
                          self.apply_move(stickers, moves[:, i]), stickers)
    return {'stickers': stickers, 'steps': tf.zeros([batch_size], tf.int32)}

  def step(self, state, action):
    stickers = self.apply_move(state['stickers'], action)
    steps = state['steps'] + 1
    solved = self.is_solved(stickers)
    done = tf.logical_or(solved, steps >= self._time_limit)
    return model_lib.ModelStep(
        state={'stickers': stickers, 'steps': steps},
        reward=tf.cast(solved, tf.float32),
        discount=1.0 - tf.cast(done, tf.float32),
        done=done,
    )

  def observe(self, state):
    return tf.reshape(tf.cast(state['stickers'], tf.int32),
                      [-1, _NUM_FACES, 3, 3])

  def state_from_observation(self, observation):
    stickers = tf.cast(tf.reshape(observation, [-1, _NUM_STICKERS]), tf.int8)
    return {'stickers': stickers,
            'steps': tf.zeros(tf.shape(stickers)[:1], tf.int32)}
