"""Comparing a run's latest checkpoint with another's, value by value."""

import os

import numpy as np
import tensorflow as tf


def checkpoint_tensors(root_dir):
  """Every value of the run's latest checkpoint but its wall-clock.

  Weights, optimiser slots, duals, replay contents and draw counter, the
  environments' state and the policies' random generators. The replay
  table's `_slot2storage_map` aliases `_storage` under names that depend on
  how many tables the process made before, so it is left out.
  """
  path = tf.train.latest_checkpoint(os.path.join(root_dir, 'checkpoints'))
  reader = tf.train.load_checkpoint(path)
  return {name: reader.get_tensor(name)
          for name in reader.get_variable_to_shape_map()
          if not name.startswith(('wall_clock', '_CHECKPOINTABLE_OBJECT'))
          and '_slot2storage_map' not in name}


def assert_same_checkpoint(root_dir, expected):
  actual = checkpoint_tensors(root_dir)
  assert actual.keys() == expected.keys()
  differing = [name for name in expected
               if not np.array_equal(actual[name], expected[name])]
  assert not differing, differing
