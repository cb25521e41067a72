"""Fixed inputs of the SMC search for bit-for-bit regression tests.

`tests/data/spo_search_golden.npz` holds the outputs of the plain SPO search
(before any TRT-SMC switch existed) on these inputs;
`tests/data/switches_search_golden.npz` those of every switch combination in
`SWITCHES` (discrete, on the cube) and `CONTINUOUS_SWITCHES` (on the
pendulum), written before `smc_search` was split into injected functions.
Regenerate them only on purpose: `python -m tests.support.golden_search`.
"""

import dataclasses
import os

import numpy as np
import tensorflow as tf

from environments import rubiks_cube
from tf_spo import action_spaces
from tf_spo import config as config_lib
from tf_spo import networks
from tf_spo import search

_TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOLDEN_PATH = os.path.join(_TESTS, 'data',
                           'spo_search_golden.npz')
SWITCHES_PATH = os.path.join(_TESTS, 'data',
                             'switches_search_golden.npz')
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


# SearchConfig overrides of CONFIG, one per switch combination. Twisting with
# every action as an atom, revived adaptive resampling and message passing
# run within 'every_switch' and have no case of their own: each case is an
# XLA compilation of several seconds.
SWITCHES = {
    'twisted_sampled_atoms': dict(proposal_alpha=0.3, proposal_atoms=5),
    'without_replacement': dict(policy_inference='message_passing',
                                root_sampling='without_replacement'),
    'every_switch': dict(proposal_alpha=0.3, revived_resampling=True,
                         ess_threshold=0.7, policy_inference='message_passing',
                         retrace_lambda=0.5),
}
CONTINUOUS_SWITCHES = {
    'plain': dict(),
    'every_switch': dict(proposal_alpha=0.2, proposal_atoms=6,
                         revived_resampling=True, ess_threshold=0.7,
                         resample_period=1, policy_inference='message_passing'),
}


def _discrete_with_q(config):
  cube, observation, _ = inputs()
  rng = np.random.default_rng(1)
  w_logits, w_value, w_q = (
      tf.constant(scale * rng.normal(size=shape), tf.float32)
      for scale, shape in ((0.3, [324, 18]), (0.1, [324]), (0.1, [324, 18])))

  def network_fn(obs):
    x = tf.reshape(tf.one_hot(obs, 6), [-1, 324])
    return networks.NetworkOutput(tf.matmul(x, w_logits),
                                  tf.linalg.matvec(x, w_value),
                                  tf.matmul(x, w_q))

  compiled = tf.function(
      lambda obs, seed: search.smc_search(obs, cube, network_fn, ETA, config,
                                          seed, add_root_noise=True),
      jit_compile=True)
  return compiled(observation, tf.constant([5, 7], tf.int32))


def _continuous(config):
  from environments import pendulum  # pylint: disable=g-import-not-at-top
  model = pendulum.Pendulum(time_limit=8)
  # Episodes end within the search's depth (revival has work to do).
  state = dict(model.reset(3, tf.constant([2, 3])),
               steps=tf.constant([3, 4, 6]))
  rng = np.random.default_rng(2)
  w_policy, w_value, w_q = (
      tf.constant(scale * rng.normal(size=shape), tf.float32)
      for scale, shape in ((0.5, [3, 2]), (1.0, [3]), (1.0, [4])))

  def network_fn(x):
    loc, raw_scale = tf.split(tf.matmul(x, w_policy), 2, axis=-1)
    params = action_spaces.GaussianParams(loc, tf.nn.softplus(raw_scale))
    return networks.NetworkOutput(params, tf.linalg.matvec(x, w_value), x)

  def q_fn(q, actions):
    features = tf.broadcast_to(q[:, None], tf.concat(
        [tf.shape(actions)[:2], tf.shape(q)[1:]], 0))
    return tf.linalg.matvec(tf.concat([features, actions], -1), w_q)

  compiled = tf.function(
      lambda obs, seed: search.smc_search(obs, model, network_fn, ETA, config,
                                          seed, q_fn=q_fn),
      jit_compile=True)
  return compiled(model.observe(state), tf.constant([5, 7], tf.int32))


def switches_outputs():
  """Every output of every switch combination, keyed `<case>/<field>/<i>`."""
  result = {}
  cases = [(f'discrete_{name}', _discrete_with_q, CONFIG, overrides)
           for name, overrides in SWITCHES.items()]
  cases += [(f'continuous_{name}', _continuous,
             config_lib.SearchConfig(num_particles=8, depth=5,
                                     resample_period=2), overrides)
            for name, overrides in CONTINUOUS_SWITCHES.items()]
  for name, run_fn, base, overrides in cases:
    out = run_fn(dataclasses.replace(base, **overrides))
    for field, value in out._asdict().items():
      if field == 'policy_target':  # q-hat itself in these cases.
        continue
      for i, leaf in enumerate(tf.nest.flatten(value)):
        if leaf is not None:
          result[f'{name}/{field}/{i}'] = leaf.numpy()
  return result


if __name__ == '__main__':
  np.savez(GOLDEN_PATH, **outputs())
  print(f'wrote {GOLDEN_PATH}')
  np.savez(SWITCHES_PATH, **switches_outputs())
  print(f'wrote {SWITCHES_PATH}')
