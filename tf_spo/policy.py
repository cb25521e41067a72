"""TF-Agents policies of SPO: the search policies and the bare network.

`SmcPolicy` runs the SMC search (`tf_spo.search`, XLA-compiled for pure-TF
models) from each observation and acts from its target q-hat; its `info`
carries the training targets. `GumbelPolicy` runs the Gumbel MuZero baseline
(`tf_spo.gumbel`) the same way. `NetworkPolicy` acts from the network's prior
pi alone, reading only the network input of the observations. Both serve
discrete and continuous actions (`tf_spo.action_spaces`).
"""

from typing import Any, Optional

import tensorflow as tf
import tensorflow_probability as tfp
from tf_agents.policies import tf_policy
from tf_agents.specs import tensor_spec
from tf_agents.trajectories import policy_step
from tf_agents.utils import nest_utils

from environments import model as model_lib
from tf_spo import action_spaces
from tf_spo import config as config_lib
from tf_spo import gumbel as gumbel_lib
from tf_spo import search as search_lib

tfd = tfp.distributions


def check_specs(time_step_spec, action_spec, model,
                network=None) -> action_spaces.ActionSpace:
  """Checks that the specs, the model and the network fit together.

  Args:
    time_step_spec: the policy's `TimeStep` spec.
    action_spec: the policy's action spec.
    model: the planning `EnvironmentModel`.
    network: optional `PolicyValueNetwork`; its input spec must be the
      network input of the observations and its action space `action_spec`.

  Returns:
    The action space of `action_spec`.

  Raises:
    ValueError: naming the mismatching argument.
  """
  action_space = action_spaces.for_spec(action_spec)
  if action_spec != model.action_spec():
    raise ValueError(f'action_spec {action_spec} does not match the model '
                     f'action_spec {model.action_spec()}.')
  nest_utils.assert_same_structure(
      time_step_spec.observation, model.observation_spec(),
      message='time_step_spec.observation and the model observation_spec '
      'differ in structure (a model that carries its planning state '
      'observes a PlanningObservation)')
  if time_step_spec.observation != model.observation_spec():
    raise ValueError(
        f'time_step_spec.observation {time_step_spec.observation} does not '
        f'match the model observation_spec {model.observation_spec()}.')
  if network is not None:
    if network.input_tensor_spec != model.network_input_spec():
      raise ValueError(
          f'network: its input spec {network.input_tensor_spec} is not the '
          f'network input of the observations, {model.network_input_spec()}.')
    network_spec = network.action_space.action_spec
    if network_spec != action_spec:
      raise ValueError(f'network: it serves actions {network_spec}, not '
                       f'action_spec {action_spec}.')
  return action_space


# Scalar search outputs carried in the policy info: training targets and
# diagnostics that the agent summarises.
SCALAR_INFO = ('search_value', 'retrace_value', 'ess', 'weight_entropy',
               'alive_fraction', 'proposal_kl', 'proposal_beta',
               'resample_fraction')


def search_info_spec(action_space: action_spaces.ActionSpace,
                     num_particles: int) -> dict:
  """Spec of the policy info of `SmcPolicy`: the search's training targets.

  The target q-hat is `search_policy` [A] for discrete actions, and the
  atoms `search_atoms` [N, D] (pre-squash actions) with their weights
  `search_weights` [N] for continuous ones; `eta_advantages` and
  `eta_log_ratios` [N] feed the eta dual; the scalars are `SearchOutput`
  fields of the same names (`search_value` is `SearchOutput.value`).
  """
  spec = _target_spec(action_space, num_particles)
  for name in ('eta_advantages', 'eta_log_ratios'):
    spec[name] = tensor_spec.TensorSpec([num_particles], tf.float32, name)
  spec.update(_scalar_specs(SCALAR_INFO))
  return spec


def _target_spec(action_space: action_spaces.ActionSpace,
                 num_atoms: int) -> dict:
  """Spec of a search's policy target: [A] or [K, D] atoms and [K] weights."""
  if action_space.is_discrete:
    return {'search_policy': tensor_spec.TensorSpec(
        [action_space.num_actions], tf.float32, 'search_policy')}
  return {
      'search_atoms': tensor_spec.TensorSpec(
          [num_atoms, action_space.action_size], tf.float32, 'search_atoms'),
      'search_weights': tensor_spec.TensorSpec([num_atoms], tf.float32,
                                               'search_weights')}


