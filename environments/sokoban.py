"""Sokoban on 10x10 Boxoban levels as an `EnvironmentModel`.

The player moves up, right, down or left (actions 0, 1, 2, 3). Moving into a
wall does nothing; moving into a box pushes it one cell if the cell beyond is
floor or a goal (no wall and no box), else does nothing: boxes are never
pushed in a chain. Every step costs 0.1, moves that do nothing included; a
box pushed onto a goal earns 1, a box pushed off a goal costs 1, and the step
that puts every box on a goal earns 10 and ends the episode (discount 0.0).
Episodes not solved after `time_limit` steps are truncated (done with
discount 1.0). These are the rules and rewards of Boxoban (DeepMind's
Sokoban levels) as used by SPO.

Every episode starts from a level drawn uniformly from a fixed set of levels
(see `environments.boxoban_levels`), which the model holds as constants.
Levels have closed borders, so the player, and every box it can push, stays
inside the ring of walls; steps are computed by flat cell arithmetic
(`row * 10 + col`) and one-hot masks, without gathers from the grids.

The observation's grid does not show the step count, so the model observes a
`PlanningObservation` that carries its state.
"""

import numpy as np
import tensorflow as tf
from tf_agents.specs import tensor_spec

from environments import boxoban_levels
from environments import model as model_lib

SIZE = boxoban_levels.SIZE
_NUM_CELLS = SIZE * SIZE
# The inner cells, inside the ring of walls, are stored as bits.
_INNER = SIZE - 2
_BITS_PER_WORD = 32
_WORDS = _INNER * _INNER // _BITS_PER_WORD
# The flat cell steps of actions 0 up, 1 right, 2 down, 3 left.
_FLAT_STEPS = tuple(SIZE * row + col
                    for row, col in boxoban_levels.ACTION_STEPS)
# The reward of a step, indexed by 3 * solved + (the change in the number of
# boxes on goals, -1, 0 or 1) + 1. Looked up, rather than summed, so that it
# is exactly the float32 nearest the decimal value, eagerly and under XLA.
_REWARDS = (-1.1, -0.1, 0.9, 8.9, 9.9, 10.9)
# An explicit algorithm: with 'auto_select', XLA-compiled and uncompiled
# stateless sampling differ for the same seed.
_RNG_ALG = 'philox'


def _pack(grids):
  """Packs the inner cells of bool grids into bits.

  Args:
    grids: bool array [L, 10, 10].

  Returns:
    int32 array [L, 2]: bit j of word w is inner cell 32 w + j, numbering
    the inner 8x8 cells row by row.
  """
  bits = grids[:, 1:-1, 1:-1].reshape(-1, _WORDS, _BITS_PER_WORD)
  weights = np.left_shift(np.uint32(1),
                          np.arange(_BITS_PER_WORD, dtype=np.uint32))
  words = (bits.astype(np.uint32) * weights).sum(axis=-1, dtype=np.uint32)
  return words.view(np.int32)


def _unpack(words, border):
  """Unpacks grids packed by `_pack`.

  Args:
    words: int32 [B, 2].
    border: Python bool, the value of the cells of the outer ring.

  Returns:
    bool [B, 10, 10].
  """
  shifts = tf.range(_BITS_PER_WORD, dtype=tf.int32)
  bits = tf.bitwise.bitwise_and(
      tf.bitwise.right_shift(words[:, :, None], shifts), 1)
  inner = tf.reshape(tf.equal(bits, 1), [-1, _INNER, _INNER])
  if border:
    return tf.logical_not(tf.pad(tf.logical_not(inner),
                                 [[0, 0], [1, 1], [1, 1]]))
  return tf.pad(inner, [[0, 0], [1, 1], [1, 1]])


def _at(grid, mask):
  """Reads one cell per batch element.

  Args:
    grid: bool [B, 100], flat grids.
    mask: bool [B, 100], one-hot cell masks (or all false).

  Returns:
    bool [B], the masked cells (false where the mask is all false).
  """
  return tf.reduce_any(tf.logical_and(grid, mask), axis=1)


