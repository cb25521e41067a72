"""Exporting a trained agent's policies as SavedModels."""

import os
from typing import Dict

from absl import logging
from tf_agents.policies import policy_saver
from tf_agents.policies import tf_policy

from tf_spo import agent as agent_lib


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


def export_policies(agent: agent_lib.SpoAgent, model,
                    export_dir: str) -> Dict[str, str]:
  """Exports the search policy and the bare network policy as SavedModels.

  They load with plain TensorFlow: `tf.saved_model.load(path)`, then
  `.action(time_step, ())` or the `action` signature. A search whose model
  runs Python (the MuJoCo simulator, behind `tf.numpy_function`) cannot be
  saved: only the network policy is exported then, as for an agent without
  search (PPO, whose `policy` is its `network_policy`).

  Args:
    agent: the trained agent.
    model: its planning model.
    export_dir: parent directory of the SavedModels.

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
          ActionOnlyPolicy(policy),
          train_step=agent.train_step_counter).save(path)
      paths[kind] = path
  finally:
    logging.set_verbosity(verbosity)
  return paths
