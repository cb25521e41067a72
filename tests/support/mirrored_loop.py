"""launch.train's loop on 2 replicas, and its train step against one replica's.

`mirrored_run(strategy, root_dir)` trains the tiny cube run of
tests/conftest.py, cut at 512 env steps, with `strategy=mirrored,
num_replicas=2` in ROOT_DIR/mirrored, then restores its final checkpoint
twice, once on the default strategy and once (from a copy) on the 2-replica
strategy, takes two more train steps of each run's loop on the same replay
buffer, and returns

  {'summary': the run's summary,
   'differences': {what: largest difference of the losses and of every
                   variable, relative where the value exceeds 1},
   'parts': what `experiment.loops.replica_part` gives each replica of
            [0, ..., 7]}
"""

import os
import shutil

import tensorflow as tf

from tests.conftest import tiny_settings
from tests.support import mirrored_training
from tf_spo import experiment


def mirrored_run(strategy, root_dir):
  """Trains on `strategy` and steps both ways; see the module docstring."""
  single_settings = tiny_settings(total_env_steps=512)
  settings = dict(single_settings, strategy='mirrored', num_replicas=2)
  mirrored_dir = os.path.join(root_dir, 'mirrored')
  summary = experiment.train(settings, mirrored_dir, strategy=strategy)
  copy_dir = os.path.join(root_dir, 'copy')
  shutil.copytree(mirrored_dir, copy_dir)
  single = experiment.build_run(single_settings, mirrored_dir)
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
  return {'summary': summary,
          'differences': differences,
          'parts': [part.numpy().tolist()
                    for part in strategy.experimental_local_results(parts)]}
