"""Fixed inputs of the SPO search for bit-for-bit regression tests.

`tests/data/spo_search_golden.npz` holds the outputs of the plain SPO search
(before any TRT-SMC switch existed) on these inputs; regenerate it only on
purpose: `python -m tests.golden_search`.
"""

import os

import numpy as np
import tensorflow as tf

from environments import rubiks_cube
from tf_spo import config as config_lib
from tf_spo import networks
from tf_spo import search

GOLDEN_PATH = os.path.join(os.path.dirname(__file__), 'data',
                           'spo_search_golden.npz')
CONFIG = config_lib.SearchConfig(num_particles=8, depth=6, resample_period=2)
ETA = 0.3


def inputs():
  """Cube observations [4, 6, 3, 3] and a fixed linear network function."""
  cube = rubiks_cube.RubiksCube(3, 7)
  observation = cube.observe(cube.reset(4, tf.constant([11, 0])))
  rng = np.random.default_rng(0)
  w_logits = tf.constant(0.3 * rng.normal(size=[324, 18]), tf.float32)
  w_value = tf.constant(0.1 * rng.normal(size=[324]), tf.float32)

  def network_fn(obs):
    x = tf.reshape(tf.one_hot(obs, 6), [-1, 324])
    return networks.NetworkOutput(tf.matmul(x, w_logits),
                                  tf.linalg.matvec(x, w_value))

  return cube, observation, network_fn


def run(config=CONFIG, add_root_noise=False):
  cube, observation, network_fn = inputs()
  compiled = tf.function(
      lambda obs, seed: search.smc_search(obs, cube, network_fn, ETA, config,
                                          seed, add_root_noise=add_root_noise),
      jit_compile=True)
  return compiled(observation, tf.constant([5, 7], tf.int32))


def outputs(config=CONFIG):
  """The SPO outputs compared bit for bit, keyed `<noise>/<golden key>`.

  The golden keys are the output field names of when the file was written:
  `root_actions` and `particle_weights` are now the Dirac q-hat's `atoms`
  and `atom_weights`.
  """
  fields = {'action_weights': 'action_weights', 'root_actions': 'atoms',
            'particle_weights': 'atom_weights', 'value': 'value',
            'eta_advantages': 'eta_advantages', 'ess': 'ess',
            'weight_entropy': 'weight_entropy'}
  result = {}
  for noise in (False, True):
    out = run(config, add_root_noise=noise)
    for key, field in fields.items():
      result[f'{noise}/{key}'] = getattr(out, field).numpy()
  return result


if __name__ == '__main__':
  np.savez(GOLDEN_PATH, **outputs())
  print(f'wrote {GOLDEN_PATH}')
