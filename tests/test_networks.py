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
  output, state = net(observation)
  logits, values = output.policy, output.value
  assert logits.shape == (5, 18) and values.shape == (5,)
  assert output.q == ()
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
  output, _ = net(tf.ones([3, 2, 3]))
  assert output.policy.shape == (3, 5) and output.value.shape == (3,)


def test_q_head_adds_q_values():
  net = networks.PolicyValueNetwork(CUBE.observation_spec(),
                                    CUBE.action_spec(), torso_units=16,
                                    head_units=16, q_head=True)
  output, _ = net(CUBE.observe(CUBE.reset(3, tf.constant([0, 2]))))
  assert net.has_q_head
  assert output.policy.shape == output.q.shape == (3, 18)
  assert output.value.shape == (3,)
  np.testing.assert_array_equal(
      net.q_values(output.q, tf.constant([[0, 5], [1, 1], [17, 2]])),
      tf.gather(output.q, [[0, 5], [1, 1], [17, 2]], batch_dims=1))
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


def test_gaussian_head_for_continuous_actions():
  observation_spec = tensor_spec.TensorSpec((3,), tf.float32)
  action_spec = tensor_spec.BoundedTensorSpec((2,), tf.float32, -2.0, 2.0)
  net = networks.PolicyValueNetwork(observation_spec, action_spec,
                                    torso_units=16, head_units=16,
                                    q_head=True, initial_scale=0.5)
  output, _ = net(tf.random.stateless_normal([4, 3], [0, 1]))
  assert output.policy.loc.shape == output.policy.scale.shape == (4, 2)
  assert np.all(output.policy.scale.numpy() > networks.MIN_SCALE)
  # Q(s, a) of K = 3 actions per state, from the critic features.
  actions = tf.random.stateless_uniform([4, 3, 2], [0, 2], -2.0, 2.0)
  q = net.q_values(output.q, actions)
  assert q.shape == (4, 3)
  assert not np.allclose(q[:, 0], q[:, 1])
  # The initial scale is about `initial_scale` for a fresh network.
  fresh = networks.PolicyValueNetwork(observation_spec, action_spec,
                                      initial_scale=0.5)
  output, _ = fresh(tf.zeros([1, 3]))
  np.testing.assert_allclose(output.policy.scale, 0.5, atol=0.2)


def test_rejects_action_specs_no_action_space_serves():
  for spec in (tensor_spec.BoundedTensorSpec((2, 2), tf.float32, -1.0, 1.0),
               tensor_spec.BoundedTensorSpec((), tf.int32, 1, 4),
               tensor_spec.BoundedTensorSpec((2,), tf.int32, 0, 4)):
    with pytest.raises(ValueError, match='action_spec'):
      networks.PolicyValueNetwork(CUBE.observation_spec(), spec)
