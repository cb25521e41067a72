"""Exporting a trained agent's policies as SavedModels."""

import os
from typing import Any, Dict, Optional, Tuple

from absl import logging
import tensorflow as tf
from tf_agents.policies import policy_saver
from tf_agents.policies import tf_policy

from tf_spo import agent as agent_lib
from tf_spo.experiment import run as run_lib
from tf_spo.experiment import settings as settings_lib

# The metadata entry of an exported policy that names its task.
_ENV_KEY = 'env'


class ActionOnlyPolicy(tf_policy.TFPolicy):
  """Delegates `action` to a policy and exports no `distribution`.

  A SavedModel with a saved `distribution` can only be loaded after importing
  TensorFlow Probability (it registers the distributions' type specs); without
  it, the exported policies load with plain TensorFlow. The search target
  q-hat is still in the `action` outputs, as `info['search_policy']`.
  """

  def __init__(self, policy: tf_policy.TFPolicy):
    super().__init__(policy.time_step_spec, policy.action_spec,
                     policy.policy_state_spec, policy.info_spec,
                     name=policy.name)
    self._policy = policy

  def _action(self, time_step, policy_state, seed=None):
    return self._policy.action(time_step, policy_state, seed=seed)

  def _distribution(self, time_step, policy_state):
    raise NotImplementedError('Exported for action only.')


def export_policies(agent: agent_lib.SpoAgent, model, export_dir: str,
                    env: str) -> Dict[str, str]:
  """Exports the search policy and the bare network policy as SavedModels.

  They load with plain TensorFlow: `tf.saved_model.load(path)`, then
  `.action(time_step, ())` or the `action` signature. A search whose model
  runs Python (the MuJoCo simulator, behind `tf.numpy_function`) cannot be
  saved: only the network policy is exported then, as for an agent without
  search (PPO, whose `policy` is its `network_policy`). Each SavedModel
  names the task it acts in (`exported_env`).

  Args:
    agent: the trained agent.
    model: its planning model.
    export_dir: parent directory of the SavedModels.
    env: the registry name of the task.

  Returns:
    {'search': <dir>, 'network': <dir>} of the written SavedModels, without
    'search' for such models and agents.
  """
  policies = [('network', agent.export_network_policy())]
  if model.xla_compatible and agent.policy is not agent.network_policy:
    policies.insert(0, ('search', agent.policy))
  paths = {}
  verbosity = logging.get_verbosity()
  # PolicySaver warns that the distribution is not exported: that is the
  # intent of ActionOnlyPolicy.
  logging.set_verbosity(logging.ERROR)
  try:
    for kind, policy in policies:
      path = os.path.join(export_dir, kind)
      policy_saver.PolicySaver(
          ActionOnlyPolicy(policy), train_step=agent.train_step_counter,
          metadata={_ENV_KEY: tf.Variable(env, trainable=False)}).save(path)
      paths[kind] = path
  finally:
    logging.set_verbosity(verbosity)
  return paths


def exported_env(saved_policy) -> Optional[str]:
  """The task a policy loaded by `tf.saved_model.load` was exported for.

  None for SavedModels exported before policies named their task.
  """
  if not hasattr(saved_policy, 'get_metadata'):
    return None
  metadata = saved_policy.get_metadata()
  if _ENV_KEY not in metadata:
    return None
  return metadata[_ENV_KEY].numpy().decode()


def load_saved_policy(path: str, env: Optional[str] = None
                      ) -> Tuple[Any, Dict[str, Any]]:
  """A policy SavedModel of `export_policies`, and the settings of its task.

  Args:
    path: the SavedModel directory.
    env: the task to play it in; by default the one it names (the
      default env for SavedModels exported before they named it).

  Returns:
    (policy, settings): `tf.saved_model.load(path)`, and the task's settings
    under its 'cpu' preset.

  Raises:
    RunPathError: naming `saved_model` if `path` is not a SavedModel.
    ValueError: naming env if it is not the task the SavedModel names.
  """
  run_lib.check_saved_model(path)
  policy = tf.saved_model.load(path)
  named = exported_env(policy)
  if env and named and env != named:
    raise ValueError(f'env={env} is not the task of the SavedModel at {path}, '
                     f'{named}: pass env={named} or none.')
  env = env or named or settings_lib.DEFAULTS['env']
  return policy, settings_lib.resolve_settings(env, 'cpu', {})
