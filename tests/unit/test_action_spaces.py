"""Tests of the action spaces (tf_spo/action_spaces.py)."""

import numpy as np
import pytest
import tensorflow as tf
from tf_agents.specs import tensor_spec

from tf_spo import action_spaces

BOUNDED = tensor_spec.BoundedTensorSpec((2,), tf.float32, [-2.0, 0.0],
                                        [2.0, 1.0])
PARAMS = action_spaces.GaussianParams(
    loc=tf.constant([[0.3, -1.2], [1.5, 0.1]]),
    scale=tf.constant([[0.7, 1.1], [0.4, 2.0]]))


def test_squashed_log_prob_is_the_change_of_variables():
  """log p(a) = log N(u) - log |da/du|, with da/du by finite differences."""
  space = action_spaces.for_spec(BOUNDED)
  u = tf.constant([[0.2, -0.8], [1.9, 0.5]])
  action = space.env_action(u)
  h = 1e-3
  u64 = u.numpy().astype(np.float64)
  low, high = np.array([-2.0, 0.0]), np.array([2.0, 1.0])
  squash = lambda x: low + (high - low) * (np.tanh(x) + 1.0) / 2.0
  jacobian = (squash(u64 + h) - squash(u64 - h)) / (2 * h)
  loc, scale = PARAMS.loc.numpy(), PARAMS.scale.numpy()
  log_normal = (-0.5 * ((u64 - loc) / scale)**2 - np.log(scale) -
                0.5 * np.log(2 * np.pi))
  expected = np.sum(log_normal - np.log(jacobian), axis=-1)
  np.testing.assert_allclose(space.distribution(PARAMS).log_prob(action),
                             expected, rtol=1e-4)
  np.testing.assert_allclose(squash(u64), action, rtol=1e-6)


def test_gaussian_samples_are_stateless_and_in_bounds():
  space = action_spaces.for_spec(BOUNDED)
  sample = tf.function(lambda seed: space.sample(PARAMS, 5000, seed),
                       jit_compile=True)
  atoms = sample(tf.constant([1, 2]))
  assert atoms.shape == (2, 5000, 2)
  np.testing.assert_array_equal(atoms, sample(tf.constant([1, 2])))
  assert not np.array_equal(atoms, sample(tf.constant([1, 3])))
  np.testing.assert_allclose(np.mean(atoms, 1), PARAMS.loc, atol=0.08)
  np.testing.assert_allclose(np.std(atoms, 1), PARAMS.scale, rtol=0.05)
  actions = space.env_action(atoms).numpy()
  assert np.all(actions >= [-2.0, 0.0]) and np.all(actions <= [2.0, 1.0])
  np.testing.assert_allclose(space.mode(PARAMS), space.env_action(PARAMS.loc))


def test_unbounded_float_spec_is_an_unsquashed_gaussian():
  space = action_spaces.for_spec(tensor_spec.TensorSpec((2,), tf.float32))
  u = tf.constant([[5.0, -7.0], [0.0, 1.0]])
  np.testing.assert_array_equal(space.env_action(u), u)
  np.testing.assert_allclose(
      space.distribution(PARAMS).log_prob(u),
      space.search_distribution(PARAMS).log_prob(u), rtol=1e-6)


def test_discrete_probabilities_of_weighted_atoms():
  space = action_spaces.for_spec(
      tensor_spec.BoundedTensorSpec((), tf.int32, 0, 3))
  probs = space.probabilities(tf.constant([[0, 2, 2, 3]]),
                              tf.constant([[0.1, 0.2, 0.3, 0.4]]))
  np.testing.assert_allclose(probs, [[0.1, 0.0, 0.5, 0.4]], rtol=1e-6)
  np.testing.assert_array_equal(space.enumerate(), [0, 1, 2, 3])
  assert space.num_actions == 4


@pytest.mark.parametrize('spec', [
    tensor_spec.BoundedTensorSpec((), tf.int32, 1, 4),
    tensor_spec.BoundedTensorSpec((2,), tf.int32, 0, 4),
    tensor_spec.BoundedTensorSpec((), tf.float32, -1.0, 1.0),
    tensor_spec.BoundedTensorSpec((2,), tf.float32, 1.0, -1.0),
    tensor_spec.BoundedTensorSpec((2,), tf.float32, -np.inf, 1.0),
    tensor_spec.TensorSpec((2,), tf.bool),
])
def test_rejects_specs_naming_action_spec(spec):
  with pytest.raises(ValueError, match='action_spec'):
    action_spaces.for_spec(spec)