def _target_info(action_space: action_spaces.ActionSpace,
                 action_weights: tf.Tensor, atoms: tf.Tensor,
                 atom_weights: tf.Tensor) -> dict:
  """A search's policy target, as `_target_spec` lays it out.

  Args:
    action_space: the task's action space.
    action_weights: [B, A] target probabilities (discrete actions).
    atoms: [B, K, D] root atoms (continuous actions).
    atom_weights: [B, K] their target weights (continuous actions).
  """
  if action_space.is_discrete:
    return {'search_policy': action_weights}
  return {'search_atoms': atoms, 'search_weights': atom_weights}


def _scalar_specs(names) -> dict:
  return {name: tensor_spec.TensorSpec((), tf.float32, name)
          for name in names}


class SearchPolicy(tf_policy.TFPolicy):
  """Acts by running a search from the current observation.

  The search is a `tf.function`, XLA-compiled when the model is
  (`model.xla_compatible`). Without an explicit `seed` in `action`, seeds
  come from a `tf.random.Generator` owned by the policy, so a restored or
  exported policy continues the same random stream. Subclasses give the
  search (`_search`), the distribution it acts from (`_q_hat`) and the
  policy info of its training targets (`_info`).
  """

  def __init__(self, time_step_spec, action_spec, network, model, info_spec,
               seed: int = 0, name: Optional[str] = None):
    """Creates the policy.

    Args:
      time_step_spec: `TimeStep` spec; its observation must match the model.
      action_spec: the model's action spec.
      network: a `PolicyValueNetwork` of the network input and action spec.
      model: the planning `EnvironmentModel`.
      info_spec: spec of the policy info.
      seed: seed of the policy's random generator.
      name: policy name.
    """
    super().__init__(time_step_spec, action_spec, info_spec=info_spec,
                     name=name)
    self._network = network
    self._model = model
    self._rng = tf.random.Generator.from_seed(seed)
    self._compiled_search = tf.function(
        self._search, jit_compile=model.xla_compatible, autograph=False)

  def _network_fn(self, network_input):
    output, _ = self._network(network_input)
    return output

  def _search(self, observation, seed):
    raise NotImplementedError

  def _q_hat(self, output) -> tfd.Distribution:
    raise NotImplementedError

  def _info(self, output) -> dict:
    raise NotImplementedError

  def search(self, observation, seed: tf.Tensor):
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
    return (policy_step.PolicyStep(self._q_hat(output), policy_state,
                                   self._info(output)),
            sample_seed)

  def _distribution(self, time_step, policy_state):
    return self._step(time_step, policy_state, seed=None)[0]

  def _action(self, time_step, policy_state, seed=None):
    step, sample_seed = self._step(time_step, policy_state, seed)
    return step._replace(action=step.action.sample(seed=sample_seed))


class SmcPolicy(SearchPolicy):
  """Acts by running the SPO SMC search from the current observation.

  Collect policies sample from q-hat with root noise; evaluation policies
  sample from q-hat or take its mode (`greedy=True`: the most probable
  discrete action, or the highest-weight atom).
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
      action_spec: the model's action spec (scalar discrete, or float [D]).
      network: a `PolicyValueNetwork` of the network input and action spec;
        with `proposal_alpha > 0` it needs a Q head.
      model: the planning `EnvironmentModel`.
      search_config: static `SearchConfig`.
      temperature: eta, a scalar tensor-like (e.g. a `TransformedVariable`).
      greedy: take the mode of q-hat instead of sampling it.
      add_root_noise: root noise (collect policy).
      seed: seed of the policy's random generator.
      name: policy name.

    Raises:
      ValueError: naming the argument that does not fit.
    """
    self._action_space = check_specs(time_step_spec, action_spec, model,
                                     network)
    if (search_config.proposal_alpha > 0 and
        not getattr(network, 'has_q_head', False)):
      raise ValueError('proposal_alpha > 0 needs Q-values: use a '
                       'PolicyValueNetwork(q_head=True).')
    self._search_config = search_config
    self._temperature = temperature
    self._greedy = greedy
    self._add_root_noise = add_root_noise
    super().__init__(
        time_step_spec, action_spec, network, model,
        search_info_spec(self._action_space, search_config.num_particles),
        seed=seed, name=name)

  def _search(self, observation, seed):
    return search_lib.smc_search(
        observation, self._model, self._network_fn,
        tf.convert_to_tensor(self._temperature), self._search_config, seed,
        add_root_noise=self._add_root_noise,
        q_fn=(self._network.q_values if self._network.has_q_head else None))

  def _q_hat(self, output: search_lib.SearchOutput) -> tfd.Distribution:
    """q-hat as a distribution over environment actions."""
    dtype = self.action_spec.dtype
    if self._action_space.is_discrete:
      if self._greedy:
        return tfd.Deterministic(tf.argmax(output.action_weights, axis=-1,
                                           output_type=dtype))
      return tfd.Categorical(probs=output.action_weights, dtype=dtype)
    env_atoms = self._action_space.env_action(output.atoms)
    if self._greedy:
      best = tf.argmax(output.atom_weights, axis=-1, output_type=tf.int32)
      return tfd.Independent(tfd.Deterministic(
          tf.gather(env_atoms, best, batch_dims=1)), 1)
    return tfd.MixtureSameFamily(
        tfd.Categorical(probs=output.atom_weights),
        tfd.Independent(tfd.Deterministic(env_atoms), 1))

  def _info(self, output: search_lib.SearchOutput) -> dict:
    target = output.policy_target
    info = _target_info(self._action_space, target.action_weights,
                        target.atoms, target.atom_weights)
    info.update(eta_advantages=output.eta_advantages,
                eta_log_ratios=output.eta_log_ratios,
                search_value=output.value)
    info.update({name: getattr(output, name) for name in SCALAR_INFO
                 if name != 'search_value'})
    return info


