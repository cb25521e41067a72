"""Tests of launch/mstep_probe.py's measurements."""

import types

from absl import app
import numpy as np
import pytest
import tensorflow as tf

from launch import mstep_probe
from tf_spo import action_spaces
from tf_spo import networks


def test_batch_pieces_on_hand_computed_atoms():
  # Two states, D = 1. State 1: atoms -1 and 3 weighted 1/4 and 3/4 have
  # plain mean 1, weighted mean 2 (shift 1) and std 2; the policy mean 1.5
  # is offset 0.5 from the plain mean, along the shift. State 2 mirrors it.
  def network(observation):
    del observation
    policy = action_spaces.GaussianParams(tf.constant([[1.5], [-1.5]]),
                                          tf.constant([[0.5], [0.5]]))
    return networks.NetworkOutput(policy, tf.zeros([2]), ()), ()

  experience = types.SimpleNamespace(
      observation=tf.zeros([1, 2, 3]),
      policy_info={
          'search_atoms': tf.constant([[[[-1.0], [3.0]], [[1.0], [-3.0]]]]),
          'search_weights': tf.constant([[[0.25, 0.75], [0.25, 0.75]]])})
  pieces = mstep_probe.batch_pieces(network, experience)
  assert pieces['scale'] == 0.5 and pieces['mean_rms'] == 1.5
  np.testing.assert_allclose(pieces['atom_spread'], 2.0)
  np.testing.assert_allclose(pieces['shift_rms'], 1.0)
  np.testing.assert_allclose(pieces['offset_corr'], 1.0)


def test_variants_parse_and_bad_ones_name_the_flag():
  assert mstep_probe.parse_variants(['a={}', 'b={"x": 1}']) == {
      'a': {}, 'b': {'x': 1}}
  for bad in ('nojson', 'a=[1]', '={}', 'a={x'):
    with pytest.raises(app.UsageError, match='--variant'):
      mstep_probe.parse_variants([bad])
