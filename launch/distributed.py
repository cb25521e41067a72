r"""Reverb actor-learner training: replay server, actors, learner, evaluator.

One command starts every role on one machine, as processes of their own, and
restarts an actor, the replay server or the learner that dies:

  python -m launch.distributed --env=rubiks_cube --num_actors=2 \
      --root_dir=runs/cube_dist

The same entry point runs each role by itself, e.g. on separate hosts:

  python -m launch.distributed --role=replay_server --root_dir=R \
      --replay_port=8000
  python -m launch.distributed --role=learner --root_dir=R \
      --replay_server_address=HOST:8000
  python -m launch.distributed --role=actor --actor_id=0 --root_dir=R \
      --replay_server_address=HOST:8000
  python -m launch.distributed --role=evaluator --root_dir=R \
      --replay_server_address=HOST:8000

Roles:
- replay_server: a Reverb server with the experience table (uniform
  sampling, oldest removed first, a sample-to-insert rate limiter at the
  single-process loop's ratio) and the weights table. Its tables are
  checkpointed to <root_dir>/reverb and restored when it restarts.
- actor K: `tf_agents.train.Actor` running the collect search policy on a
  batched `PyEnvironment` of the task (seed `seed * 1000 + K + 1` for both
  the environments and the search), writing windows of `sequence_length`
  steps of `--envs_per_item` environments each with
  `reverb_replay.SequenceObserver`; fresh weights come from a
  `ReverbVariableContainer` before every run of `rollout_length` steps.
- learner: `tf_agents.train.Learner` on the Reverb dataset, `num_epochs`
  gradient steps per run, then pushes its weights. Checkpoints (agent,
  optimizers, duals, train step) every `checkpoint_interval` env steps'
  worth of train steps, together with the replay tables; a restarted
  learner resumes from its checkpoint. It stops after the single-process
  loop's number of train steps for `total_env_steps`, then exports the
  policies to <root_dir>/policy and writes <root_dir>/summary.json.
- evaluator: pulls the weights and evaluates both policies every
  `eval_interval` env steps' worth of train steps into <root_dir>/eval.csv.
"""

import sys
from typing import Callable, List

from absl import app
from absl import flags
from absl import logging

from launch import cli
from tf_spo import experiment
from tf_spo.experiment import distributed

FLAGS = flags.FLAGS
ROLES = ('all', 'replay_server', 'actor', 'learner', 'evaluator')


def define_flags() -> None:
  """The training flags of launch.train and the distributed ones."""
  cli.define_setting_flags()
  flags.DEFINE_enum('role', 'all', ROLES, 'Which part to run; "all" starts '
                    'every part on this machine and restarts a dead one.')
  flags.DEFINE_integer('num_actors', 2, '--role=all: actor processes.')
  flags.DEFINE_integer('actor_id', 0, "--role=actor: this actor's index; "
                       'it seeds its environments and search.')
  flags.DEFINE_string('replay_server_address', '', 'HOST:PORT of the replay '
                      'server (default localhost:--replay_port).')
  flags.DEFINE_integer('replay_port', 0, 'Port of the replay server; 0 picks '
                       'a free one (--role=all only).')
  flags.DEFINE_integer('envs_per_item', 0, 'Environments per Reverb item and '
                       'stream (a divisor of --num_envs and --batch_size; '
                       'the same for every part); 0: gcd(8, num_envs, '
                       'batch_size / num_replicas).')



_LAUNCHER_FLAGS = ('--role', '--replay_server_address', '--replay_port',
                   '--num_actors', '--actor_id')


def role_command(argv: List[str]) -> Callable[[str, int, str, int], List[str]]:
  """This command's flags, less the launcher's, as each role's process."""
  passed = [arg for arg in argv if arg.split('=')[0] not in _LAUNCHER_FLAGS]

  def command(role: str, actor_id: int, address: str, port: int) -> List[str]:
    return [sys.executable, '-m', 'launch.distributed', *passed,
            f'--replay_server_address={address}', f'--replay_port={port}',
            f'--role={role}'] + (
                [f'--actor_id={actor_id}'] if role == 'actor' else [])

  return command


def main(argv):
  """Runs --role with the settings of the flags."""
  del argv
  logging.set_verbosity(logging.WARNING)
  with cli.flag_errors():
    settings = cli.settings_from_flags()
    # The learner trains on --strategy (made before TensorFlow starts); the
    # other parts ignore it.
    strategy = (experiment.make_strategy(settings) if FLAGS.role == 'learner'
                else None)
    experiment.validate_settings(settings)
    if not experiment.ALGORITHMS[settings['algorithm']].off_policy:
      raise ValueError(f"--algorithm={settings['algorithm']} trains "
                       'on-policy, on one rollout at a time: run it with '
                       'launch.train (launch.distributed replays sequences '
                       'off-policy).')
    if FLAGS.role == 'all' and FLAGS.num_actors < 1:
      raise ValueError(f'--num_actors must be >= 1, got {FLAGS.num_actors}.')
    if FLAGS.actor_id < 0:
      raise ValueError(f'--actor_id must be >= 0, got {FLAGS.actor_id}.')
    envs_per_item = distributed.envs_per_item(settings, FLAGS.envs_per_item)
  address = FLAGS.replay_server_address or f'localhost:{FLAGS.replay_port}'
  if FLAGS.role != 'replay_server' and FLAGS.role != 'all' and not (
      FLAGS.replay_server_address or FLAGS.replay_port):
    raise app.UsageError(f'--role={FLAGS.role} needs '
                         '--replay_server_address=HOST:PORT.')
  root_dir = FLAGS.root_dir
  if FLAGS.role == 'all':
    experiment.write_settings(root_dir, settings)
    distributed.run_roles(root_dir, FLAGS.num_actors, FLAGS.replay_port,
                          role_command(sys.argv[1:]))
  elif FLAGS.role == 'replay_server':
    if not FLAGS.replay_port:
      raise app.UsageError('--role=replay_server needs --replay_port.')
    distributed.replay_server(settings, root_dir, FLAGS.replay_port,
                              envs_per_item)
  elif FLAGS.role == 'actor':
    distributed.actor(settings, address, FLAGS.actor_id, envs_per_item)
  elif FLAGS.role == 'learner':
    experiment.write_settings(root_dir, settings)
    distributed.learner(settings, root_dir, address, envs_per_item, strategy)
  else:
    distributed.evaluator(settings, root_dir, address)


def run():
  """Defines the flags and runs `main`."""
  define_flags()
  cli.run(main)


if __name__ == '__main__':
  run()