# Scalar outputs of the Gumbel search carried in the policy info.
GUMBEL_SCALAR_INFO = ('search_value', 'visit_entropy')


class GumbelPolicy(SearchPolicy):
  """Acts by running the Gumbel MuZero search (`tf_spo.gumbel`).

  The action is the search's choice: Gumbel-top-k sampling with Sequential
  Halving at the root for the collect policy (`add_root_noise`), the same
  without Gumbel noise for the evaluation policy, which is then
  deterministic given the root's edges. The info holds the improved policy
  as the policy target (as q-hat is for SPO): `search_policy` [A] for
  discrete actions, the root's sampled atoms `search_atoms` [K, D] with
  `search_weights` [K] for continuous ones; and the root's search value and
  the entropy of its visit distribution.
  """

  def __init__(self,
               time_step_spec,
               action_spec,
               network,
               model,
               search_config: config_lib.GumbelConfig,
               add_root_noise: bool = False,
               seed: int = 0,
               name: Optional[str] = None):
    """Creates the policy.

    Args:
      time_step_spec: `TimeStep` spec; its observation must match the model.
      action_spec: the model's action spec (scalar discrete, or float [D]).
      network: a `PolicyValueNetwork` of the network input and action spec.
      model: the planning `EnvironmentModel`.
      search_config: static `GumbelConfig`.
      add_root_noise: Gumbel noise at the root (collect policy).
      seed: seed of the policy's random generator.
      name: policy name.

    Raises:
      ValueError: naming the argument that does not fit.
    """
    self._action_space = check_specs(time_step_spec, action_spec, model,
                                     network)
    self._search_config = search_config
    self._add_root_noise = add_root_noise
    info_spec = _target_spec(self._action_space,
                             search_config.num_sampled_actions)
    info_spec.update(_scalar_specs(GUMBEL_SCALAR_INFO))
    super().__init__(time_step_spec, action_spec, network, model, info_spec,
                     seed=seed, name=name)

  def _search(self, observation, seed):
    return gumbel_lib.gumbel_search(
        observation, self._model, self._network_fn, self._search_config,
        seed, add_noise=self._add_root_noise)

  def _q_hat(self, output: gumbel_lib.GumbelOutput) -> tfd.Distribution:
    action = self._action_space.env_action(
        tf.gather(output.atoms, output.action, batch_dims=1))
    if self._action_space.is_discrete:
      return tfd.Deterministic(tf.cast(action, self.action_spec.dtype))
    return tfd.Independent(tfd.Deterministic(action), 1)

  def _info(self, output: gumbel_lib.GumbelOutput) -> dict:
    visits = output.visit_counts / tf.reduce_sum(
        output.visit_counts, axis=-1, keepdims=True)
    info = _target_info(self._action_space, output.action_weights,
                        output.atoms, output.action_weights)
    info.update(
        search_value=output.value,
        visit_entropy=-tf.reduce_sum(
            visits * tf.math.log(tf.maximum(visits, 1e-30)), axis=-1))
    return info


