"""A uniform replay buffer whose sampling is a function of its checkpoint.

`TFUniformReplayBuffer` samples with stateful random ops, and its `tf.data`
pipeline samples in parallel threads ahead of training, so two runs with the
same seed replay different sequences and a resumed run cannot continue the
interrupted one. `StatelessUniformReplayBuffer` draws its samples from a
stateless RNG keyed by a seed and a draw counter that is a variable of the
buffer: the sequences replayed are a function of the buffer's contents, the
seed and the number of earlier draws, all of which a checkpoint holds.
"""

import tensorflow as tf
from tf_agents.replay_buffers import tf_uniform_replay_buffer

# Second word of the base seed: keeps the replay stream apart from other
# stateless streams keyed by the same run seed.
_REPLAY_STREAM = 0x7265706C  # 'repl'


class StatelessUniformReplayBuffer(
    tf_uniform_replay_buffer.TFUniformReplayBuffer):
  """`TFUniformReplayBuffer` with deterministic, checkpointed sampling.

  Adding is the parent's. `sample_sequences` replaces `as_dataset` and
  `get_next`: each call draws [B, T] sequences uniformly over the valid
  starts of every environment's segment, from the stateless seed
  fold_in([seed, stream], draws), then increments `draws`. `newest_steps`
  reads every environment's newest steps in order (an on-policy learner's
  rollout).
  """

  def __init__(self, data_spec, batch_size: int, max_length: int,
               seed: int = 0):
    """Creates the buffer.

    Args:
      data_spec: spec of one item (a trajectory step).
      batch_size: environments adding a step per `add_batch` (>= 1).
      max_length: steps kept per environment (>= 1).
      seed: Python int, the base of the sampling seeds.
    """
    super().__init__(data_spec, batch_size, max_length=max_length)
    self._base_seed = tf.constant([seed, _REPLAY_STREAM], tf.int64)
    with tf.device(self._device), tf.name_scope(self._scope):
      self._draws = tf.Variable(0, dtype=tf.int64, trainable=False,
                                name='draws')

  @property
  def draws(self) -> tf.Variable:
    """int64 scalar: calls of `sample_sequences` so far (checkpointed)."""
    return self._draws

  def sample_sequences(self, sample_batch_size: int, num_steps: int):
    """Samples [B, T] consecutive steps of single environments.

    Args:
      sample_batch_size: B, sequences to sample (>= 1).
      num_steps: T, steps per sequence (>= 1, at most `max_length`).

    Returns:
      A nest like `data_spec` with outer dims [B, T].

    Raises:
      tf.errors.InvalidArgumentError: if no environment has T steps yet.
    """
    self._check_num_steps(num_steps)
    seed = tf.random.experimental.stateless_fold_in(
        self._base_seed, self._draws.read_value())
    start_seed, env_seed = tf.unstack(
        tf.random.experimental.stateless_split(seed, num=2))
    written = self._get_last_id() + 1  # Steps added per environment.
    # Valid starts s: s + T - 1 was written and s is still kept.
    first = tf.maximum(written - self._max_length, 0)
    end = written - num_steps + 1
    tf.debugging.assert_greater(
        end, first, message=f'The replay buffer holds fewer than {num_steps} '
        'steps per environment.')
    starts = tf.random.stateless_uniform(
        [sample_batch_size], start_seed, minval=first, maxval=end,
        dtype=tf.int64)
    envs = tf.random.stateless_uniform(
        [sample_batch_size], env_seed, minval=0, maxval=self._batch_size,
        dtype=tf.int64)
    steps = starts[:, None] + tf.range(num_steps, dtype=tf.int64)[None]
    rows = self._rows(envs[:, None], steps)
    with tf.control_dependencies([rows]):
      self._draws.assign_add(1)
    return self._data_table.read(rows)

  def newest_steps(self, num_steps: int):
    """The newest `num_steps` steps of every environment, oldest first.

    Reads without drawing: `draws` is unchanged.

    Args:
      num_steps: T, steps per environment (>= 1, at most `max_length`).

    Returns:
      A nest like `data_spec` with outer dims [batch_size, T].

    Raises:
      tf.errors.InvalidArgumentError: if fewer than T steps were added.
    """
    self._check_num_steps(num_steps)
    written = self._get_last_id() + 1  # Steps added per environment.
    tf.debugging.assert_greater_equal(
        written, tf.constant(num_steps, tf.int64),
        message=f'The replay buffer holds fewer than {num_steps} steps per '
        'environment.')
    steps = written - num_steps + tf.range(num_steps, dtype=tf.int64)
    envs = tf.range(self._batch_size, dtype=tf.int64)
    return self._data_table.read(self._rows(envs[:, None], steps[None]))

  def _check_num_steps(self, num_steps: int) -> None:
    if not 1 <= num_steps <= self._max_length:
      raise ValueError(f'num_steps must be in [1, {self._max_length}], got '
                       f'{num_steps}.')

  def _rows(self, envs: tf.Tensor, steps: tf.Tensor) -> tf.Tensor:
    """int64 table rows of env `envs` at step ids `steps` (broadcast)."""
    return tf.math.mod(steps, self._max_length) + envs * self._max_length
