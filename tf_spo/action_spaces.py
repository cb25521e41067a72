"""Action spaces of the SMC search: the policy as a TFP distribution.

An action space turns the network's policy parameters into a TFP
distribution, samples search actions from it with stateless seeds (inside the
XLA-compiled search), evaluates their log-probabilities, maps them to the
environment's actions and says how the root is explored. The search, the
policies and the agent are written once against this interface:

* `DiscreteActions`: a scalar integer action in [0, A); the policy is
  `tfd.Categorical(logits)`; search actions are the environment actions.
* `GaussianActions`: a float action vector; the policy is a diagonal Gaussian
  over pre-squash actions u, squashed by tanh into the bounds of a
  `BoundedTensorSpec` (a `tfd.TransformedDistribution`), or used as is for an
  unbounded spec. Search actions (the atoms of q-hat stored for the M-step)
  are the pre-squash u, so the weighted maximum likelihood of the M-step is
  exact: the tanh Jacobian does not depend on the network.
"""

from typing import NamedTuple, Optional

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
from tf_agents.specs import tensor_spec

tfb = tfp.bijectors
tfd = tfp.distributions


class GaussianParams(NamedTuple):
  """Parameters of a diagonal Gaussian over pre-squash actions.

  Attributes:
    loc: [M, D] float32 means.
    scale: [M, D] float32 standard deviations, > 0.
  """
  loc: tf.Tensor
  scale: tf.Tensor


def diagonal_gaussian(loc: tf.Tensor, scale: tf.Tensor) -> tfd.Distribution:
  """N(loc, diag(scale^2)): batch shape `loc.shape[:-1]`, event [D]."""
  return tfd.Independent(tfd.Normal(loc, scale), reinterpreted_batch_ndims=1)


class DiscreteActions:
  """A scalar discrete action set {0, ..., A - 1}; the policy is categorical.

  Policy parameters are logits [M, A].
  """

  is_discrete = True

  def __init__(self, action_spec: tensor_spec.BoundedTensorSpec):
    """Creates the action space of a scalar integer spec with minimum 0."""
    self.action_spec = action_spec
    self.num_actions = int(action_spec.maximum) + 1

  def distribution(self, logits: tf.Tensor) -> tfd.Distribution:
    """The policy over environment actions, `Categorical` [M]."""
    return tfd.Categorical(logits=logits, dtype=self.action_spec.dtype)

  def sample(self, logits: tf.Tensor, num: int, seed: tf.Tensor) -> tf.Tensor:
    """Samples `num` search actions per row: [M, num] int32."""
    return tf.random.stateless_categorical(logits, num, seed,
                                           dtype=self.action_spec.dtype)

  def env_action(self, atoms: tf.Tensor) -> tf.Tensor:
    """Environment actions of search actions (the identity here)."""
    return atoms

  def enumerate(self) -> Optional[tf.Tensor]:
    """All actions [A], for proposals that twist the whole action set."""
    return tf.range(self.num_actions, dtype=self.action_spec.dtype)

  def mode(self, logits: tf.Tensor) -> tf.Tensor:
    """The most likely action [M]."""
    return tf.argmax(logits, axis=-1, output_type=self.action_spec.dtype)

  def root_noise(self, logits: tf.Tensor, dirichlet_alpha: float,
                 fraction: float, seed: tf.Tensor) -> tf.Tensor:
    """pi mixed with Dirichlet(alpha) noise at weight `fraction`.

    Returns:
      [M, A] log-probabilities of the noised root prior.
    """
    concentration = tf.fill(tf.shape(logits), dirichlet_alpha)
    noise = tfd.Dirichlet(concentration).sample(seed=seed)
    probs = (1.0 - fraction) * tf.nn.softmax(logits) + fraction * noise
    return tf.math.log(probs)

  def probabilities(self, atoms: tf.Tensor, weights: tf.Tensor) -> tf.Tensor:
    """Per-action probabilities [B, A] of weighted atoms [B, N]."""
    return tf.einsum('bn,bna->ba', weights,
                     tf.one_hot(atoms, self.num_actions))


