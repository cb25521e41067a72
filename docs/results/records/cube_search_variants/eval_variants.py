"""Exploration: the greedy SMC search's variants on one trained cube network.

Kept as a record of docs/limits.md's cube figures, not part of the library.

Restores a run and plays the same N held-out 7-move cubes (seed 12345, as
`launch.scaling --level=7`) with the run's greedy SMC search at 64 model
steps per action changed one setting at a time (resample period, ESS-adaptive
resampling, particles x depth, revived resampling, the temperature eta
scaled, systematic instead of multinomial resampling), and Gumbel MuZero 64
for reference; prints each one's solve rate.

  python docs/results/records/cube_search_variants/eval_variants.py \
      RUN_DIR N
"""
import dataclasses
import sys

import tensorflow as tf

from tf_spo import experiment
from tf_spo import policy as policy_lib
from tf_spo import search as search_lib
from tf_spo.experiment import algorithms
from tf_spo.experiment import builders
from tf_spo.experiment import evaluation

SEED = 12345

# name: (SearchConfig changes, eta scale, systematic resampling)
VARIANTS = {
    '16x4, resampled every 2 steps (the preset)': ({}, 1.0, False),
    'resampled every step': (dict(resample_period=1), 1.0, False),
    'never resampled': (dict(resample_period=4), 1.0, False),
    'every step where ESS < N/2': (
        dict(resample_period=1, ess_threshold=0.5), 1.0, False),
    'every 2 steps where ESS < N/2': (dict(ess_threshold=0.5), 1.0, False),
    'revived resampling': (dict(revived_resampling=True), 1.0, False),
    '21x3, every step': (
        dict(num_particles=21, depth=3, resample_period=1), 1.0, False),
    '21x3, never': (
        dict(num_particles=21, depth=3, resample_period=3), 1.0, False),
    'eta x 0.1': ({}, 0.1, False),
    'eta x 2': ({}, 2.0, False),
    'eta x 4': ({}, 4.0, False),
    'systematic resampling': ({}, 1.0, True),
    'systematic, every step': (dict(resample_period=1), 1.0, True),
}


def systematic_resample(log_weights, particles, seed, roots=None):
  """`search.resample` with one uniform draw per root (systematic)."""
  n = log_weights.shape[1]
  cumulative = tf.math.cumsum(tf.nn.softmax(log_weights, axis=-1), axis=-1)
  start = tf.random.stateless_uniform([tf.shape(log_weights)[0], 1], seed)
  points = (start + tf.range(n, dtype=tf.float32)[None]) / n
  ancestors = tf.minimum(tf.reduce_sum(tf.cast(
      cumulative[:, None, :] < points[:, :, None], tf.int32), -1), n - 1)
  if roots is not None:
    ancestors = tf.where(roots[:, None], ancestors, tf.range(n)[None])
  offsets = tf.range(tf.shape(log_weights)[0], dtype=tf.int32)[:, None]
  flat = tf.reshape(ancestors + offsets * n, [-1])
  return tf.nest.map_structure(lambda x: tf.gather(x, flat), particles)


def main(run_dir, num_episodes):
  """Prints each variant's solve rate on the same held-out cubes."""
  run = experiment.restore_run(run_dir)
  settings = dict(run.settings, eval_scramble=7)
  model = builders.make_model(settings, evaluation=True)
  agent = run.agent
  base = algorithms.search_config(dict(settings, algorithm='spo'))
  base = dataclasses.replace(base, num_particles=16, depth=4,
                             resample_period=2)
  print(run_dir, 'env_steps', int(run.env_steps.numpy()),
        'eta', round(float(agent.eta), 4), flush=True)
  multinomial = search_lib.resample
  for name, (changes, eta_scale, systematic) in VARIANTS.items():
    search_lib.resample = (systematic_resample if systematic
                           else multinomial)
    policy = policy_lib.search_policy(
        agent.time_step_spec, agent.action_spec, agent.network, run.model,
        dataclasses.replace(base, **changes), agent.eta * eta_scale,
        greedy=True, seed=SEED)
    scores = evaluation.evaluate_policy(policy, model, num_episodes, SEED)
    print(f"{scores['solve_rate']:.4f}  {name}", flush=True)
  search_lib.resample = multinomial
  gumbel = algorithms.search_config(dict(
      settings, algorithm='gumbel', num_simulations=64))
  policy = policy_lib.search_policy(
      agent.time_step_spec, agent.action_spec, agent.network, run.model,
      gumbel, agent.eta, greedy=True, seed=SEED)
  scores = evaluation.evaluate_policy(policy, model, num_episodes, SEED)
  print(f"{scores['solve_rate']:.4f}  Gumbel MuZero 64", flush=True)


if __name__ == '__main__':
  main(sys.argv[1], int(sys.argv[2]))
