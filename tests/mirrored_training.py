"""One agent trained on one replica and on two, on the same global batch.

Run as `python -m tests.mirrored_training` (a process of its own: the two
logical CPU devices must be configured before TensorFlow starts). Trains the
cube agent of tests/test_agent.py for two steps on a fabricated [8, 5] batch,
once without a strategy and once under a `MirroredStrategy` over 2 logical
CPUs with 4 sequences per replica, and prints as JSON the largest absolute
differences of the losses and of every variable.
"""

import json

import numpy as np
import tensorflow as tf

GLOBAL_BATCH = 8
NUM_REPLICAS = 2


def largest_differences():
  """Trains both ways; returns {what: largest absolute difference}."""
  # Imported here: their module-level models would start TF's devices.
  from tests import test_agent  # pylint: disable=g-import-not-at-top

  single = test_agent.make_agent()
  strategy = tf.distribute.MirroredStrategy(
      [f'/cpu:{i}' for i in range(NUM_REPLICAS)])
  with strategy.scope():
    mirrored = test_agent.make_agent()
  for source, target in zip(single.variables, mirrored.variables):
    target.assign(source)  # The same initial weights.
  share = GLOBAL_BATCH // NUM_REPLICAS

  @tf.function
  def train(per_replica):
    return strategy.run(mirrored.train, args=(per_replica,))

  differences = {}
  for step in range(2):
    experience = test_agent.fabricated_experience(single, batch=GLOBAL_BATCH,
                                                  seed=step)
    expected = single.train(experience)

    def replica_part(context, experience=experience):
      start = context.replica_id_in_sync_group * share
      return tf.nest.map_structure(lambda x: x[start:start + share],
                                   experience)

    per_replica = strategy.experimental_distribute_values_from_function(
        replica_part)
    actual = strategy.reduce(tf.distribute.ReduceOp.SUM,
                             train(per_replica), axis=None)
    differences[f'loss {step}'] = float(abs(actual.loss - expected.loss))
    for name, value in expected.extra._asdict().items():
      differences[f'{name} {step}'] = float(
          abs(getattr(actual.extra, name) - value))
  for a, b in zip(single.variables, mirrored.variables):
    differences[a.name] = float(np.max(np.abs(a.numpy() - b.numpy())))
  differences['train_step'] = float(
      mirrored.train_step_counter.numpy() - 2)
  return differences


def main():
  cpu = tf.config.list_physical_devices('CPU')[0]
  tf.config.set_logical_device_configuration(
      cpu, [tf.config.LogicalDeviceConfiguration()] * NUM_REPLICAS)
  print(json.dumps(largest_differences()))


if __name__ == '__main__':
  main()