class Sokoban(model_lib.EnvironmentModel):
  """Pushing boxes onto goals in 10x10 Boxoban levels.

  State: dict with 'walls', 'targets' (the goals) and 'boxes', bool
  [B, 10, 10], 'player', int32 [B, 2], the player's (row, col), and 'steps',
  int32 [B], the number of steps taken in the episode. Action: int32 [B],
  0 up, 1 right, 2 down, 3 left. Observation: a `PlanningObservation` whose
  network input is float32 [B, 10, 10, 4], the channels wall, goal, box and
  player as 0.0 or 1.0, and whose planning state is the state. See the
  module docstring for the rules and rewards.
  """

  def __init__(self, levels, time_limit=120, sequential=False,
               name='sokoban'):
    """Creates the model.

    Args:
      levels: `boxoban_levels.Levels`, at least one valid level; episodes
        start from a level drawn uniformly.
      time_limit: Python int >= 1, the number of steps after which an
        unsolved episode is truncated.
      sequential: `reset` starts episode i of its batch at level
        i mod num_levels, ignoring the seed: evaluation over every level of
        a set, in order.
      name: Name of the module.

    Raises:
      ValueError: If `time_limit` is out of range or `levels` is empty or
        invalid.
    """
    if time_limit < 1:
      raise ValueError(f'time_limit must be >= 1, got {time_limit}.')
    boxoban_levels.validate_levels(levels)
    if levels.num_levels < 1:
      raise ValueError('Sokoban needs at least one level, got none.')
    super().__init__(name=name)
    self._time_limit = time_limit
    self._sequential = sequential
    self._num_levels = levels.num_levels
    # 24 bytes of grids and 8 of player per level, so that large level sets
    # (Boxoban's 900k training levels) stay small. Created eagerly, they are
    # captured by functions rather than embedded in their graphs.
    self._grids = tf.constant(np.stack(
        [_pack(levels.walls), _pack(levels.targets), _pack(levels.boxes)],
        axis=1))
    self._players = tf.constant(levels.player, tf.int32)

  @property
  def time_limit(self):
    """The number of steps after which an unsolved episode is truncated."""
    return self._time_limit

  @property
  def num_levels(self):
    """The number of levels episodes start from."""
    return self._num_levels

  def observation_spec(self):
    grid_spec = lambda name: tensor_spec.TensorSpec(
        (SIZE, SIZE), tf.bool, name=name)
    return model_lib.PlanningObservation(
        network_input=tensor_spec.BoundedTensorSpec(
            (SIZE, SIZE, 4), tf.float32, 0.0, 1.0, name='observation'),
        planning_state={
            'walls': grid_spec('walls'),
            'targets': grid_spec('targets'),
            'boxes': grid_spec('boxes'),
            'player': tensor_spec.TensorSpec((2,), tf.int32, name='player'),
            'steps': tensor_spec.TensorSpec((), tf.int32, name='steps'),
        })

  def action_spec(self):
    return tensor_spec.BoundedTensorSpec((), tf.int32, 0, 3, name='action')

  def initial_state(self, level_index):
    """Returns the states at the start of given levels.

    Args:
      level_index: int32 [B], indices into the model's levels.

    Returns:
      The state: nest of tensors with leading dimension [B].
    """
    grids = tf.gather(self._grids, level_index)
    return {
        'walls': _unpack(grids[:, 0], border=True),
        'targets': _unpack(grids[:, 1], border=False),
        'boxes': _unpack(grids[:, 2], border=False),
        'player': tf.gather(self._players, level_index),
        'steps': tf.zeros_like(level_index, tf.int32),
    }

  def reset(self, batch_size, seed):
    if self._sequential:
      return self.initial_state(
          tf.math.floormod(tf.range(batch_size), self._num_levels))
    # Cast so that int32 and int64 seeds of the same value agree.
    level_index = tf.random.stateless_uniform(
        [batch_size], tf.cast(seed, tf.int64), minval=0,
        maxval=self._num_levels, dtype=tf.int32, alg=_RNG_ALG)
    return self.initial_state(level_index)

  @staticmethod
  def is_solved(state):
    """Returns whether every box is on a goal, bool [B]."""
    return tf.logical_not(tf.reduce_any(
        tf.logical_and(state['boxes'], tf.logical_not(state['targets'])),
        axis=[1, 2]))

  def step(self, state, action):
    walls = tf.reshape(state['walls'], [-1, _NUM_CELLS])
    targets = tf.reshape(state['targets'], [-1, _NUM_CELLS])
    boxes = tf.reshape(state['boxes'], [-1, _NUM_CELLS])
    player = state['player']
    position = player[:, 0] * SIZE + player[:, 1]
    step = tf.gather(tf.constant(_FLAT_STEPS, tf.int32), action)
    # One-hot masks of the cell ahead of the player and the one beyond it.
    # With a closed border both are on the grid whenever they are read:
    # the cell beyond matters only when a box, inside the ring, is ahead.
    cells = tf.range(_NUM_CELLS, dtype=tf.int32)
    ahead = tf.equal(cells, (position + step)[:, None])
    beyond = tf.equal(cells, (position + 2 * step)[:, None])
    box_ahead = _at(boxes, ahead)
    push = tf.logical_and(
        box_ahead, tf.logical_not(_at(tf.logical_or(walls, boxes), beyond)))
    moves = tf.logical_and(tf.logical_not(_at(walls, ahead)),
                           tf.logical_or(tf.logical_not(box_ahead), push))
    position = tf.where(moves, position + step, position)
    pushed = push[:, None]
    new_boxes = tf.logical_or(
        tf.logical_and(boxes, tf.logical_not(tf.logical_and(pushed, ahead))),
        tf.logical_and(pushed, beyond))
    on_goal_change = (
        tf.cast(tf.logical_and(push, _at(targets, beyond)), tf.int32) -
        tf.cast(tf.logical_and(push, _at(targets, ahead)), tf.int32))
    solved = tf.logical_not(tf.reduce_any(
        tf.logical_and(new_boxes, tf.logical_not(targets)), axis=1))
    reward = tf.gather(tf.constant(_REWARDS, tf.float32),
                       3 * tf.cast(solved, tf.int32) + on_goal_change + 1)
    steps = state['steps'] + 1
    new_state = {
        'walls': state['walls'],
        'targets': state['targets'],
        'boxes': tf.reshape(new_boxes, [-1, SIZE, SIZE]),
        'player': tf.stack([position // SIZE, position % SIZE], axis=1),
        'steps': steps,
    }
    return model_lib.ModelStep(
        state=new_state,
        reward=reward,
        discount=1.0 - tf.cast(solved, tf.float32),
        done=tf.logical_or(solved, steps >= self._time_limit),
    )

  def observe(self, state):
    player = state['player']
    position = player[:, 0] * SIZE + player[:, 1]
    player_grid = tf.reshape(
        tf.equal(tf.range(_NUM_CELLS, dtype=tf.int32), position[:, None]),
        [-1, SIZE, SIZE])
    network_input = tf.cast(
        tf.stack([state['walls'], state['targets'], state['boxes'],
                  player_grid], axis=-1), tf.float32)
    return model_lib.PlanningObservation(
        network_input=network_input, planning_state=state)
