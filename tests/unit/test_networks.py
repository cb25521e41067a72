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
    (dict(torso_units=0), 'torso_units must be >= 1'),
    (dict(num_residual_blocks=-1), 'num_residual_blocks must be >= 0'),
    (dict(head_units=0), 'head_units must be >= 1'),
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


OBSERVATION_SPEC = tensor_spec.TensorSpec((3,), tf.float32)
CONTINUOUS_SPEC = tensor_spec.BoundedTensorSpec((2,), tf.float32, -2.0, 2.0)
DISCRETE_SPEC = tensor_spec.BoundedTensorSpec((), tf.int32, 0, 4)


def test_normalizer_matches_numpy_over_valid_rows():
  normalizer = networks.ObservationNormalizer(OBSERVATION_SPEC)
  rng = np.random.default_rng(0)
  scale = np.array([1.0, 10.0, 0.1])
  batches = [rng.normal(3.0, scale, size=[5, 3]),
             rng.normal(-1.0, scale, size=[2, 4, 3]),
             rng.normal(0.0, scale, size=[1, 3]),
             rng.normal(7.0, scale, size=[6, 3])]
  masks = [None, rng.uniform(size=[2, 4]) > 0.3, np.zeros([1], bool),
           np.array([True, False, True, True, False, True])]
  update = tf.function(normalizer.update)
  valid_rows = []
  for i, (batch, mask) in enumerate(zip(batches, masks)):
    # Eager and in a tf.function alike.
    (update if i % 2 else normalizer.update)(
        tf.constant(batch, tf.float32),
        mask=None if mask is None else tf.constant(mask))
    rows = batch.reshape(-1, 3).astype(np.float32).astype(np.float64)
    valid_rows.append(rows if mask is None else rows[mask.reshape(-1)])
  valid_rows = np.concatenate(valid_rows)
  assert normalizer.count.numpy() == len(valid_rows)
  np.testing.assert_allclose(normalizer.mean, valid_rows.mean(0), rtol=1e-6)
  np.testing.assert_allclose(normalizer.variance, valid_rows.var(0),
                             rtol=1e-6)
  x = rng.normal(size=[4, 3])
  expected = np.clip((x - valid_rows.mean(0)) /
                     np.sqrt(valid_rows.var(0) + 1e-8), -10.0, 10.0)
  normalized = normalizer.normalize(tf.constant(x, tf.float32))
  assert normalized.dtype == tf.float32
  np.testing.assert_allclose(normalized, expected, rtol=1e-5, atol=1e-5)


def test_normalizer_starts_as_identity_and_clips():
  normalizer = networks.ObservationNormalizer(OBSERVATION_SPEC, clip=2.0,
                                              epsilon=0.0)
  x = tf.constant([[0.5, -1.5, 1.0], [3.0, -7.0, 2.0]])
  np.testing.assert_allclose(normalizer.normalize(x),
                             [[0.5, -1.5, 1.0], [2.0, -2.0, 2.0]])
  # An all-masked batch changes nothing.
  normalizer.update(x, mask=tf.constant([False, False]))
  assert normalizer.count.numpy() == 0
  np.testing.assert_array_equal(normalizer.mean, 0.0)
  np.testing.assert_array_equal(normalizer.variance, 1.0)
  # Mean [1.75, -4.25, 1.5], standard deviation [1.25, 2.75, 0.5].
  normalizer.update(x)
  np.testing.assert_allclose(normalizer.normalize(x),
                             [[-1.0, 1.0, -1.0], [1.0, -1.0, 1.0]])
  np.testing.assert_allclose(
      normalizer.normalize(tf.constant([[5.0, -4.25, 0.0]])),
      [[2.0, 0.0, -2.0]])


def test_normalizer_rejects_non_flat_float_specs():
  for spec in (tensor_spec.TensorSpec((2, 3), tf.float32),
               tensor_spec.TensorSpec((), tf.float32),
               tensor_spec.BoundedTensorSpec((3,), tf.int32, 0, 5)):
    with pytest.raises(ValueError, match='observation_spec'):
      networks.ObservationNormalizer(spec)


def small_mlp(action_spec, **kwargs):
  return networks.MlpActorCriticNetwork(
      OBSERVATION_SPEC, action_spec, actor_units=(16, 8),
      critic_units=(16, 16), **kwargs)


