"""Jumanji's `Snake-v1` as a batched, pure-TF `EnvironmentModel`.

The snake of TRT-SMC's experiments (paper 001, appendix B.1): on a square
board (12 x 12 by default) a snake moves one cell per step, up, right, down or
left (actions 0..3, row 0 at the top), and grows by one cell for every fruit
it eats. The dynamics follow Jumanji's `Snake` (`Snake-v1`):

* The head moves first. The move is a collision if the new head is off the
  board or on a body cell other than the tail, which is vacated on this step
  (Jumanji's action mask). Moving backwards into the neck is therefore a
  collision, except for a snake of length 2, whose neck is its tail.
* Eating (the new head is on the fruit) earns reward 1.0, grows the snake
  (its tail stays) and places a new fruit uniformly at random on an empty
  cell, neither body nor head. Otherwise the reward is 0.0 and the tail cell
  is freed.
* A collision terminates the episode (discount 0.0), and so does filling the
  board (no empty cell is left for a fruit; the fruit then stays where it
  was, under the head). An episode is truncated (done, discount 1.0) after
  `time_limit` steps. Unlike Jumanji, whose time limit also terminates, the
  time limit truncates, as other time limits in this project do.

A state stepped after termination moves on by the same rules (a head off the
board stays off it and keeps terminating); `ModelEnvironment` restarts such
episodes instead.

Randomness inside an episode comes from a key carried in the state, so the
model is a deterministic function of (state, action), as planning particles
require. TF's stateless random ops take one seed per call, not one per batch
element, so the key is two 32-bit words mixed by a counter-based integer hash
(the finaliser of MurmurHash3) into the fruit draw and the next key.
"""

import tensorflow as tf
from tf_agents.specs import tensor_spec

from environments import model as model_lib

_NUM_ACTIONS = 4
# (row, col) displacement of the actions up, right, down, left.
_MOVES = ((-1, 0), (0, 1), (1, 0), (0, -1))
# Feature maps of the network input, in this order along its last axis.
_CHANNELS = ('body', 'head', 'tail', 'fruit', 'order')
# An explicit algorithm: with 'auto_select', XLA-compiled and uncompiled
# stateless sampling differ for the same seed.
_RNG_ALG = 'philox'
# Counters of the hashed key: the fruit draw and the two words of the next key.
_FRUIT_COUNTER = 0
_KEY_COUNTERS = (1, 2)
# 2^32 / golden ratio, spreading consecutive counters over the 32-bit words.
_GOLDEN = 0x9E3779B9


def _uint32(value):
  return tf.constant(value, tf.uint32)


def _fmix32(x):
  """MurmurHash3's finaliser: a bijective avalanche mix of 32-bit words.

  Args:
    x: uint32 tensor.

  Returns:
    uint32 tensor of the shape of `x`.
  """
  x = tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, _uint32(16)))
  x = x * _uint32(0x85EBCA6B)
  x = tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, _uint32(13)))
  x = x * _uint32(0xC2B2AE35)
  return tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, _uint32(16)))


def _hash32(key, counter):
  """Mixes keys int32 [B, 2] and a Python int counter into uint32 [B]."""
  words = tf.bitcast(key, tf.uint32)
  inner = _fmix32(words[:, 0] + _uint32((counter * _GOLDEN) % 2**32))
  return _fmix32(_fmix32(words[:, 1] + inner))


def hash_key(key, counter):
  """Draws a pseudo-random 31-bit integer per key, for one counter value.

  A counter-based generator: for a fixed counter, changing either word of a
  key changes the 32-bit hash (each mixing stage is a bijection of the word
  changed), and different counters give unrelated streams.

  Args:
    key: int32 [B, 2], the keys.
    counter: Python int, which draw of the key.

  Returns:
    int32 [B], values in [0, 2^31).
  """
  return tf.bitcast(
      tf.bitwise.right_shift(_hash32(key, counter), _uint32(1)), tf.int32)


def split_key(key):
  """Returns the key of the next step, int32 [B, 2], from keys [B, 2]."""
  return tf.stack([tf.bitcast(_hash32(key, counter), tf.int32)
                   for counter in _KEY_COUNTERS], axis=1)


