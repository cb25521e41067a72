r"""Trains SPO on a task of the registry (`--env`, default rubiks_cube).

Collects with the SMC search policy into a TF-Agents replay buffer, trains on
replayed sequences, evaluates the greedy search policy on held-out episodes,
checkpoints (a killed run resumes from its last checkpoint when started again
with the same --root_dir), and finally exports the search policy and the
network policy as SavedModels and writes a result summary.

  python -m launch.train --root_dir=runs/cube
  python -m launch.train --env=pendulum --root_dir=runs/pendulum
  python -m launch.train --root_dir=runs/paper --preset=paper

Outputs in --root_dir: config.json, checkpoints/, train/ (TensorBoard),
eval.csv (the env's metrics vs env steps and wall-clock), policy/search and
policy/network (SavedModels), summary.json.

With --algorithm=ppo it trains the PPO baseline instead (`tf_spo.ppo`,
TF-Agents' PPOClipAgent, no search), on-policy: an iteration collects
num_envs x rollout_length steps with the PPO collect policy into a buffer
that holds exactly that rollout, then trains once on it, in time order
([num_envs, rollout_length]; `num_epochs` full-batch epochs inside the
agent's `train`; the last step of each environment only bootstraps the
values), and the next rollout overwrites it. The replay settings
(replay_capacity, batch_size, sequence_length) and the search and SPO
settings do not apply.

  python -m launch.train --algorithm=ppo --root_dir=runs/cube_ppo

PPO has no search: eval.csv and summary.json hold only its network's
scores (`network_<metric>`, `network_mean_length`), and only policy/network
is exported. The library function is `tf_spo.experiment.train`.
"""

from absl import flags
from absl import logging

from launch import cli
from tf_spo import experiment

FLAGS = flags.FLAGS


def main(argv):
  """Trains with the settings of the flags."""
  del argv
  logging.set_verbosity(logging.WARNING)
  with cli.flag_errors():
    settings = cli.settings_from_flags()
    # First: a mirrored strategy on the CPU configures its logical devices
    # before TensorFlow starts.
    strategy = experiment.make_strategy(settings)
    experiment.validate_settings(settings)
  experiment.train(settings, FLAGS.root_dir, strategy=strategy)


def run():
  """Defines the flags and runs `main`."""
  cli.define_setting_flags()
  cli.run(main)


if __name__ == '__main__':
  run()