def search_policy(time_step_spec, action_spec, network, model, search_config,
                  temperature: Any, greedy: bool = False,
                  add_root_noise: bool = False, seed: int = 0,
                  name: Optional[str] = None) -> SearchPolicy:
  """The search policy of a search configuration.

  Args:
    time_step_spec: `TimeStep` spec; its observation must match the model.
    action_spec: the model's action spec.
    network: a `PolicyValueNetwork` of the network input and action spec.
    model: the planning `EnvironmentModel`.
    search_config: `SearchConfig` (SMC search, `SmcPolicy`) or
      `GumbelConfig` (Gumbel MuZero, `GumbelPolicy`).
    temperature: eta of the SMC search (unused by Gumbel MuZero).
    greedy: the mode of q-hat (SMC); Gumbel MuZero's noise-free choice
      (without it, Gumbel MuZero's evaluation policy keeps the noise).
    add_root_noise: root noise (collect policy).
    seed: seed of the policy's random generator.
    name: policy name.

  Returns:
    A `SearchPolicy`.
  """
  if isinstance(search_config, config_lib.GumbelConfig):
    return GumbelPolicy(time_step_spec, action_spec, network, model,
                        search_config,
                        add_root_noise=add_root_noise or not greedy,
                        seed=seed, name=name)
  return SmcPolicy(time_step_spec, action_spec, network, model,
                   search_config, temperature, greedy=greedy,
                   add_root_noise=add_root_noise, seed=seed, name=name)


class NetworkPolicy(tf_policy.TFPolicy):
  """Acts from the network's prior pi(a|s) alone (no search).

  Reads only the network input of the observations, so it runs on the
  environment's time steps and, built with `network_time_step_spec`, on the
  network input alone (as exported).
  """

  def __init__(self, time_step_spec, action_spec, network,
               greedy: bool = False, name: Optional[str] = None):
    """Creates the policy.

    Args:
      time_step_spec: `TimeStep` spec, with full observations or the network
        input only.
      action_spec: the action spec the network serves.
      network: a `PolicyValueNetwork`.
      greedy: take the most likely action (the Gaussian's squashed mean)
        instead of sampling.
      name: policy name.
    """
    super().__init__(time_step_spec, action_spec, name=name)
    self._network = network
    self._greedy = greedy

  def _distribution(self, time_step, policy_state):
    output, _ = self._network(model_lib.network_input(time_step.observation))
    action_space = self._network.action_space
    if self._greedy:
      mode = action_space.mode(output.policy)
      distribution = (tfd.Deterministic(mode) if action_space.is_discrete
                      else tfd.Independent(tfd.Deterministic(mode), 1))
    else:
      distribution = action_space.distribution(output.policy)
    return policy_step.PolicyStep(distribution, policy_state)


class NetworkActsPolicy(tf_policy.TFPolicy):
  """A search policy whose action is, at random steps, the network's own.

  At each step each environment acts, with probability `fraction`, with the
  network policy's action instead of the search's. The search runs at every
  step and its info (q-hat, the M-step's targets) is kept, so the network is
  trained on the search's targets at states it visits itself: DAgger (Ross
  et al., 2011), the learner's states labelled by the expert. The draws come
  from the policy's own generator, or from `seed` when `action` is given one.
  """

  def __init__(self, search: SearchPolicy, network: 'NetworkPolicy',
               fraction: float, seed: int = 0, name: Optional[str] = None):
    """Creates the policy.

    Args:
      search: the search policy whose targets and (otherwise) actions it
        gives.
      network: the network policy acting at the chosen steps.
      fraction: the probability in [0, 1] that an environment's step is
        the network's.
      seed: seed of the policy's random generator.
      name: policy name.
    """
    super().__init__(search.time_step_spec, search.action_spec,
                     search.policy_state_spec, search.info_spec, name=name)
    self._search_policy = search
    self._network_policy = network
    self._fraction = fraction
    self._rng = tf.random.Generator.from_seed(seed)

  def _distribution(self, time_step, policy_state):
    raise NotImplementedError("Acts by mixing two policies' actions.")

  def _action(self, time_step, policy_state, seed=None):
    if seed is None:
      seed = tf.cast(self._rng.make_seeds(1)[:, 0], tf.int32)
    else:
      seed = tfp.random.sanitize_seed(seed)
    search_seed, mix_seed = tf.unstack(
        tf.random.experimental.stateless_split(seed, num=2))
    step = self._search_policy.action(time_step, policy_state,
                                      seed=search_seed)
    network_action = self._network_policy.action(time_step).action
    by_network = tf.random.stateless_uniform(
        tf.shape(step.action)[:1], mix_seed) < self._fraction
    by_network = tf.reshape(
        by_network, tf.concat([tf.shape(by_network),
                               tf.ones_like(tf.shape(step.action)[1:])], 0))
    return step._replace(action=tf.where(
        by_network, tf.cast(network_action, step.action.dtype), step.action))


def network_time_step_spec(time_step_spec):
  """`time_step_spec` with only the network input as observation."""
  return time_step_spec._replace(
      observation=model_lib.network_input(time_step_spec.observation))
