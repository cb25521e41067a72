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

import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional

from absl import app
from absl import flags
from absl import logging
import reverb
import tensorflow as tf
from tf_agents.experimental.distributed import reverb_variable_container
from tf_agents.policies import py_tf_eager_policy
from tf_agents.specs import tensor_spec
from tf_agents.train import actor as actor_lib
from tf_agents.train import learner as learner_lib
from tf_agents.train import triggers
from tf_agents.train.utils import train_utils
from tf_agents.utils import common as tfa_common

from environments import registry
from launch import common
from launch import train as train_lib
from tf_spo import reverb_replay

FLAGS = flags.FLAGS
ROLES = ('all', 'replay_server', 'actor', 'learner', 'evaluator')
LEARNER_SUBDIR = 'learner'
REVERB_SUBDIR = 'reverb'
LOG_SUBDIR = 'logs'
# How often the launcher of --role=all looks at its processes.
_POLL_SECONDS = 1.0


def define_flags() -> None:
  """The training flags of launch.train and the distributed ones."""
  train_lib.define_flags()
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


class Schedule:
  """The single-process loop's schedule, in learner train steps.

  An iteration of `launch.train` collects `num_envs * rollout_length` env
  steps and takes `num_epochs` gradient steps; the distributed run keeps
  that ratio (the replay table's rate limiter enforces it), so an env-step
  setting maps to train steps.
  """

  def __init__(self, settings: Dict[str, Any]):
    self.steps_per_iteration = settings['num_envs'] * settings['rollout_length']
    self.num_epochs = settings['num_epochs']
    self.samples_per_insert = (self.num_epochs * settings['batch_size'] /
                               self.steps_per_iteration)

  def train_steps(self, env_steps: int) -> int:
    """Train steps of the single-process loop after `env_steps` env steps."""
    return max(env_steps // self.steps_per_iteration, 1) * self.num_epochs

  def env_steps(self, train_steps: int) -> int:
    return train_steps // self.num_epochs * self.steps_per_iteration


def specs(settings: Dict[str, Any], model) -> tuple:
  """Time step and action tensor specs of the task's real environment."""
  env = registry.entry(settings['env']).make_py_env(model, 1, settings['seed'])
  time_step_spec = tensor_spec.from_spec(env.time_step_spec())
  action_spec = tensor_spec.from_spec(env.action_spec())
  env.close()
  return time_step_spec, action_spec


def actor_seed(settings: Dict[str, Any], actor_id: int) -> int:
  """Seed of actor `actor_id`: distinct for every actor and run seed."""
  return settings['seed'] * 1000 + actor_id + 1


class _Parts:
  """The model, an agent and the variables every role shares."""

  def __init__(self, settings: Dict[str, Any], seed: Optional[int] = None,
               strategy: Optional[tf.distribute.Strategy] = None):
    self.model = common.make_model(settings)
    self.time_step_spec, self.action_spec = specs(settings, self.model)
    self.strategy = strategy or tf.distribute.get_strategy()
    with self.strategy.scope():
      self.train_step = train_utils.create_train_step()
      self.agent = common.make_agent(
          settings, self.model, self.time_step_spec, self.action_spec,
          seed=seed, train_step_counter=self.train_step)
    self.variables = {
        reverb_variable_container.POLICY_KEY:
            self.agent.collect_policy.variables(),
        reverb_variable_container.TRAIN_STEP_KEY: self.train_step}


def replay_server(settings: Dict[str, Any], root_dir: str, port: int,
                  envs_per_item: int) -> None:
  """Serves the replay tables until killed; restores them on restart."""
  parts = _Parts(settings)
  tables = reverb_replay.tables(
      parts.agent.collect_data_spec, parts.variables,
      sequence_length=settings['sequence_length'],
      envs_per_item=envs_per_item,
      capacity=max(settings['replay_capacity'] // envs_per_item, 1),
      samples_per_insert=Schedule(settings).samples_per_insert,
      min_size_to_sample=max(settings['batch_size'] // envs_per_item, 1))
  checkpointer = reverb.checkpointers.DefaultCheckpointer(
      os.path.join(root_dir, REVERB_SUBDIR))
  server = reverb.Server(tables, port=port, checkpointer=checkpointer)
  print(f'[replay_server] serving on port {server.port}', flush=True)
  server.wait()


def _wait_for_server(address: str, timeout_s: float = 300.0
                     ) -> reverb.Client:
  """A client of the server at `address`, once it answers."""
  client = reverb.Client(address)
  deadline = time.time() + timeout_s
  while True:
    try:
      client.server_info(timeout=5)
      return client
    except (reverb.errors.DeadlineExceededError, RuntimeError) as error:
      if time.time() > deadline:
        raise ValueError(f'--replay_server_address {address}: no replay '
                         f'server answered within {timeout_s:.0f} s.'
                         ) from error


def actor(settings: Dict[str, Any], address: str, actor_id: int,
          envs_per_item: int) -> None:
  """Collects with the search policy until the learner is done."""
  seed = actor_seed(settings, actor_id)
  parts = _Parts(settings, seed=seed)
  client = _wait_for_server(address)
  env = registry.entry(settings['env']).make_py_env(
      parts.model, settings['num_envs'], seed)
  container = reverb_variable_container.ReverbVariableContainer(
      address, table_names=[reverb_replay.VARIABLE_TABLE])
  observer = reverb_replay.SequenceObserver(
      client, reverb_replay.EXPERIENCE_TABLE, settings['sequence_length'],
      settings['num_envs'], envs_per_item=envs_per_item)
  policy = py_tf_eager_policy.PyTFEagerPolicy(
      parts.agent.collect_policy, use_tf_function=True,
      batch_time_steps=False)
  schedule = Schedule(settings)
  collector = actor_lib.Actor(
      env, policy, parts.train_step,
      steps_per_run=schedule.steps_per_iteration, observers=[observer])
  total = schedule.train_steps(settings['total_env_steps'])
  container.update(parts.variables)
  print(f'[actor {actor_id}] collecting, seed {seed}', flush=True)
  while int(parts.train_step.numpy()) < total:
    collector.run()
    observer.flush()
    container.update(parts.variables)
  observer.close()
  print(f'[actor {actor_id}] done at train step '
        f'{int(parts.train_step.numpy())}', flush=True)


def collected_env_steps(client: reverb.Client, envs_per_item: int) -> int:
  """Env steps the actors have written: `envs_per_item` per item.

  A stream's first `sequence_length - 1` steps complete no window, so this
  undercounts by that much per actor environment.
  """
  info = client.server_info()[reverb_replay.EXPERIENCE_TABLE]
  return int(info.rate_limiter_info.insert_stats.completed) * envs_per_item


def learner(settings: Dict[str, Any], root_dir: str, address: str,
            envs_per_item: int,
            strategy: Optional[tf.distribute.Strategy] = None
            ) -> Dict[str, Any]:
  """Trains on the replay server's data; exports and summarises at the end.

  Under a `tf.distribute` strategy of R replicas (--strategy), each replica
  reads batches of `batch_size / R` sequences and the update is that of the
  global batch, as in `launch.train`.
  """
  parts = _Parts(settings, strategy=strategy)
  agent, schedule = parts.agent, Schedule(settings)
  replica_batch = (settings['batch_size'] //
                   parts.strategy.num_replicas_in_sync)
  client = _wait_for_server(address)

  def collected():
    return collected_env_steps(client, envs_per_item)

  container = reverb_variable_container.ReverbVariableContainer(
      address, table_names=[reverb_replay.VARIABLE_TABLE])
  checkpoint_steps = schedule.train_steps(settings['checkpoint_interval'])
  train_learner = learner_lib.Learner(
      os.path.join(root_dir, LEARNER_SUBDIR), parts.train_step, agent,
      experience_dataset_fn=lambda: reverb_replay.experience_dataset(
          agent.collect_data_spec, address, replica_batch,
          settings['sequence_length'], envs_per_item),
      strategy=parts.strategy,
      # The learner starts every trigger at its train step, so the replay
      # is checkpointed at the same steps as the learner.
      triggers=[triggers.ReverbCheckpointTrigger(
                    parts.train_step, checkpoint_steps, client),
                triggers.StepPerSecondLogTrigger(
                    parts.train_step,
                    interval=schedule.train_steps(settings['log_interval']))],
      checkpoint_interval=checkpoint_steps,
      summary_interval=schedule.train_steps(settings['log_interval']))
  total = schedule.train_steps(settings['total_env_steps'])
  step = int(parts.train_step.numpy())
  replicas = parts.strategy.num_replicas_in_sync
  print(f'[learner] {"resumed" if step else "starting"} at train step '
        f'{step} of {total} on {replicas} '
        f'{"replica" if replicas == 1 else "replicas"}', flush=True)
  container.push(parts.variables)
  start = last_log = time.time()
  first_inserted = last_inserted = collected()
  while step < total:
    loss_info = train_learner.run(iterations=schedule.num_epochs)
    container.push(parts.variables)
    step = int(parts.train_step.numpy())
    if time.time() - last_log > 10 or step >= total:
      now, inserted = time.time(), collected()
      rate = (inserted - last_inserted) / (now - last_log)
      last_log, last_inserted = now, inserted
      print(f'[learner] train_steps={step}/{total} '
            f'collected_env_steps={inserted} env_steps/s={rate:.0f} '
            f'loss={float(loss_info.loss):.4f} '
            f'policy_loss={float(loss_info.extra.policy_loss):.4f} '
            f'value_loss={float(loss_info.extra.value_loss):.4f} '
            f'eta={float(loss_info.extra.eta):.3f}', flush=True)
  # The learner's own checkpoint trigger fires on its interval only; the
  # final state is saved in its checkpoint directory too.
  final_checkpointer = tfa_common.Checkpointer(
      os.path.join(root_dir, LEARNER_SUBDIR, learner_lib.TRAIN_DIR,
                   learner_lib.POLICY_CHECKPOINT_DIR),
      agent=agent, train_step=parts.train_step)
  final_checkpointer.save(parts.train_step)
  client.checkpoint()
  paths = common.export_policies(agent, parts.model,
                                 os.path.join(root_dir, 'policy'))
  summary = {'env': settings['env'], 'train_steps': step,
             'env_steps_equivalent': schedule.env_steps(step),
             'learner_wall_clock_s': round(time.time() - start, 1),
             'collected_env_steps': collected(),
             'env_steps_per_s': round(
                 (collected() - first_inserted) /
                 (time.time() - start), 1),
             'checkpoint': final_checkpointer.manager.latest_checkpoint,
             'saved_models': paths}
  with tf.io.gfile.GFile(os.path.join(root_dir, 'summary.json'), 'w') as f:
    json.dump(summary, f, indent=2)
  print('[summary] ' + json.dumps(summary), flush=True)
  return summary


def evaluator(settings: Dict[str, Any], root_dir: str, address: str) -> None:
  """Evaluates the newest weights every `eval_interval` env steps' worth.

  Rows of <root_dir>/eval.csv carry the train step, its env-step
  equivalent in the single-process loop and the seconds since this
  evaluator process started; a restarted evaluator goes on after its last
  row.
  """
  parts = _Parts(settings)
  schedule = Schedule(settings)
  _wait_for_server(address)
  container = reverb_variable_container.ReverbVariableContainer(
      address, table_names=[reverb_replay.VARIABLE_TABLE])
  eval_log = train_lib.EvalLog(root_dir, train_lib.eval_columns(settings))
  every = schedule.train_steps(settings['eval_interval'])
  total = schedule.train_steps(settings['total_env_steps'])
  done = eval_log.last_train_step()
  start = time.time()
  score_policies = train_lib.policy_scorer(parts.agent, settings)
  while done is None or done < total:
    container.update(parts.variables)
    step = int(parts.train_step.numpy())
    due = (done is None or step // every > done // every or
           (step >= total and done < total))
    if not due:
      time.sleep(_POLL_SECONDS)
      continue
    result = {'env_steps': schedule.env_steps(step),
              'wall_clock_s': time.time() - start, 'train_steps': step,
              **score_policies()}
    eval_log.append(result)
    print('[evaluator] ' + ' '.join(
        f'{column}={result[column]:.3f}' if isinstance(result[column], float)
        else f'{column}={result[column]}'
        for column in train_lib.eval_columns(settings)), flush=True)
    done = step


def _free_port() -> int:
  with socket.socket() as probe:
    probe.bind(('localhost', 0))
    return probe.getsockname()[1]


_LAUNCHER_FLAGS = ('--role', '--replay_server_address', '--replay_port',
                   '--num_actors', '--actor_id')
# A role that fails more often than this stops the run: it is a bug or a bad
# config, not a transient failure.
_MAX_RESTARTS = 5


class _Process:
  """A role's subprocess with its log file, restartable."""

  def __init__(self, name: str, command: List[str], log_path: str):
    self.name, self.command, self.log_path = name, command, log_path
    self.restarts = 0
    self.popen = None

  def start(self) -> None:
    with open(self.log_path, 'ab') as log:
      self.popen = subprocess.Popen(self.command, stdout=log,
                                    stderr=subprocess.STDOUT)

  def stop(self) -> None:
    if self.popen is not None and self.popen.poll() is None:
      self.popen.send_signal(signal.SIGTERM)
      try:
        self.popen.wait(timeout=30)
      except subprocess.TimeoutExpired:
        self.popen.kill()
        self.popen.wait()


def launch_all(root_dir: str, num_actors: int, port: int,
               argv: List[str]) -> None:
  """Runs every role in its own process until the learner is done.

  An actor, the replay server, the evaluator or the learner that fails
  (a non-zero exit code, e.g. killed by a signal) before the learner is
  done is started again (the server restores its
  tables, the learner its checkpoint). Process ids are kept in
  <root_dir>/logs/pids.json and each role's output in <root_dir>/logs/.
  """
  port = port or _free_port()
  address = f'localhost:{port}'
  passed = [arg for arg in argv
            if arg.split('=')[0] not in _LAUNCHER_FLAGS]
  base = [sys.executable, '-m', 'launch.distributed', *passed,
          f'--replay_server_address={address}', f'--replay_port={port}']
  log_dir = os.path.join(root_dir, LOG_SUBDIR)
  tf.io.gfile.makedirs(log_dir)
  roles = [('replay_server', ['--role=replay_server']),
           ('learner', ['--role=learner']),
           ('evaluator', ['--role=evaluator'])] + [
               (f'actor_{k}', ['--role=actor', f'--actor_id={k}'])
               for k in range(num_actors)]
  processes = {name: _Process(name, base + extra,
                              os.path.join(log_dir, f'{name}.log'))
               for name, extra in roles}

  def write_pids():
    with open(os.path.join(log_dir, 'pids.json'), 'w') as f:
      json.dump({name: process.popen.pid
                 for name, process in processes.items()}, f)

  for process in processes.values():
    process.start()
  write_pids()
  print(f'[distributed] replay server at {address}, {num_actors} actors, '
        f'logs in {log_dir}', flush=True)
  learner_process = processes['learner']
  try:
    while True:
      time.sleep(_POLL_SECONDS)
      if learner_process.popen.poll() == 0:
        break
      for process in processes.values():
        code = process.popen.poll()
        # Exit code 0: an actor or the evaluator saw the final weights.
        if code is None or code == 0:
          continue
        if process.restarts >= _MAX_RESTARTS:
          raise RuntimeError(
              f'{process.name} exited with code {code} '
              f'{_MAX_RESTARTS + 1} times; see {process.log_path}')
        process.restarts += 1
        print(f'[distributed] {process.name} exited with code {code}; '
              f'restarting it', flush=True)
        process.start()
        write_pids()
    # The evaluator ends by itself after evaluating the final weights.
    evaluator_process = processes['evaluator']
    deadline = time.time() + 600
    while evaluator_process.popen.poll() is None and time.time() < deadline:
      time.sleep(_POLL_SECONDS)
  finally:
    for name, process in processes.items():
      if name != 'replay_server':
        process.stop()
    processes['replay_server'].stop()
  with open(os.path.join(root_dir, 'summary.json')) as f:
    print('[distributed] done: ' + f.read(), flush=True)


def main(argv):
  """Runs --role with the settings of the flags."""
  del argv
  logging.set_verbosity(logging.WARNING)
  try:
    settings = train_lib.settings_from_flags()
    # The learner trains on --strategy (made before TensorFlow starts); the
    # other parts ignore it.
    strategy = (common.make_strategy(settings) if FLAGS.role == 'learner'
                else None)
    common.validate_settings(settings)
    if settings['algorithm'] == 'ppo':
      raise ValueError('--algorithm=ppo trains on-policy, on one rollout at '
                       'a time: run it with launch.train (launch.distributed '
                       'replays sequences off-policy).')
    if FLAGS.role == 'all' and FLAGS.num_actors < 1:
      raise ValueError(f'--num_actors must be >= 1, got {FLAGS.num_actors}.')
    if FLAGS.actor_id < 0:
      raise ValueError(f'--actor_id must be >= 0, got {FLAGS.actor_id}.')
    envs_per_item = FLAGS.envs_per_item or math.gcd(
        8, settings['num_envs'],
        settings['batch_size'] // settings['num_replicas'])
    for name in ('num_envs', 'batch_size'):
      if envs_per_item < 1 or settings[name] % envs_per_item:
        raise ValueError(f'--envs_per_item must be a positive divisor of '
                         f'--{name}={settings[name]}, got {envs_per_item}.')
    replica_batch = settings['batch_size'] // settings['num_replicas']
    if replica_batch % envs_per_item:
      raise ValueError(
          f"--envs_per_item must divide each replica's batch, --batch_size / "
          f'--num_replicas = {replica_batch}, got {envs_per_item}.')
  except ValueError as error:
    raise app.UsageError(common.flag_wording(error)) from error
  address = FLAGS.replay_server_address or f'localhost:{FLAGS.replay_port}'
  if FLAGS.role != 'replay_server' and FLAGS.role != 'all' and not (
      FLAGS.replay_server_address or FLAGS.replay_port):
    raise app.UsageError(f'--role={FLAGS.role} needs '
                         '--replay_server_address=HOST:PORT.')
  root_dir = FLAGS.root_dir
  if FLAGS.role == 'all':
    common.write_settings(root_dir, settings)
    launch_all(root_dir, FLAGS.num_actors, FLAGS.replay_port, sys.argv[1:])
  elif FLAGS.role == 'replay_server':
    if not FLAGS.replay_port:
      raise app.UsageError('--role=replay_server needs --replay_port.')
    replay_server(settings, root_dir, FLAGS.replay_port, envs_per_item)
  elif FLAGS.role == 'actor':
    actor(settings, address, FLAGS.actor_id, envs_per_item)
  elif FLAGS.role == 'learner':
    common.write_settings(root_dir, settings)
    learner(settings, root_dir, address, envs_per_item, strategy)
  else:
    evaluator(settings, root_dir, address)


def run():
  """Defines the flags and runs `main`."""
  define_flags()
  app.run(main)


if __name__ == '__main__':
  run()