class GaussianActions:
  """A float action vector; the policy is a (tanh-squashed) diagonal Gaussian.

  Policy parameters are `GaussianParams` over pre-squash actions u [M, D].
  With a `BoundedTensorSpec` the environment action is
  `low + (high - low) * (tanh(u) + 1) / 2`; with an unbounded `TensorSpec` it
  is u.
  """

  is_discrete = False
  num_actions = None

  def __init__(self, action_spec: tensor_spec.TensorSpec):
    """Creates the action space of a float spec of rank 1."""
    self.action_spec = action_spec
    self.action_size = int(action_spec.shape[0])
    if tensor_spec.is_bounded(action_spec):
      low = np.broadcast_to(action_spec.minimum, action_spec.shape)
      high = np.broadcast_to(action_spec.maximum, action_spec.shape)
      self._squash = tfb.Chain([
          tfb.Shift(tf.constant((high + low) / 2.0, tf.float32)),
          tfb.Scale(tf.constant((high - low) / 2.0, tf.float32)),
          tfb.Tanh()])
    else:
      self._squash = tfb.Identity()

  def search_distribution(self, params: GaussianParams) -> tfd.Distribution:
    """The Gaussian over pre-squash actions u, batch [M], event [D]."""
    return diagonal_gaussian(params.loc, params.scale)

  def distribution(self, params: GaussianParams) -> tfd.Distribution:
    """The policy over environment actions: the squashed Gaussian [M]."""
    return tfd.TransformedDistribution(self.search_distribution(params),
                                       self._squash)

  def sample(self, params: GaussianParams, num: int,
             seed: tf.Tensor) -> tf.Tensor:
    """Samples `num` pre-squash actions per row: [M, num, D]."""
    samples = self.search_distribution(params).sample(num, seed=seed)
    return tf.transpose(samples, [1, 0, 2])

  def env_action(self, atoms: tf.Tensor) -> tf.Tensor:
    """Environment actions [..., D] of pre-squash atoms [..., D]."""
    return self._squash.forward(atoms)

  def enumerate(self) -> Optional[tf.Tensor]:
    """None: a continuous action set cannot be enumerated."""
    return None

  def mode(self, params: GaussianParams) -> tf.Tensor:
    """The environment action of the Gaussian's mean [M, D]."""
    return self._squash.forward(params.loc)

  def root_noise(self, params: GaussianParams, dirichlet_alpha: float,
                 fraction: float, seed: tf.Tensor) -> GaussianParams:
    """No root noise: q-hat is sampled, and pi's own spread explores."""
    del dirichlet_alpha, fraction, seed
    return params

  def probabilities(self, atoms, weights) -> None:
    """None: continuous q-hat is its weighted atoms."""
    del atoms, weights
    return


ActionSpace = DiscreteActions | GaussianActions


def for_spec(action_spec) -> ActionSpace:
  """The action space of an action spec.

  Args:
    action_spec: a scalar integer `BoundedTensorSpec` with minimum 0, or a
      float `TensorSpec`/`BoundedTensorSpec` of rank 1 (finite bounds).

  Returns:
    A `DiscreteActions` or `GaussianActions`.

  Raises:
    ValueError: naming `action_spec` if it is neither.
  """
  if not isinstance(action_spec, tensor_spec.TensorSpec):
    raise ValueError('action_spec must be a single TensorSpec (no nests), '
                     f'got {action_spec}.')
  if action_spec.dtype.is_integer:
    if (not tensor_spec.is_bounded(action_spec) or action_spec.shape.rank != 0
        or int(action_spec.minimum) != 0):
      raise ValueError('action_spec: discrete actions must be a scalar '
                       'BoundedTensorSpec with minimum 0, got '
                       f'{action_spec}.')
    return DiscreteActions(action_spec)
  if action_spec.dtype.is_floating:
    if action_spec.shape.rank != 1 or not action_spec.shape.is_fully_defined():
      raise ValueError('action_spec: continuous actions must have shape '
                       f'[D], got {action_spec}.')
    if tensor_spec.is_bounded(action_spec):
      low = np.broadcast_to(action_spec.minimum, action_spec.shape)
      high = np.broadcast_to(action_spec.maximum, action_spec.shape)
      if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))
              and np.all(low < high)):
        raise ValueError('action_spec: continuous bounds must be finite '
                         f'with minimum < maximum, got {action_spec}.')
    return GaussianActions(action_spec)
  raise ValueError(f'action_spec must be integer or float, got {action_spec}.')
