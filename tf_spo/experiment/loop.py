"""The training loop of a run: collect, train, log, evaluate, checkpoint."""

import json
import os
import time
from typing import Any, Callable, Dict, NamedTuple, Optional

import tensorflow as tf
from tf_agents.trajectories import trajectory
from tf_agents.utils import common as tfa_common

from tf_spo.experiment import builders
from tf_spo.experiment import evaluation
from tf_spo.experiment import export
from tf_spo.experiment import run as run_lib


def _duration(seconds: float) -> str:
  """'1h02m', '12m05s' or '40s'."""
  seconds = round(seconds)
  if seconds >= 3600:
    return f'{seconds // 3600}h{seconds % 3600 // 60:02d}m'
  if seconds >= 60:
    return f'{seconds // 60}m{seconds % 60:02d}s'
  return f'{seconds}s'



def replica_part(nest):
  """This replica's share of the outer dimension of a nest of tensors.

  Called in a replica of a strategy with R replicas: replica r gets rows
  [r * n, (r + 1) * n) of every [R * n, ...] tensor (static shapes, as TPUs
  need); without a strategy, the nest itself.
  """
  context = tf.distribute.get_replica_context()
  replicas = context.num_replicas_in_sync
  if replicas == 1:
    return nest
  return tf.nest.map_structure(
      lambda x: tf.gather(tf.reshape(
          x, [replicas, x.shape[0] // replicas, *x.shape[1:]]),
                          context.replica_id_in_sync_group), nest)


class Loop(NamedTuple):
  """The compiled pieces of a training iteration (see `make_loop`).

  `train_steps_per_iteration` is how many `train_step()` calls follow a
  `collect()` (None: `num_epochs`).
  """
  collect: Callable[[], None]
  train_step: Callable[[], Any]
  ready_to_train: Callable[[], bool]
  train_steps_per_iteration: Optional[int] = None


def make_collect(run: run_lib.Run, act: Callable[[Any], Any],
                 env_action: Callable[[Any], Any] = lambda action: action
                 ) -> Callable[[], None]:
  """The compiled collection of a loop.

  Args:
    run: the run whose environments step into its replay buffer.
    act: time step -> the collect policy's `PolicyStep`.
    env_action: action -> the action the environment steps with (the
      trajectories keep the policy's).

  Returns:
    `collect()`: every environment steps `rollout_length` times into the
    buffer, and the env step counter advances.
  """
  env, replay_buffer = run.env, run.replay_buffer
  steps_per_iteration = run.settings['num_envs'] * run.settings[
      'rollout_length']

  @tf.function
  def collect():
    """Steps every environment `rollout_length` times into the buffer."""
    time_step = env.current_time_step()
    for _ in tf.range(run.settings['rollout_length']):
      action_step = act(time_step)
      next_time_step = env.step(env_action(action_step.action))
      replay_buffer.add_batch(trajectory.from_transition(
          time_step, action_step, next_time_step))
      time_step = next_time_step
    run.env_steps.assign_add(steps_per_iteration)

  return collect


def make_loop(run: run_lib.Run) -> Loop:
  """The collect and train functions of a run (`make_ppo_loop` for PPO).

  An iteration is `collect()` (every environment steps `rollout_length`
  times with the collect search policy, into the replay buffer), then, once
  `ready_to_train()`, `num_epochs` calls of `train_step()` (one gradient step
  on [batch_size, sequence_length] replayed sequences, returning its
  `LossInfo`).

  Under a strategy of R replicas (`run.strategy`), replica r searches for
  environments [r * num_envs / R, (r + 1) * num_envs / R) with its own random
  stream and trains on the same share of each replayed batch; the actions
  are gathered for the environment step, and the returned `LossInfo` is
  summed over the replicas (each replica's loss is its share of the global
  batch's).
  """
  if run.settings['algorithm'] == 'ppo':
    return make_ppo_loop(run)
  settings, agent = run.settings, run.agent
  replay_buffer, strategy = run.replay_buffer, run.strategy
  frames_needed = settings['num_envs'] * settings['sequence_length']

  def act(time_step):
    # (`Strategy.gather` takes one tensor: given a nest, it returns the
    # first replica's.)
    return tf.nest.map_structure(
        lambda x: strategy.gather(x, axis=0),
        strategy.run(lambda time_step: agent.collect_policy.action(
            replica_part(time_step)), args=(time_step,)))

  collect = make_collect(run, act)

  @tfa_common.function
  def train_step():
    """One gradient step on sequences replayed from the buffer."""
    experience = replay_buffer.sample_sequences(settings['batch_size'],
                                                settings['sequence_length'])
    return strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(
        lambda experience: agent.train(replica_part(experience)),
        args=(experience,)), axis=None)

  def ready_to_train():
    return bool(replay_buffer.num_frames() >= frames_needed)

  return Loop(collect, train_step, ready_to_train)


def make_ppo_loop(run: run_lib.Run) -> Loop:
  """The on-policy loop of `algorithm=ppo`.

  `collect()` steps every environment `rollout_length` times with the PPO
  collect policy (continuous actions clipped into the bounds for the
  environment, kept unclipped in the trajectories) into the replay buffer,
  which holds exactly one rollout (`builders.replay_length`); then one
  `train_step()` (`train_steps_per_iteration` = 1) gives that whole
  rollout, [num_envs, rollout_length] in time order, to `agent.train`,
  which takes its `num_epochs` gradient steps, and returns its `LossInfo`.
  The next `collect()` overwrites the rollout. Runs on the default strategy
  only (`settings.check_settings`).
  """
  settings, agent, env = run.settings, run.agent, run.env
  replay_buffer = run.replay_buffer
  rollout_length = settings['rollout_length']
  steps_per_iteration = settings['num_envs'] * rollout_length
  action_spec = env.action_spec()

  def env_action(action):
    if action_spec.dtype.is_floating:
      return tfa_common.clip_to_spec(action, action_spec)
    return action

  collect = make_collect(run, agent.collect_policy.action, env_action)

  @tfa_common.function
  def train_step():
    """`num_epochs` PPO gradient steps on the last rollout."""
    return agent.train(replay_buffer.newest_steps(rollout_length))

  def ready_to_train():
    return bool(replay_buffer.num_frames() >= steps_per_iteration)

  return Loop(collect, train_step, ready_to_train,
              train_steps_per_iteration=1)


class IterationTimes(NamedTuple):
  """What one `run_iteration` call did and how long its two halves took.

  `loss_info` is the last `LossInfo`, None while the buffer is still too
  small to train; `collect_s` and `train_s` are wall-clock seconds.
  """
  loss_info: Any
  collect_s: float
  train_s: float


def run_iteration(loop: Loop, num_epochs: int) -> IterationTimes:
  """Runs one training iteration and times its halves.

  Collects one rollout with the search, then takes `num_epochs` gradient
  steps once the buffer holds enough sequences (or the loop's
  `train_steps_per_iteration` train steps: one for PPO).
  """
  start = time.perf_counter()
  loop.collect()
  collected = time.perf_counter()
  loss_info = None
  if loop.ready_to_train():
    for _ in range(loop.train_steps_per_iteration or num_epochs):
      loss_info = loop.train_step()
  return IterationTimes(loss_info, collected - start,
                        time.perf_counter() - collected)


def progress_losses(agent, settings: Dict[str, Any], loss_info) -> str:
  """The losses of the progress line: SPO's, with its duals, or PPO's."""
  extra = loss_info.extra
  if settings['algorithm'] == 'ppo':
    return (f'loss={float(loss_info.loss):.4f} '
            f'policy_loss={float(extra.policy_gradient_loss):.4f} '
            f'value_loss={float(extra.value_estimation_loss):.4f} '
            f'entropy_loss={float(extra.entropy_regularization_loss):.4f} '
            f'clip_fraction={float(extra.clip_fraction):.3f}')
  return (f'loss={float(loss_info.loss):.4f} '
          f'policy_loss={float(extra.policy_loss):.4f} '
          f'value_loss={float(extra.value_loss):.4f} '
          f'eta={float(extra.eta):.3f} ' +
          ' '.join(f'{name}={float(value):.3f}' for name, value in
                   agent.alphas.items()) +
          f' kl={float(extra.kl):.5f}')


def train(settings: Dict[str, Any], root_dir: str,
          stop_after_env_steps: Optional[int] = None,
          strategy: Optional[tf.distribute.Strategy] = None
          ) -> Dict[str, Any]:
  """Trains (or resumes) the run in `root_dir` and returns its summary.

  Args:
    settings: run settings (see `settings.SETTINGS`).
    root_dir: run directory; an existing compatible run is resumed.
    stop_after_env_steps: for tests, return (without final evaluation or
      export) once this many environment steps are done, as if killed.
    strategy: the `builders.make_strategy(settings)` made before TensorFlow
      started; made here by default.

  Returns:
    The result summary (also written to <root_dir>/summary.json).
  """
  strategy = strategy or builders.make_strategy(settings)
  builders.validate_settings(settings)
  run_lib.write_settings(root_dir, settings)
  run = run_lib.build_run(settings, root_dir, strategy)
  agent = run.agent
  loop = make_loop(run)
  eval_log = evaluation.EvalLog(root_dir, evaluation.eval_columns(settings))
  writer = tf.summary.create_file_writer(os.path.join(root_dir, 'train'))
  writer.set_as_default()

  evaluations = []
  score_policies = evaluation.policy_scorer(agent, settings)

  def log_eval():
    result = evaluation.evaluate(run, score_policies)
    evaluations.append(result)
    eval_log.append(result)
    scores = {column: result[column]
              for column in evaluation.eval_columns(settings)[3:]}
    with writer.as_default(step=result['env_steps']):
      for column, value in scores.items():
        tf.summary.scalar(f'eval/{column}', value)
    print(f"[eval] env_steps={result['env_steps']} "
          f"wall_clock={result['wall_clock_s']:.0f}s " +
          ' '.join(f'{column}={value:.3f}' for column, value in
                   scores.items()), flush=True)
    return result

  run_lib.record_provenance(
      root_dir, int(run.env_steps.numpy())
      if run.checkpointer.checkpoint_exists else None)
  if run.checkpointer.checkpoint_exists:
    eval_log.drop_rows_after(int(run.env_steps.numpy()))
    print(f'[train] resumed from {run.checkpointer.manager.latest_checkpoint} '
          f'at env_steps={int(run.env_steps.numpy())}', flush=True)
  else:
    log_eval()

  total = settings['total_env_steps']
  last_log = time.time()
  last_log_steps = int(run.env_steps.numpy())
  loss_info = None
  while run.env_steps.numpy() < total:
    if (stop_after_env_steps is not None
        and run.env_steps.numpy() >= stop_after_env_steps):
      return {}
    before = int(run.env_steps.numpy())
    times = run_iteration(loop, settings['num_epochs'])
    if times.loss_info is not None:
      loss_info = times.loss_info
    run.wall_clock.assign_add(times.collect_s + times.train_s)
    after = int(run.env_steps.numpy())

    def crossed(interval, before=before, after=after):
      return after // interval > before // interval or after >= total

    if crossed(settings['log_interval']) and loss_info is not None:
      now = time.time()
      rate = (after - last_log_steps) / max(now - last_log, 1e-9)
      print(f'[train] env_steps={after}/{total} '
            f'train_steps={int(agent.train_step_counter.numpy())} '
            f'steps/s={rate:.0f} '
            f'{progress_losses(agent, settings, loss_info)} '
            f'time_left={_duration((total - after) / max(rate, 1e-9))}',
            flush=True)
      last_log, last_log_steps = now, after
    if crossed(settings['eval_interval']):
      log_eval()
    if crossed(settings['checkpoint_interval']):
      run.checkpointer.save(run.env_steps)

  final = evaluations[-1] if evaluations else log_eval()
  paths = export.export_policies(run.agent, run.model,
                                 os.path.join(root_dir, 'policy'))
  summary = {
      'env': settings['env'],
      'algorithm': settings['algorithm'],
      'env_steps': final['env_steps'],
      'train_steps': final['train_steps'],
      'wall_clock_s': round(final['wall_clock_s'], 1),
      'eval_episodes': settings['eval_episodes'],
      **{column: final[column]
         for column in evaluation.eval_columns(settings)[3:]},
      'checkpoint': run.checkpointer.manager.latest_checkpoint,
      'saved_models': paths,
  }
  if run.agent.policy is run.agent.network_policy:
    summary['search'] = (
        f'none: algorithm={settings["algorithm"]} has no search; the '
        'search_* scores are its greedy policy, the same as network_*')
  summary.update({name: settings[name]
                  for name in builders.eval_settings(settings)})
  summary.update(evaluation.level_scores(run, final))
  with tf.io.gfile.GFile(os.path.join(root_dir, 'summary.json'), 'w') as f:
    json.dump(summary, f, indent=2)
  print('[summary] ' + json.dumps(summary, indent=2), flush=True)
  return summary


