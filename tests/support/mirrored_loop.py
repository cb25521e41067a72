"""launch.train on 2 replicas, and its train step against one replica's.

Run as `python -m tests.support.mirrored_loop ROOT_DIR` (a process of its
own: the two logical CPU devices are configured by `experiment.make_strategy`
before TensorFlow starts). Trains the tiny cube run of tests/conftest.py with
`--strategy=mirrored --num_replicas=2` in ROOT_DIR/mirrored, then restores
its final checkpoint twice, once on the default strategy and once (from a
copy) on the 2-replica strategy, takes two more train steps of each run's
loop on the same replay buffer, and prints as JSON:

  {'summary': the run's summary.json,
   'differences': {what: largest difference of the losses and of every
                   variable, relative where the value exceeds 1},
   'parts': what `experiment.loops.replica_part` gives each replica of
            [0, ..., 7]}
"""

import json
import os
import shutil
import sys

import tensorflow as tf

from tests.conftest import tiny_settings
from tests.support import mirrored_training
from tf_spo import experiment


def main(root_dir):
  settings = tiny_settings(strategy='mirrored', num_replicas=2)
  strategy = experiment.make_strategy(settings)
  mirrored_dir = os.path.join(root_dir, 'mirrored')
  summary = experiment.train(settings, mirrored_dir, strategy=strategy)
  copy_dir = os.path.join(root_dir, 'copy')
  shutil.copytree(mirrored_dir, copy_dir)
  single = experiment.build_run(tiny_settings(), mirrored_dir)
  mirrored = experiment.build_run(settings, copy_dir, strategy)
  differences = {}
  for step in range(2):
    expected = experiment.make_loop(single).train_step()
    actual = experiment.make_loop(mirrored).train_step()
    differences[f'loss {step}'] = mirrored_training.difference(
        actual.loss, expected.loss)
    for name, value in expected.extra._asdict().items():
      differences[f'{name} {step}'] = mirrored_training.difference(
          getattr(actual.extra, name), value)
  for a, b in zip(single.agent.variables, mirrored.agent.variables):
    differences[a.name] = mirrored_training.difference(b.numpy(), a.numpy())
  parts = strategy.run(experiment.loops.replica_part, args=(tf.range(8),))
  print(json.dumps({
      'summary': summary,
      'differences': differences,
      'parts': [part.numpy().tolist()
                for part in strategy.experimental_local_results(parts)]}))


if __name__ == '__main__':
  main(sys.argv[1])
