r"""Evaluates a trained SPO policy: solve rate by scramble depth.

Loads either a training checkpoint (`--root_dir`, rebuilt from the run's
`config.json`) or an exported SavedModel (`--saved_model`), and plays
`--num_episodes` held-out cubes at each scramble depth 1..`--max_scramble`.

  python -m launch.evaluate --root_dir=runs/cube
  python -m launch.evaluate --saved_model=runs/cube/policy --max_scramble=10
"""

import json
import time
from typing import Any, Dict

from absl import app
from absl import flags
import tensorflow as tf

from environments import rubiks_cube
from launch import common

FLAGS = flags.FLAGS


def evaluate_by_depth(policy: Any, max_scramble: int, num_episodes: int,
                      seed: int, time_limit: int) -> Dict[int, Dict[str, float]]:
  """Solve rate of `policy` on cubes scrambled by exactly 1..max_scramble."""
  return {
      depth: common.evaluate_policy(
          policy,
          rubiks_cube.RubiksCube(depth, depth, time_limit=time_limit),
          num_episodes, seed)
      for depth in range(1, max_scramble + 1)
  }


def load_policy(root_dir: str, saved_model: str, policy_kind: str):
  """Loads the policy from a SavedModel or the latest checkpoint of a run."""
  if saved_model:
    return tf.saved_model.load(saved_model)
  run = common.restore_run(root_dir)
  return {'search': run.agent.policy,
          'network': run.agent.network_policy}[policy_kind]


def run():
  flags.DEFINE_string('root_dir', '', 'Run directory of launch.train to '
                      'restore the latest checkpoint from.')
  flags.DEFINE_string('saved_model', '', 'Exported SavedModel directory '
                      '(instead of --root_dir).')
  flags.DEFINE_enum('policy', 'search', ['search', 'network'],
                    'With --root_dir: evaluate the SMC search policy or the '
                    'bare network policy.')
  flags.DEFINE_integer('max_scramble', 7, 'Evaluate scramble depths '
                       '1..max_scramble.')
  flags.DEFINE_integer('num_episodes', 100, 'Cubes per scramble depth.')
  flags.DEFINE_integer('time_limit', 20, 'Episode step limit.')
  flags.DEFINE_integer('seed', 12345, 'Seed of the held-out cubes.')
  flags.DEFINE_string('output', '', 'Optional JSON file for the results.')
  app.run(main)


def main(argv):
  del argv
  if bool(FLAGS.root_dir) == bool(FLAGS.saved_model):
    raise app.UsageError('Pass exactly one of --root_dir and --saved_model.')
  for name in ('max_scramble', 'num_episodes', 'time_limit'):
    if FLAGS[name].value < 1:
      raise app.UsageError(f'--{name} must be >= 1, got {FLAGS[name].value}.')
  policy = load_policy(FLAGS.root_dir, FLAGS.saved_model, FLAGS.policy)
  start = time.time()
  results = evaluate_by_depth(policy, FLAGS.max_scramble, FLAGS.num_episodes,
                              FLAGS.seed, FLAGS.time_limit)
  print(f'{"scramble":>8} {"solve_rate":>10} {"mean_length":>11}')
  for depth, result in results.items():
    print(f'{depth:>8} {result["solve_rate"]:>10.3f} '
          f'{result["mean_length"]:>11.2f}')
  print(f'evaluated in {time.time() - start:.1f}s')
  if FLAGS.output:
    with open(FLAGS.output, 'w') as f:
      json.dump({str(k): v for k, v in results.items()}, f, indent=2)


if __name__ == '__main__':
  run()