def sample_empty_cell(occupied, draw):
  """Picks an unoccupied cell per board, uniformly from a random draw.

  The draw modulo the number of empty cells selects the k-th empty cell in
  row-major order; for draws uniform in [0, 2^31) the probabilities of the
  cells differ by at most a factor 1 + E / 2^31 for E empty cells. The row is
  found first and then the column within it, since XLA computes a cumulative
  sum of length L in O(L^2).

  Args:
    occupied: bool [B, R, W], the occupied cells of boards of R rows and W
      columns.
    draw: int32 [B], non-negative random integers.

  Returns:
    A tuple (cell, any_empty): int32 [B], the row-major index of the chosen
    cell (out of range where the board is full), and bool [B], whether any
    cell is empty.
  """
  empty = tf.cast(tf.logical_not(occupied), tf.int32)
  num_rows, num_cols = occupied.shape[1], occupied.shape[2]
  row_counts = tf.reduce_sum(empty, axis=2)
  rows_cumsum = tf.math.cumsum(row_counts, axis=1)
  num_empty = rows_cumsum[:, -1]
  k = tf.math.floormod(draw, tf.maximum(num_empty, 1))
  # The (k+1)-th empty cell is in the first row (and then column) at which
  # the inclusive count of empty cells exceeds k; the number of rows (and
  # columns) before it is its index.
  row = tf.reduce_sum(tf.cast(rows_cumsum <= k[:, None], tf.int32), axis=1)
  row_mask = tf.one_hot(row, num_rows, dtype=tf.int32)
  k_in_row = k - tf.reduce_sum(row_mask * (rows_cumsum - row_counts), axis=1)
  row_empty = tf.reduce_sum(empty * row_mask[:, :, None], axis=1)
  col = tf.reduce_sum(
      tf.cast(tf.math.cumsum(row_empty, axis=1) <= k_in_row[:, None],
              tf.int32), axis=1)
  return row * num_cols + col, num_empty > 0


