"""The roles of a Reverb actor-learner run, on TF-Agents' Actor and Learner.

`replay_server` serves the experience and weights tables (checkpointed to
<root_dir>/reverb, restored on restart); `actor` runs the collect search
policy with `tf_agents.train.Actor` into `reverb_replay.SequenceObserver`;
`learner` trains with `tf_agents.train.Learner` on the Reverb dataset,
checkpoints with TF-Agents' triggers, then exports and writes summary.json;
`evaluator` scores the newest weights into eval.csv. Each is a function of
the run's settings, to run in a process of its own (`launch.distributed`
starts and supervises them). Needs the `distributed` extra (dm-reverb).
"""

import json
import math
import os
import signal
import socket
import subprocess
import time
from typing import Any, Callable, Dict, List, Optional

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
from tf_spo import reverb_replay
from tf_spo.experiment import algorithms
from tf_spo.experiment import builders
from tf_spo.experiment import evaluation
from tf_spo.experiment import export
from tf_spo.experiment import run as run_lib
from tf_spo.experiment import training

LEARNER_SUBDIR = 'learner'
REVERB_SUBDIR = 'reverb'
LOG_SUBDIR = 'logs'
# How often the evaluator looks for new weights, and `run_roles` at its
# processes.
POLL_SECONDS = 1.0


