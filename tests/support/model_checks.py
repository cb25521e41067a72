"""Checks shared by the tests of the pure-TF environment models."""

import numpy as np
import tensorflow as tf


def as_numpy(nest):
  """The nest with every tensor as a numpy array."""
  return tf.nest.map_structure(lambda t: t.numpy(), nest)


def rollout_fn(model, num_steps):
  """(seed [2], actions [T, B, ...]) -> observations and step outputs.

  Returns:
    A function returning [observe(reset), (observation, reward, discount,
    done) after each of the `num_steps` steps].
  """

  def rollout(seed, actions):
    state = model.reset(tf.shape(actions)[1], seed)
    outputs = [model.observe(state)]
    for t in range(num_steps):
      model_step = model.step(state, actions[t])
      state = model_step.state
      outputs.append((model.observe(state), model_step.reward,
                      model_step.discount, model_step.done))
    return outputs

  return rollout


def compiled_rollout_fn(model, num_steps):
  """`rollout_fn` under XLA, for any batch size (one trace)."""
  spec = model.action_spec()
  return tf.function(
      rollout_fn(model, num_steps), jit_compile=True, input_signature=[
          tf.TensorSpec([2], tf.int64),
          tf.TensorSpec([num_steps, None, *spec.shape], spec.dtype)])


def assert_nests_equal(expected, actual, float_tolerance=0.0):
  """Same structure, dtypes and shapes; values equal (floats to a tolerance).

  Args:
    expected: nest of numpy arrays.
    actual: nest of numpy arrays.
    float_tolerance: absolute and relative tolerance of float32 values;
      0 demands bit-identical values.
  """
  tf.nest.assert_same_structure(expected, actual)
  for e, a in zip(tf.nest.flatten(expected), tf.nest.flatten(actual)):
    assert e.dtype == a.dtype and e.shape == a.shape
    if float_tolerance and e.dtype == np.float32:
      np.testing.assert_allclose(a, e, rtol=float_tolerance,
                                 atol=float_tolerance)
    else:
      np.testing.assert_array_equal(a, e)
