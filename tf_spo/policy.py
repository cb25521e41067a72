"""TF-Agents policies of SPO: the SMC search policy and the bare network.

`SmcPolicy` runs the XLA-compiled SMC search (`tf_spo.search`) from each
observation and acts from its target q-hat; its `info` carries the training
targets. `NetworkPolicy` acts from the network's prior pi alone.
"""

from typing import Any, Optional

import tensorflow as tf
import tensorflow_probability as tfp
from tf_agents.policies import tf_policy
from tf_agents.specs import tensor_spec
from tf_agents.trajectories import policy_step
from tf_agents.utils import nest_utils

from tf_spo import config as config_lib
from tf_spo import search as search_lib

tfd = tfp.distributions


def check_discrete_specs(time_step_spec, action_spec, model) -> int:
  """Checks that specs match the model and actions are scalar discrete.

  Args:
    time_step_spec: the policy's `TimeStep` spec.
    action_spec: the policy's action spec.
    model: the planning `EnvironmentModel`.

  Returns:
    The number of actions.

  Raises:
    ValueError: naming the mismatching spec.
  """
  if not (tensor_spec.is_bounded(action_spec)
          and tensor_spec.is_discrete(action_spec)
          and action_spec.shape.rank == 0):
    raise ValueError('action_spec must be a scalar discrete BoundedTensorSpec '
                     f'for the SPO discrete search, got {action_spec}.')
  if int(action_spec.minimum) != 0:
    raise ValueError(f'action_spec.minimum must be 0, got {action_spec}.')
  if action_spec != model.action_spec():
    raise ValueError(f'action_spec {action_spec} does not match the model '
                     f'action_spec {model.action_spec()}.')
  nest_utils.assert_same_structure(
      time_step_spec.observation, model.observation_spec(),
      message='time_step_spec.observation and the model observation_spec '
      'differ in structure')
  if time_step_spec.observation != model.observation_spec():
    raise ValueError(
        f'time_step_spec.observation {time_step_spec.observation} does not '
        f'match the model observation_spec {model.observation_spec()}.')
  return int(action_spec.maximum) + 1


# Scalar search outputs carried in the policy info: training targets and
# diagnostics that the agent summarises.
SCALAR_INFO = ('search_value', 'retrace_value', 'ess', 'weight_entropy',
               'alive_fraction', 'proposal_kl', 'proposal_beta')


def search_info_spec(num_actions: int, num_particles: int) -> dict:
  """Spec of the policy info of `SmcPolicy`: the search's training targets.

  `search_policy` is q-hat [A]; `eta_advantages` and `eta_log_ratios` [N]
  feed the eta dual; the scalars are `SearchOutput` fields of the same names
  (`search_value` is `SearchOutput.value`).
  """
  spec = {
      'search_policy': tensor_spec.TensorSpec([num_actions], tf.float32,
                                              'search_policy'),
      'eta_advantages': tensor_spec.TensorSpec([num_particles], tf.float32,
                                               'eta_advantages'),
      'eta_log_ratios': tensor_spec.TensorSpec([num_particles], tf.float32,
                                               'eta_log_ratios'),
  }
  spec.update({name: tensor_spec.TensorSpec((), tf.float32, name)
               for name in SCALAR_INFO})
  return spec