def envs_per_item(settings: Dict[str, Any], requested: int = 0) -> int:
  """Environments per Reverb item and stream, checked against the batch.

  Args:
    settings: run settings.
    requested: the choice; 0 picks gcd(8, num_envs, batch_size /
      num_replicas).

  Raises:
    ValueError: naming envs_per_item unless it divides num_envs, batch_size
      and each replica's batch.
  """
  chosen = requested or math.gcd(
      8, settings['num_envs'],
      settings['batch_size'] // settings['num_replicas'])
  for name in ('num_envs', 'batch_size'):
    if chosen < 1 or settings[name] % chosen:
      raise ValueError(f'envs_per_item must be a positive divisor of '
                       f'{name}={settings[name]}, got {chosen}.')
  replica_batch = settings['batch_size'] // settings['num_replicas']
  if replica_batch % chosen:
    raise ValueError(
        f"envs_per_item must divide each replica's batch, batch_size / "
        f'num_replicas = {replica_batch}, got {chosen}.')
  return chosen


class Schedule:
  """The single-process loop's schedule, in learner train steps.

  An iteration of `training.train` collects `num_envs * rollout_length` env
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


class RoleParts:
  """The model, an agent and the variables every role shares."""

  def __init__(self, settings: Dict[str, Any], seed: Optional[int] = None,
               strategy: Optional[tf.distribute.Strategy] = None):
    self.model = builders.make_model(settings)
    self.time_step_spec, self.action_spec = specs(settings, self.model)
    self.strategy = strategy or tf.distribute.get_strategy()
    with self.strategy.scope():
      self.train_step = train_utils.create_train_step()
      self.agent = algorithms.make_agent(
          settings, self.model, self.time_step_spec, self.action_spec,
          seed=seed, train_step_counter=self.train_step)
    self.variables = {
        reverb_variable_container.POLICY_KEY:
            self.agent.collect_policy.variables(),
        reverb_variable_container.TRAIN_STEP_KEY: self.train_step}



def make_replay_server(settings: Dict[str, Any], root_dir: str,
                       port: Optional[int], envs_per_item: int
                       ) -> reverb.Server:
  """A Reverb server of the replay tables, restored from `root_dir`'s.

  Args:
    settings: the run's settings.
    root_dir: the run's directory; the tables are checkpointed under it.
    port: the port to serve on; None picks a free one (`server.port`).
    envs_per_item: envs per replay item (`envs_per_item`).
  """
  parts = RoleParts(settings)
  tables = reverb_replay.tables(
      parts.agent.collect_data_spec, parts.variables,
      sequence_length=settings['sequence_length'],
      envs_per_item=envs_per_item,
      capacity=max(settings['replay_capacity'] // envs_per_item, 1),
      samples_per_insert=Schedule(settings).samples_per_insert,
      min_size_to_sample=max(settings['batch_size'] // envs_per_item, 1))
  checkpointer = reverb.checkpointers.DefaultCheckpointer(
      os.path.join(root_dir, REVERB_SUBDIR))
  return reverb.Server(tables, port=port, checkpointer=checkpointer)


def replay_server(settings: Dict[str, Any], root_dir: str, port: int,
                  envs_per_item: int) -> None:
  """Serves the replay tables until killed; restores them on restart."""
  server = make_replay_server(settings, root_dir, port, envs_per_item)
  print(f'[replay_server] serving on port {server.port}', flush=True)
  server.wait()


def wait_for_server(address: str, timeout_s: float = 300.0
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
        raise ValueError(f'replay_server_address={address}: no replay '
                         f'server answered within {timeout_s:.0f} s.'
                         ) from error


def actor(settings: Dict[str, Any], address: str, actor_id: int,
          envs_per_item: int) -> None:
  """Collects with the search policy until the learner is done."""
  seed = actor_seed(settings, actor_id)
  parts = RoleParts(settings, seed=seed)
  client = wait_for_server(address)
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
  """Trains on the replay server's data; exports, scores and summarises.

  Under a `tf.distribute` strategy of R replicas (the `strategy` setting),
  each replica reads batches of `batch_size / R` sequences and the update is
  that of the global batch, as in `training.train`. It holds the run
  directory's writer lock (`run.locked`): a second learner on `root_dir`
  raises `RunInUseError`.
  """
  with run_lib.locked(root_dir):
    return _learner(settings, root_dir, address, envs_per_item, strategy)


def _learner(settings: Dict[str, Any], root_dir: str, address: str,
             envs_per_item: int,
             strategy: Optional[tf.distribute.Strategy]) -> Dict[str, Any]:
  parts = RoleParts(settings, strategy=strategy)
  agent, schedule = parts.agent, Schedule(settings)
  replica_batch = (settings['batch_size'] //
                   parts.strategy.num_replicas_in_sync)
  client = wait_for_server(address)

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
            f'{algorithms.get(settings).progress(agent, loss_info)}',
            flush=True)
  # The learner's own checkpoint trigger fires on its interval only; the
  # final state is saved in its checkpoint directory too.
  final_checkpointer = tfa_common.Checkpointer(
      os.path.join(root_dir, LEARNER_SUBDIR, learner_lib.TRAIN_DIR,
                   learner_lib.POLICY_CHECKPOINT_DIR),
      agent=agent, train_step=parts.train_step)
  final_checkpointer.save(parts.train_step)
  client.checkpoint()
  wall_clock = time.time() - start
  collection = {'collected_env_steps': collected(),
                'env_steps_per_s': round(
                    (collected() - first_inserted) / wall_clock, 1)}
  paths = export.export_policies(agent, parts.model,
                                 os.path.join(root_dir, 'policy'),
                                 settings['env'])
  # The final weights' scores, as `training.train` ends with.
  final = {'env_steps': schedule.env_steps(step), 'wall_clock_s': wall_clock,
           'train_steps': step,
           **evaluation.policy_scorer(agent, settings)()}
  return training.write_summary(
      root_dir, settings, agent, final,
      final_checkpointer.manager.latest_checkpoint, paths,
      extra={'distributed': collection})


def evaluator(settings: Dict[str, Any], root_dir: str, address: str) -> None:
  """Evaluates the newest weights every `eval_interval` env steps' worth.

  Rows of <root_dir>/eval.csv carry the train step, its env-step
  equivalent in the single-process loop and the seconds since this
  evaluator process started; a restarted evaluator goes on after its last
  row. It holds the lock of eval.csv (`run.locked`): a second evaluator on
  `root_dir` raises `RunInUseError`.
  """
  with run_lib.locked(root_dir, run_lib.EVAL_LOCK_FILE):
    _evaluator(settings, root_dir, address)


def _evaluator(settings: Dict[str, Any], root_dir: str, address: str) -> None:
  parts = RoleParts(settings)
  schedule = Schedule(settings)
  wait_for_server(address)
  container = reverb_variable_container.ReverbVariableContainer(
      address, table_names=[reverb_replay.VARIABLE_TABLE])
  eval_log = evaluation.EvalLog(root_dir, evaluation.eval_columns(settings))
  every = schedule.train_steps(settings['eval_interval'])
  total = schedule.train_steps(settings['total_env_steps'])
  done = eval_log.last_train_step()
  start = time.time()
  score_policies = evaluation.policy_scorer(parts.agent, settings)
  while done is None or done < total:
    container.update(parts.variables)
    step = int(parts.train_step.numpy())
    due = (done is None or step // every > done // every or
           (step >= total and done < total))
    if not due:
      time.sleep(POLL_SECONDS)
      continue
    result = {'env_steps': schedule.env_steps(step),
              'wall_clock_s': time.time() - start, 'train_steps': step,
              **score_policies()}
    eval_log.append(result)
    print('[evaluator] ' + ' '.join(
        f'{column}={result[column]:.3f}' if isinstance(result[column], float)
        else f'{column}={result[column]}'
        for column in evaluation.eval_columns(settings)), flush=True)
    done = step


def free_port() -> int:
  """A free TCP port of this host."""
  with socket.socket() as probe:
    probe.bind(('localhost', 0))
    return probe.getsockname()[1]


# A role that fails more often than this stops the run: it is a bug or a bad
# config, not a transient failure.
MAX_RESTARTS = 5


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


def run_roles(root_dir: str, num_actors: int, port: int,
              role_command: Callable[[str, int, str, int], List[str]]
              ) -> None:
  """Runs every role in its own process until the learner is done.

  An actor, the replay server, the evaluator or the learner that fails
  (a non-zero exit code, e.g. killed by a signal) before the learner is
  done is started again (the server restores its tables, the learner its
  checkpoint), up to `MAX_RESTARTS` times. Process ids are kept in
  <root_dir>/logs/pids.json and each role's output in <root_dir>/logs/.

  Args:
    root_dir: the run directory.
    num_actors: actor processes.
    port: the replay server's port; 0 picks a free one.
    role_command: (role, actor_id, replay server address, port) -> the
      command line of the process running that role.
  """
  port = port or free_port()
  address = f'localhost:{port}'
  log_dir = os.path.join(root_dir, LOG_SUBDIR)
  tf.io.gfile.makedirs(log_dir)
  roles = [('replay_server', 'replay_server', 0), ('learner', 'learner', 0),
           ('evaluator', 'evaluator', 0)] + [
               (f'actor_{k}', 'actor', k) for k in range(num_actors)]
  processes = {name: _Process(name, role_command(role, k, address, port),
                              os.path.join(log_dir, f'{name}.log'))
               for name, role, k in roles}

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
      time.sleep(POLL_SECONDS)
      if learner_process.popen.poll() == 0:
        break
      for process in processes.values():
        code = process.popen.poll()
        # Exit code 0: an actor or the evaluator saw the final weights.
        if code is None or code == 0:
          continue
        if process.restarts >= MAX_RESTARTS:
          raise RuntimeError(
              f'{process.name} exited with code {code} '
              f'{MAX_RESTARTS + 1} times; see {process.log_path}')
        process.restarts += 1
        print(f'[distributed] {process.name} exited with code {code}; '
              f'restarting it', flush=True)
        process.start()
        write_pids()
    # The evaluator ends by itself after evaluating the final weights.
    evaluator_process = processes['evaluator']
    deadline = time.time() + 600
    while evaluator_process.popen.poll() is None and time.time() < deadline:
      time.sleep(POLL_SECONDS)
  finally:
    for name, process in processes.items():
      if name != 'replay_server':
        process.stop()
    processes['replay_server'].stop()
  with open(os.path.join(root_dir, 'summary.json')) as f:
    print('[distributed] done: ' + f.read(), flush=True)
