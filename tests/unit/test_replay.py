"""Tests of tf_spo/replay.py: deterministic uniform sequence sampling."""

import numpy as np
import pytest
import tensorflow as tf

from tf_spo import replay

SPEC = {'step': tf.TensorSpec([], tf.int64, 'step'),
        'env': tf.TensorSpec([], tf.int64, 'env')}


def filled_buffer(num_envs, max_length, steps, seed=0):
  """A buffer where item (env e, step t) holds {'step': t, 'env': e}."""
  buffer = replay.StatelessUniformReplayBuffer(SPEC, num_envs, max_length,
                                               seed=seed)
  for t in range(steps):
    buffer.add_batch({'step': tf.fill([num_envs], tf.constant(t, tf.int64)),
                      'env': tf.range(num_envs, dtype=tf.int64)})
  return buffer


def test_sequences_are_consecutive_steps_of_one_env_still_kept():
  # 3 envs x 5 kept steps, 12 written: steps 7..11 are kept.
  buffer = filled_buffer(num_envs=3, max_length=5, steps=12)
  starts, envs = set(), set()
  for _ in range(50):
    sample = buffer.sample_sequences(8, 3)
    steps, env = sample['step'].numpy(), sample['env'].numpy()
    assert steps.shape == env.shape == (8, 3)
    np.testing.assert_array_equal(steps, steps[:, :1] + np.arange(3))
    np.testing.assert_array_equal(env, env[:, :1].repeat(3, axis=1))
    starts.update(steps[:, 0]), envs.update(env[:, 0])
  # Every valid start (7, 8, 9) and env is drawn, nothing else.
  assert starts == {7, 8, 9} and envs == {0, 1, 2}
  assert int(buffer.draws.numpy()) == 50


def test_samples_are_a_function_of_seed_contents_and_draws():
  first, second = (filled_buffer(2, 8, 6, seed=3) for _ in range(2))
  for _ in range(3):
    a, b = first.sample_sequences(16, 2), second.sample_sequences(16, 2)
    np.testing.assert_array_equal(a['step'], b['step'])
    np.testing.assert_array_equal(a['env'], b['env'])
  # Restoring the draw counter replays the same draw.
  before = int(first.draws.numpy())
  again = first.sample_sequences(16, 2)
  first.draws.assign(before)
  np.testing.assert_array_equal(first.sample_sequences(16, 2)['step'],
                                again['step'])
  other = filled_buffer(2, 8, 6, seed=4).sample_sequences(16, 2)
  assert not np.array_equal(other['step'], again['step'])


def test_too_few_steps_or_too_long_sequences_are_errors():
  buffer = filled_buffer(num_envs=2, max_length=4, steps=2)
  with pytest.raises(tf.errors.InvalidArgumentError, match='fewer than 3'):
    buffer.sample_sequences(4, 3)
  with pytest.raises(ValueError, match=r'num_steps must be in \[1, 4\]'):
    buffer.sample_sequences(4, 5)


def test_newest_steps_are_every_envs_last_steps_in_order():
  # 3 envs x 5 kept steps, 12 written: the ring wrapped around twice.
  buffer = filled_buffer(num_envs=3, max_length=5, steps=12)
  newest = buffer.newest_steps(4)
  np.testing.assert_array_equal(newest['step'], [[8, 9, 10, 11]] * 3)
  np.testing.assert_array_equal(newest['env'], [[0] * 4, [1] * 4, [2] * 4])
  np.testing.assert_array_equal(buffer.newest_steps(5)['step'][0],
                                [7, 8, 9, 10, 11])
  assert int(buffer.draws.numpy()) == 0
  with pytest.raises(tf.errors.InvalidArgumentError, match='fewer than 3'):
    filled_buffer(num_envs=2, max_length=4, steps=2).newest_steps(3)
  with pytest.raises(ValueError, match=r'num_steps must be in \[1, 5\]'):
    buffer.newest_steps(6)