def test_mlp_gaussian_policy_value_and_q():
  net = small_mlp(CONTINUOUS_SPEC, q_head=True, initial_scale=0.5)
  output, state = net(tf.random.stateless_normal([4, 3], [0, 1]))
  assert state == ()
  assert net.has_q_head and net.normalizer is None
  assert output.policy.loc.shape == output.policy.scale.shape == (4, 2)
  assert output.policy.loc.dtype == output.value.dtype == tf.float32
  assert output.value.shape == (4,) and output.q.shape == (4, 3)
  assert np.all(output.policy.scale.numpy() > networks.MIN_SCALE)
  # Q(s, a) of K = 5 actions per state.
  actions = tf.random.stateless_uniform([4, 5, 2], [0, 2], -2.0, 2.0)
  q = net.q_values(output.q, actions)
  assert q.shape == (4, 5) and q.dtype == tf.float32
  assert not np.allclose(q[:, 0], q[:, 1])
  # Zero inputs give zero features (SiLU(0) = 0, zero biases): the scale is
  # exactly `initial_scale`.
  output, _ = net(tf.zeros([2, 3]))
  np.testing.assert_allclose(output.policy.scale, 0.5, rtol=1e-6)
  # Separate actor and critic: four hidden layers of 256 SiLU units each by
  # default, and no Q(s, a) without `q_head`.
  default = networks.MlpActorCriticNetwork(OBSERVATION_SPEC, CONTINUOUS_SPEC)
  default.create_variables()
  assert not default.has_q_head
  kernels = [v.shape for v in default.trainable_variables
             if 'kernel' in v.name]
  torso = [(3, 256)] + [(256, 256)] * 3
  assert kernels == torso + torso + [(256, 4), (256, 1)]
  hidden = default._actor.layers + default._critic.layers  # pylint: disable=protected-access
  assert all(layer.activation is tf.keras.activations.get('silu')
             for layer in hidden)


def test_mlp_discrete_logits_values_and_q_values():
  net = small_mlp(DISCRETE_SPEC, q_head=True, activation='relu')
  output, _ = net(tf.random.stateless_normal([3, 3], [0, 3]))
  assert output.policy.shape == output.q.shape == (3, 5)
  assert output.value.shape == (3,)
  actions = tf.constant([[0, 4], [1, 1], [3, 2]])
  np.testing.assert_array_equal(net.q_values(output.q, actions),
                                tf.gather(output.q, actions, batch_dims=1))


def test_mlp_copy_shares_the_normalizer():
  normalizer = networks.ObservationNormalizer(OBSERVATION_SPEC)
  net = small_mlp(CONTINUOUS_SPEC, q_head=True, normalizer=normalizer)
  net.create_variables()
  copy = net.copy(name='Target')
  copy.create_variables()
  assert copy.normalizer is normalizer and copy.has_q_head
  assert [v.shape for v in net.trainable_variables] == [
      v.shape for v in copy.trainable_variables]
  # The statistics are non-trainable variables of both networks.
  statistics = {id(v) for v in normalizer.variables}
  assert len(statistics) == 3
  assert not statistics & {id(v) for v in net.trainable_variables}
  assert statistics <= {id(v) for v in copy.variables}
  assert networks.PolicyValueNetwork(OBSERVATION_SPEC,
                                     DISCRETE_SPEC).normalizer is None


