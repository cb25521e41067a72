"""Tests of the toy model (environments/toy.py)."""

import numpy as np
import pytest
import tensorflow as tf

from environments import toy


def test_rewards_and_terminations_per_action():
  model = toy.ToyModel([1.0, -2.0, 0.5], [True, False, False])
  state = model.reset(3, tf.constant([0, 0]))
  out = model.step(state, tf.constant([0, 1, 2]))
  np.testing.assert_allclose(out.reward, [1.0, -2.0, 0.5])
  np.testing.assert_array_equal(out.done, [True, False, False])
  np.testing.assert_allclose(out.discount, [0.0, 1.0, 1.0])
  np.testing.assert_array_equal(out.state, [1, 1, 1])
  observation = model.observe(out.state)
  assert observation.shape == (3, 1)
  np.testing.assert_array_equal(
      model.observe(model.state_from_observation(observation)), observation)


def test_rejects_mismatched_lengths():
  with pytest.raises(ValueError, match='same length'):
    toy.ToyModel([1.0, 2.0], [True])


def test_quadratic_bandit_rewards_and_ends():
  model = toy.QuadraticBandit(2.0, [1.0, -1.0])
  assert model.action_spec().shape == (2,)
  state = model.reset(2, tf.constant([0, 0]))
  out = model.step(state, tf.constant([[1.0, -1.0], [0.0, 0.0]]))
  np.testing.assert_allclose(out.reward, [0.0, -4.0])
  np.testing.assert_array_equal(out.done, [True, True])
  np.testing.assert_allclose(out.discount, [0.0, 0.0])
  with pytest.raises(ValueError, match='curvature must be > 0'):
    toy.QuadraticBandit(0.0, [1.0])
