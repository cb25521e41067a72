"""Agents trained on one replica and on two, on the same global batch.

`all_differences(strategy)` trains two agents of tests/support/agents.py for
two steps each, once without a strategy and once under a 2-replica
`MirroredStrategy` with half of the batch per replica: the cube agent on
fabricated [8, 5] batches, and a pendulum agent with MLPs and an observation
normaliser on [8, 6] batches its search collected, its eta solved from each
batch's dual. It returns the largest differences of the losses and of every
variable (the normaliser's statistics included), each relative to the
single-replica value where that exceeds 1 (absolute below).
"""

import numpy as np
import tensorflow as tf

from tests.support import agents as test_agent
from tf_spo import config as config_lib
from tf_spo import networks

GLOBAL_BATCH = 8


def pendulum_agent():
  """A pendulum agent with actor and critic MLPs and a normaliser."""
  spec = test_agent.PENDULUM.network_input_spec()
  network = networks.MlpActorCriticNetwork(
      spec, test_agent.PENDULUM.action_spec(), actor_units=(32, 32),
      critic_units=(32, 32), normalizer=networks.ObservationNormalizer(spec))
  return test_agent.make_agent(
      config_lib.SpoConfig(epsilon_eta=0.2, initial_eta=10.0,
                           eta_update='solve'),
      test_agent.PENDULUM, test_agent.SEARCH, network)


def difference(actual, expected) -> float:
  """Largest |actual - expected| / max(1, |expected|) over the elements."""
  expected = np.asarray(expected, np.float64)
  return float(np.max(np.abs(np.asarray(actual, np.float64) - expected) /
                      np.maximum(1.0, np.abs(expected))))


def largest_differences(strategy, make_agent, make_experience):
  """Trains both ways; returns {what: largest difference}.

  Args:
    strategy: the 2-replica strategy.
    make_agent: builds the agent (called outside and inside the strategy).
    make_experience: (agent, step) -> the [8, T] batch of that train step.
  """
  # The same random draws whatever ran before in this process.
  tf.keras.utils.set_random_seed(0)
  single = make_agent()
  with strategy.scope():
    mirrored = make_agent()
  for source, target in zip(single.variables, mirrored.variables):
    target.assign(source)  # The same initial weights.
  share = GLOBAL_BATCH // strategy.num_replicas_in_sync

  @tf.function
  def train(per_replica):
    return strategy.run(mirrored.train, args=(per_replica,))

  differences = {}
  for step in range(2):
    experience = make_experience(single, step)
    expected = single.train(experience)

    def replica_part(context, experience=experience):
      start = context.replica_id_in_sync_group * share
      return tf.nest.map_structure(lambda x: x[start:start + share],
                                   experience)

    per_replica = strategy.experimental_distribute_values_from_function(
        replica_part)
    actual = strategy.reduce(tf.distribute.ReduceOp.SUM,
                             train(per_replica), axis=None)
    differences[f'loss {step}'] = difference(actual.loss, expected.loss)
    for name, value in expected.extra._asdict().items():
      differences[f'{name} {step}'] = difference(getattr(actual.extra, name),
                                                 value)
  for a, b in zip(single.variables, mirrored.variables):
    differences[a.name] = difference(b.numpy(), a.numpy())
  differences['train_step'] = float(
      mirrored.train_step_counter.numpy() - 2)
  return differences


def all_differences(strategy):
  """{'<agent>: <what>': largest difference} of the cube and pendulum agents."""
  differences = {}
  for name, make_agent, make_experience in (
      ('cube', test_agent.make_agent,
       lambda agent, step: test_agent.fabricated_experience(
           agent, batch=GLOBAL_BATCH, seed=step)),
      ('pendulum', pendulum_agent,
       lambda agent, step: test_agent.collected_experience(
           agent, batch=GLOBAL_BATCH))):
    differences.update({
        f'{name}: {what}': value for what, value in
        largest_differences(strategy, make_agent, make_experience).items()})
  return differences