def test_mlp_reads_normalized_observations():
  normalizer = networks.ObservationNormalizer(OBSERVATION_SPEC)
  normalizer.update(tf.random.stateless_normal([50, 3], [0, 4]) * 5.0 + 2.0)
  net = small_mlp(CONTINUOUS_SPEC, q_head=True, normalizer=normalizer)
  plain = small_mlp(CONTINUOUS_SPEC, q_head=True)
  net.create_variables()
  plain.create_variables()
  for source, target in zip(net.trainable_variables,
                            plain.trainable_variables):
    target.assign(source)
  x = tf.random.stateless_normal([4, 3], [0, 5]) * 5.0
  actions = tf.random.stateless_uniform([4, 2, 2], [0, 6], -2.0, 2.0)
  output, _ = net(x)
  expected, _ = plain(normalizer.normalize(x))
  assert not np.allclose(normalizer.normalize(x), x)
  for got, want in zip(tf.nest.flatten(output), tf.nest.flatten(expected)):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(net.q_values(output.q, actions),
                             plain.q_values(expected.q, actions),
                             rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('make', [
    small_mlp,
    lambda spec, **kwargs: networks.PolicyValueNetwork(
        OBSERVATION_SPEC, spec, torso_units=8, num_residual_blocks=1,
        head_units=8, **kwargs)])
def test_loc_bound_maps_the_raw_mean_through_a_scaled_tanh(make):
  """loc_bound = b: the mean is b * tanh(x / b) of the unbounded mean x."""
  x = 30.0 * tf.random.stateless_normal([64, 3], [0, 4])
  free, bounded = make(CONTINUOUS_SPEC), make(CONTINUOUS_SPEC, loc_bound=2.0)
  free.create_variables()
  bounded.create_variables()
  for source, target in zip(free.variables, bounded.variables):
    target.assign(source)
  raw, _ = free(x)
  out, _ = bounded(x)
  assert np.abs(raw.policy.loc.numpy()).max() > 4.0  # beyond the bound
  np.testing.assert_allclose(out.policy.loc,
                             2.0 * np.tanh(raw.policy.loc.numpy() / 2.0),
                             rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(out.policy.scale, raw.policy.scale, rtol=1e-6)


@pytest.mark.parametrize('kwargs,message', [
    (dict(actor_units=()), 'actor_units must be a non-empty'),
    (dict(actor_units=(8, 0)), 'actor_units must be a non-empty'),
    (dict(critic_units=(0,)), 'critic_units must be a non-empty'),
    (dict(initial_scale=0.0), 'initial_scale must be >'),
    (dict(loc_bound=-1.0), 'loc_bound must be >= 0'),
    (dict(activation='nope'), 'activation'),
    (dict(normalizer=networks.ObservationNormalizer(
        tensor_spec.TensorSpec((4,), tf.float32))), 'normalizer'),
])
def test_mlp_rejects_bad_arguments(kwargs, message):
  with pytest.raises(ValueError, match=message):
    networks.MlpActorCriticNetwork(OBSERVATION_SPEC, CONTINUOUS_SPEC,
                                   **kwargs)


@pytest.mark.parametrize('q_head', [False, True])
def test_mlp_variable_groups_are_the_actor_and_the_critic(q_head):
  """The actor group alone moves the policy, the critic group the values."""
  net = small_mlp(CONTINUOUS_SPEC, q_head=q_head)
  net.create_variables()
  actor, critic = net.variable_groups
  grouped = [v.ref() for v in actor + critic]
  assert len(set(grouped)) == len(grouped) == len(net.trainable_variables)
  assert set(grouped) == {v.ref() for v in net.trainable_variables}
  observations = tf.random.stateless_normal([4, 3], [0, 3])
  actions = tf.random.stateless_uniform([4, 2, 2], [0, 4], -1.0, 1.0)
  with tf.GradientTape(persistent=True) as tape:
    output, _ = net(observations)
    policy = tf.reduce_sum(output.policy.loc) + tf.reduce_sum(
        output.policy.scale)
    value = tf.reduce_sum(output.value)
    if q_head:
      value += tf.reduce_sum(net.q_values(output.q, actions))
  assert all(g is None for g in tape.gradient(policy, critic))
  assert all(g is not None for g in tape.gradient(policy, actor))
  assert all(g is None for g in tape.gradient(value, actor))
  assert all(g is not None for g in tape.gradient(value, critic))


def test_shared_torso_network_is_one_variable_group():
  net = networks.PolicyValueNetwork(OBSERVATION_SPEC, CONTINUOUS_SPEC,
                                    torso_units=8, head_units=8)
  net.create_variables()
  (group,) = net.variable_groups
  assert [v.ref() for v in group] == [v.ref() for v in net.trainable_variables]


GRID_SPEC = tensor_spec.TensorSpec((5, 4, 3), tf.float32)


def test_conv_torso_stages_and_residual_blocks():
  """Per stage a 3x3 'same' convolution and residual conv blocks."""
  net = networks.PolicyValueNetwork(
      GRID_SPEC, DISCRETE_SPEC, torso_units=16, num_residual_blocks=0,
      head_units=8, conv_channels=(4, 6), conv_residual_blocks=1, q_head=True)
  grids = tf.random.stateless_uniform([2, 5, 4, 3], [0, 5])
  output, _ = net(grids)
  assert output.policy.shape == output.q.shape == (2, 5)
  assert output.value.shape == (2,)
  kernels = [tuple(v.shape) for v in net.trainable_variables
             if 'kernel' in v.name]
  # Stage 1: conv 3->4 and a residual block of two 4->4 convolutions; stage
  # 2 likewise with 6 channels; then the flattened 5*4*6 grid feeds the
  # torso's input layer.
  assert kernels[:6] == [(3, 3, 3, 4), (3, 3, 4, 4), (3, 3, 4, 4),
                         (3, 3, 4, 6), (3, 3, 6, 6), (3, 3, 6, 6)]
  assert kernels[6] == (5 * 4 * 6, 16)
  # The convolutions read the grid's geometry: shifting it changes the value.
  shifted = tf.roll(grids, 1, axis=1)
  assert not np.allclose(net(shifted)[0].value, output.value)


def test_conv_torso_needs_a_float_grid():
  with pytest.raises(ValueError, match='observation_spec: conv_channels'):
    networks.PolicyValueNetwork(OBSERVATION_SPEC, DISCRETE_SPEC,
                                conv_channels=(4,))
  with pytest.raises(ValueError, match='conv_channels must be >= 1'):
    networks.PolicyValueNetwork(GRID_SPEC, DISCRETE_SPEC, conv_channels=(0,))