class SmcPolicy(tf_policy.TFPolicy):
  """Acts by running the SPO SMC search from the current observation.

  Collect policies sample from q-hat with Dirichlet root noise; evaluation
  policies sample from q-hat or take its mode (`greedy=True`). The search
  itself is a `tf.function(jit_compile=True)`. Without an explicit `seed` in
  `action`, seeds come from a `tf.random.Generator` owned by the policy, so a
  restored or exported policy continues the same random stream.
  """

  def __init__(self,
               time_step_spec,
               action_spec,
               network,
               model,
               search_config: config_lib.SearchConfig,
               temperature: Any,
               greedy: bool = False,
               add_root_noise: bool = False,
               seed: int = 0,
               name: Optional[str] = None):
    """Creates the policy.

    Args:
      time_step_spec: `TimeStep` spec; its observation must match the model.
      action_spec: scalar discrete `BoundedTensorSpec` matching the model.
      network: a `PolicyValueNetwork`; with `proposal_alpha > 0` it needs a
        Q head.
      model: the planning `EnvironmentModel`, pure TF.
      search_config: static `SearchConfig`.
      temperature: eta, a scalar tensor-like (e.g. a `TransformedVariable`).
      greedy: take the mode of q-hat instead of sampling it.
      add_root_noise: Dirichlet noise at the root (collect policy).
      seed: seed of the policy's random generator.
      name: policy name.
    """
    num_actions = check_discrete_specs(time_step_spec, action_spec, model)
    if (search_config.proposal_alpha > 0 and
        not getattr(network, 'has_q_head', False)):
      raise ValueError('--proposal_alpha > 0 needs Q-values: use a '
                       'PolicyValueNetwork(q_head=True).')
    super().__init__(
        time_step_spec, action_spec,
        info_spec=search_info_spec(num_actions, search_config.num_particles),
        name=name)
    self._network = network
    self._model = model
    self._search_config = search_config
    self._temperature = temperature
    self._greedy = greedy
    self._add_root_noise = add_root_noise
    self._rng = tf.random.Generator.from_seed(seed)
    self._compiled_search = tf.function(self._search, jit_compile=True)

  def _network_fn(self, observation):
    outputs, _ = self._network(observation)
    return outputs

  def _search(self, observation, seed):
    return search_lib.smc_search(
        observation, self._model, self._network_fn,
        tf.convert_to_tensor(self._temperature), self._search_config, seed,
        add_root_noise=self._add_root_noise)

  def search(self, observation, seed: tf.Tensor) -> search_lib.SearchOutput:
    """Runs the compiled search on observations [B, ...] with a seed [2]."""
    return self._compiled_search(observation, seed)

  def _step(self, time_step, policy_state, seed):
    if seed is None:
      seed = tf.cast(self._rng.make_seeds(1)[:, 0], tf.int32)
    else:
      seed = tfp.random.sanitize_seed(seed)
    search_seed, sample_seed = tf.unstack(
        tf.random.experimental.stateless_split(seed, num=2))
    output = self.search(time_step.observation, search_seed)
    if self._greedy:
      distribution = tfd.Deterministic(
          tf.argmax(output.action_weights, axis=-1,
                    output_type=self.action_spec.dtype))
    else:
      distribution = tfd.Categorical(probs=output.action_weights,
                                     dtype=self.action_spec.dtype)
    info = {
        'search_policy': output.action_weights,
        'eta_advantages': output.eta_advantages,
        'eta_log_ratios': output.eta_log_ratios,
        'search_value': output.value,
    }
    info.update({name: getattr(output, name) for name in SCALAR_INFO
                 if name != 'search_value'})
    return policy_step.PolicyStep(distribution, policy_state, info), sample_seed

  def _distribution(self, time_step, policy_state):
    return self._step(time_step, policy_state, seed=None)[0]

  def _action(self, time_step, policy_state, seed=None):
    step, sample_seed = self._step(time_step, policy_state, seed)
    return step._replace(action=step.action.sample(seed=sample_seed))


class NetworkPolicy(tf_policy.TFPolicy):
  """Acts from the network's prior pi(a|s) alone (no search)."""

  def __init__(self, time_step_spec, action_spec, network,
               greedy: bool = False, name: Optional[str] = None):
    """Creates the policy.

    Args:
      time_step_spec: `TimeStep` spec.
      action_spec: scalar discrete `BoundedTensorSpec`.
      network: a `PolicyValueNetwork`.
      greedy: take the most likely action instead of sampling.
      name: policy name.
    """
    super().__init__(time_step_spec, action_spec, name=name)
    self._network = network
    self._greedy = greedy

  def _distribution(self, time_step, policy_state):
    outputs, _ = self._network(time_step.observation)
    logits = outputs[0]
    if self._greedy:
      distribution = tfd.Deterministic(
          tf.argmax(logits, axis=-1, output_type=self.action_spec.dtype))
    else:
      distribution = tfd.Categorical(logits=logits,
                                     dtype=self.action_spec.dtype)
    return policy_step.PolicyStep(distribution, policy_state)
