"""Tests of the policy/value network (tf_spo/networks.py)."""

import numpy as np
import pytest
import tensorflow as tf
from tf_agents.specs import tensor_spec

from environments import rubiks_cube
from tf_spo import networks

CUBE = rubiks_cube.RubiksCube()


def test_cube_observations_give_logits_and_values():
  net = networks.PolicyValueNetwork(CUBE.observation_spec(),
                                    CUBE.action_spec(), torso_units=32,
                                    head_units=16)
  observation = CUBE.observe(CUBE.reset(5, tf.constant([0, 1])))
  (logits, values), state = net(observation)
  assert logits.shape == (5, 18) and values.shape == (5,)
  assert state == ()
  # Categorical input: the first layer is an embedding of the 6 colours.
  assert any(v.shape == (6, 4) for v in net.trainable_variables)
  # Different cubes give different outputs.
  assert not np.allclose(logits[0], logits[1])


def test_float_observations_are_flattened():
  spec = tensor_spec.TensorSpec((2, 3), tf.float32)
  action_spec = tensor_spec.BoundedTensorSpec((), tf.int32, 0, 4)
  net = networks.PolicyValueNetwork(spec, action_spec, torso_units=8,
                                    num_residual_blocks=0, head_units=8)
  (logits, values), _ = net(tf.ones([3, 2, 3]))
  assert logits.shape == (3, 5) and values.shape == (3,)


def test_q_head_adds_q_values():
  net = networks.PolicyValueNetwork(CUBE.observation_spec(),
                                    CUBE.action_spec(), torso_units=16,
                                    head_units=16, q_head=True)
  (logits, values, q_values), _ = net(
      CUBE.observe(CUBE.reset(3, tf.constant([0, 2]))))
  assert net.has_q_head
  assert logits.shape == q_values.shape == (3, 18) and values.shape == (3,)
  assert net.copy(name='Target').has_q_head


def test_copy_has_the_same_architecture_and_fresh_weights():
  net = networks.PolicyValueNetwork(CUBE.observation_spec(),
                                    CUBE.action_spec(), torso_units=16,
                                    head_units=16)
  net.create_variables()
  copy = net.copy(name='Target')
  copy.create_variables()
  assert [v.shape for v in net.variables] == [v.shape for v in copy.variables]


@pytest.mark.parametrize('kwargs,message', [
    (dict(torso_units=0), '--torso_units must be >= 1'),
    (dict(num_residual_blocks=-1), '--num_residual_blocks must be >= 0'),
    (dict(head_units=0), '--head_units must be >= 1'),
])
def test_rejects_bad_sizes(kwargs, message):
  with pytest.raises(ValueError, match=message):
    networks.PolicyValueNetwork(CUBE.observation_spec(), CUBE.action_spec(),
                                **kwargs)


def test_rejects_continuous_actions():
  with pytest.raises(ValueError, match='scalar discrete'):
    networks.PolicyValueNetwork(
        CUBE.observation_spec(),
        tensor_spec.BoundedTensorSpec((2,), tf.float32, -1.0, 1.0))
