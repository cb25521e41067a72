r"""Benchmarks the SMC search on a registry task against its network calls.

Times the SMC search (`tf_spo/search.py`, XLA-compiled for pure-TF models)
with a randomly initialised `PolicyValueNetwork`, and the same network
evaluations alone (one call on the B roots and `depth` calls on the B * N
particles, compiled the same way). Their ratio is the search's overhead over
the network evaluations it needs: the model, sampling, weighting and
resampling. It also times the search's model steps alone (the model's
step throughput at the search's batch of B * N particles). Timed calls of the
three alternate so that background load affects them alike, and medians are
reported. For a MuJoCo task it also reports the
planning model's particle-steps/s against raw `mujoco.rollout` on the same
states and actions, with 1 and 2 threads (`simulator_benchmark`).

  python -m launch.benchmark                  # the Rubik's Cube
  python -m launch.benchmark --env=pendulum   # continuous actions
  python -m launch.benchmark --env=ant --batch_size=16  # the simulator
  python -m launch.benchmark --batch_size=256 --num_particles=32 \
      --depth=8 --resample_period=4 --output=/tmp/benchmark.json

With `--mode=train` it times steady-state iterations of `launch.train`'s
loop instead (`train_benchmark`): collect, gradient steps and the rest, and
the ratio to the iteration's FLOP ideal at a matmul peak measured in the
same run.

  python -m launch.benchmark --mode=train             # the cube's cpu preset
  python -m launch.benchmark --mode=train --env=snake
  python -m launch.benchmark --mode=train --algorithm=ppo  # the PPO baseline
"""


import json
from typing import Any, Dict

from absl import flags
from absl import logging

from environments import registry
from launch import cli
from tf_spo import experiment
from tf_spo.experiment import benchmarks

FLAGS = flags.FLAGS


def run():
  """Defines the flags and runs `main`."""
  flags.DEFINE_enum('mode', 'search', ['search', 'train'],
                    'search: the SMC search against its network evaluations '
                    '(and, for MuJoCo, the simulator against '
                    'mujoco.rollout); train: steady-state iterations of '
                    "launch.train's loop with the --env and --preset "
                    'settings (the search and network flags do not apply).')
  flags.DEFINE_enum('preset', 'cpu', list(experiment.PRESETS),
                    '--mode=train: preset of the timed run.')
  flags.DEFINE_enum('algorithm', 'spo', list(experiment.ALGORITHMS),
                    '--mode=train: algorithm of the timed run.')
  flags.DEFINE_enum('env', 'rubiks_cube', sorted(registry.ENVS),
                    'Task of the registry (its default model).')
  flags.DEFINE_integer('batch_size', 64, 'B, root states per search.')
  flags.DEFINE_integer('num_particles', 16, 'N, particles per root.')
  flags.DEFINE_integer('depth', 4, 'Planning steps per search.')
  flags.DEFINE_integer('resample_period', 4,
                       'Resample every this many steps, in [1, depth].')
  flags.DEFINE_integer('torso_units', 256, 'Width of the network torso.')
  flags.DEFINE_integer('num_residual_blocks', 2,
                       'Residual blocks of the network torso.')
  flags.DEFINE_integer('head_units', 256, 'Width of the network heads.')
  flags.DEFINE_integer('repeats', 20, 'Timed calls of each function.')
  flags.DEFINE_integer('warmup', 3, 'Untimed calls of each function first.')
  flags.DEFINE_integer('seed', 0,
                       'Seed of the network, root states and searches.')
  flags.DEFINE_string('output', '', 'Optional JSON file for the results.')
  cli.run(main)


def main(argv):
  """Runs the benchmark with the flags' settings and prints the result."""
  del argv
  logging.set_verbosity(logging.WARNING)
  if FLAGS.mode == 'train':
    with cli.flag_errors():
      result = benchmarks.train_benchmark(
          FLAGS.env, FLAGS.preset, FLAGS.repeats, FLAGS.warmup,
          overrides={'algorithm': FLAGS.algorithm})
    print(benchmarks.format_train_table(result))
  else:
    result = search_mode()
  print(json.dumps(result, indent=2))
  if FLAGS.output:
    with open(FLAGS.output, 'w') as f:
      json.dump(result, f, indent=2)


def search_mode() -> Dict[str, Any]:
  """Runs `benchmark` with the flags' settings and prints its table."""
  settings = dict(
      batch_size=FLAGS.batch_size, num_particles=FLAGS.num_particles,
      depth=FLAGS.depth, resample_period=FLAGS.resample_period,
      torso_units=FLAGS.torso_units,
      num_residual_blocks=FLAGS.num_residual_blocks,
      head_units=FLAGS.head_units, repeats=FLAGS.repeats, warmup=FLAGS.warmup)
  with cli.flag_errors():
    result = benchmarks.benchmark(seed=FLAGS.seed, env=FLAGS.env, **settings)
  print(benchmarks.format_table(result))
  return result


if __name__ == '__main__':
  run()