class Snake(model_lib.EnvironmentModel):
  """Jumanji's Snake: eat fruit on a square board without hitting anything.

  State: dict with
    'body': int32 [B, N, N], the order of every body cell, 1 at the tail up
      to the length at the head, 0 on empty cells.
    'head': int32 [B, 2], the head's (row, col); off the board only after a
      collision with the edge.
    'length': int32 [B], the number of body cells.
    'fruit': int32 [B, 2], the fruit's (row, col).
    'key': int32 [B, 2], the random key of the fruit placements, replaced by
      a key hashed from it on every step.
    'steps': int32 [B], the number of steps taken in the episode.

  Action: int32 [B], 0 up (row - 1), 1 right (col + 1), 2 down (row + 1),
  3 left (col - 1). Observation: a `PlanningObservation` whose network input
  is float32 [B, N, N, 5], the feature maps (body, head, tail, fruit, order):
  1.0 on body cells, on the head, on the tail and on the fruit, and the body
  order divided by its maximum (the length, unless a collision took the head
  off the board), as Jumanji's observation grid; its planning state is the
  state. Episodes start with a snake of length 1 on a uniformly random cell
  and the fruit on a uniformly random other cell.
  """

  def __init__(self, time_limit=4000, board_size=12, name='snake'):
    """Creates the model.

    Args:
      time_limit: Python int >= 1, the number of steps after which an
        episode is truncated.
      board_size: Python int >= 2, the number N of rows and columns.
      name: Name of the module.

    Raises:
      ValueError: If an argument is out of range.
    """
    if time_limit < 1:
      raise ValueError(f'time_limit must be >= 1, got {time_limit}.')
    if board_size < 2:
      raise ValueError(f'board_size must be >= 2, got {board_size}.')
    super().__init__(name=name)
    self._time_limit = time_limit
    self._board_size = board_size
    self._num_cells = board_size * board_size

  @property
  def time_limit(self):
    """The number of steps after which an episode is truncated."""
    return self._time_limit

  @property
  def board_size(self):
    """The number of rows (and columns) of the board."""
    return self._board_size

  def observation_spec(self):
    n = self._board_size
    return model_lib.PlanningObservation(
        network_input=tensor_spec.BoundedTensorSpec(
            (n, n, len(_CHANNELS)), tf.float32, 0.0, 1.0,
            name='observation'),
        planning_state={
            'body': tensor_spec.TensorSpec((n, n), tf.int32, name='body'),
            'head': tensor_spec.TensorSpec((2,), tf.int32, name='head'),
            'length': tensor_spec.TensorSpec((), tf.int32, name='length'),
            'fruit': tensor_spec.TensorSpec((2,), tf.int32, name='fruit'),
            'key': tensor_spec.TensorSpec((2,), tf.int32, name='key'),
            'steps': tensor_spec.TensorSpec((), tf.int32, name='steps'),
        })

  def action_spec(self):
    return tensor_spec.BoundedTensorSpec(
        (), tf.int32, 0, _NUM_ACTIONS - 1, name='action')

  def _flat_index(self, position):
    """Row-major cell index of positions [B, 2], -1 where off the board."""
    row, col = position[:, 0], position[:, 1]
    n = self._board_size
    inside = (row >= 0) & (row < n) & (col >= 0) & (col < n)
    return tf.where(inside, row * n + col, -1)

  def _one_hot(self, position, dtype=tf.bool):
    """[B, N * N] one-hot cells of positions [B, 2], zero if off the board."""
    return tf.cast(
        tf.one_hot(self._flat_index(position), self._num_cells, dtype=tf.int32),
        dtype)

  def _position(self, cell):
    """(row, col) int32 [B, 2] of row-major cell indices [B]."""
    return tf.stack([cell // self._board_size, cell % self._board_size],
                    axis=1)

  def reset(self, batch_size, seed):
    # Cast so that int32 and int64 seeds of the same value agree.
    head_seed, fruit_seed, key_seed = tf.unstack(
        tf.random.experimental.stateless_split(
            tf.cast(seed, tf.int64), 3, alg=_RNG_ALG))
    head = tf.random.stateless_uniform(
        [batch_size], head_seed, minval=0, maxval=self._num_cells,
        dtype=tf.int32, alg=_RNG_ALG)
    # Uniform over the other cells: an offset of 1 .. C - 1 from the head.
    offset = tf.random.stateless_uniform(
        [batch_size], fruit_seed, minval=1, maxval=self._num_cells,
        dtype=tf.int32, alg=_RNG_ALG)
    fruit = (head + offset) % self._num_cells
    key = tf.random.stateless_uniform(
        [batch_size, 2], key_seed, minval=None, maxval=None, dtype=tf.int32,
        alg=_RNG_ALG)
    n = self._board_size
    body = tf.reshape(
        tf.one_hot(head, self._num_cells, dtype=tf.int32), [-1, n, n])
    return {'body': body,
            'head': self._position(head),
            'length': tf.ones([batch_size], tf.int32),
            'fruit': self._position(fruit),
            'key': key,
            'steps': tf.zeros([batch_size], tf.int32)}

  def step(self, state, action):
    n = self._board_size
    body = tf.reshape(state['body'], [-1, self._num_cells])
    move = tf.gather(tf.constant(_MOVES, tf.int32),
                     tf.cast(action, tf.int32))
    head = state['head'] + move
    head_cell = self._one_hot(head)
    off_board = tf.logical_not(tf.reduce_any(head_cell, axis=1))
    # The order of the cell entered, 0 if empty or off the board; the tail
    # (order 1) moves away on this step unless the fruit is eaten, and the
    # fruit is never on the body.
    entered_order = tf.reduce_sum(
        tf.where(head_cell, body, tf.zeros_like(body)), axis=1)
    collision = off_board | (entered_order > 1)
    eaten = tf.reduce_all(tf.equal(head, state['fruit']), axis=1)
    length = state['length'] + tf.cast(eaten, tf.int32)
    body = tf.where(eaten[:, None], body, tf.maximum(body - 1, 0))
    body = tf.where(head_cell, length[:, None], body)

    key = state['key']
    new_fruit, any_empty = sample_empty_cell(
        tf.reshape(body > 0, [-1, n, n]), hash_key(key, _FRUIT_COUNTER))
    fruit = tf.where((eaten & any_empty)[:, None], self._position(new_fruit),
                     state['fruit'])
    terminated = collision | tf.logical_not(any_empty)
    steps = state['steps'] + 1
    done = terminated | (steps >= self._time_limit)
    return model_lib.ModelStep(
        state={'body': tf.reshape(body, [-1, n, n]),
               'head': head,
               'length': length,
               'fruit': fruit,
               'key': split_key(key),
               'steps': steps},
        reward=tf.cast(eaten, tf.float32),
        discount=1.0 - tf.cast(terminated, tf.float32),
        done=done,
    )

  def observe(self, state):
    n = self._board_size
    body = tf.reshape(state['body'], [-1, self._num_cells])
    order = tf.cast(body, tf.float32) / tf.cast(
        tf.maximum(tf.reduce_max(body, axis=1, keepdims=True), 1), tf.float32)
    maps = [tf.cast(body > 0, tf.float32),
            self._one_hot(state['head'], tf.float32),
            tf.cast(tf.equal(body, 1), tf.float32),
            self._one_hot(state['fruit'], tf.float32),
            order]
    network_input = tf.reshape(tf.stack(maps, axis=-1),
                               [-1, n, n, len(_CHANNELS)])
    return model_lib.PlanningObservation(
        network_input=network_input, planning_state=state)
