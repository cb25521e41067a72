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

eval.csv keeps its columns for PPO, so that every reader (launch.report
reads search_<metric> by default) compares it with SPO: PPO has no search,
its greedy policy is evaluated once per evaluation and its scores fill both
the search_<metric> and the network_<metric> columns (they are equal).
summary.json says so in its `search` entry; only policy/network is exported.
"""

import json
import os
import time
from typing import Any, Callable, Dict, NamedTuple, Optional

from absl import app
from absl import flags
from absl import logging
import tensorflow as tf
from tf_agents.trajectories import trajectory
from tf_agents.utils import common as tfa_common

from environments import registry
from launch import common

FLAGS = flags.FLAGS


def define_flags() -> None:
  """Defines --root_dir, --preset and a flag per setting."""
  flags.DEFINE_string('root_dir', 'runs/cube', 'Directory of the run.')
  flags.DEFINE_enum('preset', 'cpu', list(common.PRESETS),
                    'Defaults to start from, per env: "cpu" finishes in '
                    'minutes on a laptop CPU, "cpu_30min" (the cube) '
                    'trains about 30 minutes on 2 cores to a higher solve '
                    'rate, "paper" is table 3 of the SPO '
                    'paper (discrete or continuous column), "trt_smc" adds '
                    'the TRT-SMC switches. Flags given explicitly override '
                    'the preset.')
  for name, default, help_text in common.SETTINGS:
    if isinstance(default, str):
      flags.DEFINE_string(name, default, help_text)
    elif isinstance(default, bool):
      flags.DEFINE_bool(name, default, help_text)
    elif isinstance(default, int):
      flags.DEFINE_integer(name, default, help_text)
    else:
      flags.DEFINE_float(name, default, help_text)


def settings_from_flags() -> Dict[str, Any]:
  """Flag values on top of the preset on top of the env's defaults."""
  explicit = {name: FLAGS[name].value for name in common.DEFAULTS
              if FLAGS[name].present}
  return common.resolve_settings(FLAGS.env, FLAGS.preset, explicit)


def eval_columns(settings) -> tuple:
  """Columns of eval.csv: the env's metrics for both policies."""
  return (('env_steps', 'wall_clock_s', 'train_steps') +
          tuple(f'{kind}_{metric}' for metric in common.metrics(settings)
                for kind in ('search', 'network')) +
          ('search_mean_length',))


class EvalLog:
  """Appends evaluation results to <root_dir>/eval.csv."""

  def __init__(self, root_dir, columns):
    self._path = os.path.join(root_dir, 'eval.csv')
    self._columns = columns
    if not tf.io.gfile.exists(self._path):
      with tf.io.gfile.GFile(self._path, 'w') as f:
        f.write(','.join(columns) + '\n')

  def drop_rows_after(self, env_steps: int) -> None:
    """Drops rows past `env_steps`: a resumed run evaluates them again."""
    with tf.io.gfile.GFile(self._path) as f:
      header, *rows = f.read().splitlines()
    kept = [row for row in rows if int(row.split(',')[0]) <= env_steps]
    if len(kept) < len(rows):
      with tf.io.gfile.GFile(self._path, 'w') as f:
        f.write('\n'.join([header] + kept) + '\n')

  def last_train_step(self) -> Optional[int]:
    """The train step of the last row; None before the first."""
    with tf.io.gfile.GFile(self._path) as f:
      header, *rows = f.read().splitlines()
    if not rows:
      return None
    return int(rows[-1].split(',')[header.split(',').index('train_steps')])

  def append(self, row: Dict[str, float]) -> None:
    with tf.io.gfile.GFile(self._path, 'a') as f:
      f.write(','.join(str(row[c]) if isinstance(row[c], int) else
                       f'{row[c]:.4f}' for c in self._columns) + '\n')


def _duration(seconds: float) -> str:
  """'1h02m', '12m05s' or '40s'."""
  seconds = round(seconds)
  if seconds >= 3600:
    return f'{seconds // 3600}h{seconds % 3600 // 60:02d}m'
  if seconds >= 60:
    return f'{seconds // 60}m{seconds % 60:02d}s'
  return f'{seconds}s'


def policy_scorer(agent, settings: Dict[str, Any]
                  ) -> Callable[[], Dict[str, float]]:
  """A function scoring the search and network policies on held-out episodes.

  Its evaluation model and episode loops are built once: a run that scores
  its policies every `--eval_interval` env steps traces each loop once. An
  agent without search (PPO), whose `policy` is its `network_policy`, plays
  once per call: its scores fill both the search_ and the network_ columns.

  Args:
    agent: the `SpoAgent` whose policies play (with their current weights).
    settings: settings of the held-out evaluation episodes (the run's own,
      or with a different level of the env's evaluation sweep).

  Returns:
    A function of no arguments returning {'search_<metric>',
    'network_<metric>', 'search_mean_length'}, over
    `settings['eval_episodes']` episodes.
  """
  model = common.make_model(settings, evaluation=True)
  seed = settings['seed'] + common.EVAL_SEED_OFFSET
  evaluators = {'search': common.Evaluator(agent.policy, model)}
  evaluators['network'] = (
      evaluators['search'] if agent.network_policy is agent.policy else
      common.Evaluator(agent.network_policy, model))

  def scores() -> Dict[str, float]:
    result = {}
    played = {}
    for kind, evaluator in evaluators.items():
      if id(evaluator) not in played:
        played[id(evaluator)] = evaluator(settings['eval_episodes'], seed)
      episodes = played[id(evaluator)]
      result.update({f'{kind}_{metric}': episodes[metric]
                     for metric in common.metrics(settings)})
      if kind == 'search':
        result['search_mean_length'] = episodes['mean_length']
    return result

  return scores


def evaluate(run: common.Run,
             scores: Callable[[], Dict[str, float]]) -> Dict[str, float]:
  """An eval.csv row: the run's counters and `scores()` of its policies."""
  return {
      'env_steps': int(run.env_steps.numpy()),
      'wall_clock_s': float(run.wall_clock.numpy()),
      'train_steps': int(run.agent.train_step_counter.numpy()),
      **scores(),
  }


def level_scores(run: common.Run,
                 final: Dict[str, float]) -> Dict[str, Any]:
  """Both policies' metrics at the env's summary levels.

  For the cube: the solve rates at 3 and 7 scramble moves. A level equal to
  the run's own evaluation episodes reuses `final`, the last evaluation.

  Args:
    run: the run whose policies play.
    final: the run's last `evaluate` result.

  Returns:
    {'by_<sweep setting>': {'<level>': {'search_<metric>', ...}}}, empty for
    an env without summary levels.
  """
  entry = registry.entry(run.settings['env'])
  if not entry.summary_levels:
    return {}
  by_level = {}
  for level in entry.summary_levels:
    if level == run.settings[entry.eval_sweep]:
      scores = {column: final[column]
                for column in eval_columns(run.settings)[3:]}
    else:
      scores = policy_scorer(
          run.agent, dict(run.settings, **{entry.eval_sweep: level}))()
    by_level[str(level)] = scores
  return {f'by_{entry.eval_sweep}': by_level}


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
  `collect()` (None: `--num_epochs`).
  """
  collect: Callable[[], None]
  train_step: Callable[[], Any]
  ready_to_train: Callable[[], bool]
  train_steps_per_iteration: Optional[int] = None


def make_collect(run: common.Run, act: Callable[[Any], Any],
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


def make_loop(run: common.Run) -> Loop:
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


def make_ppo_loop(run: common.Run) -> Loop:
  """The on-policy loop of `--algorithm=ppo`.

  `collect()` steps every environment `rollout_length` times with the PPO
  collect policy (continuous actions clipped into the bounds for the
  environment, kept unclipped in the trajectories) into the replay buffer,
  which holds exactly one rollout (`common.replay_length`); then one
  `train_step()` (`train_steps_per_iteration` = 1) gives that whole
  rollout, [num_envs, rollout_length] in time order, to `agent.train`,
  which takes its `num_epochs` gradient steps, and returns its `LossInfo`.
  The next `collect()` overwrites the rollout. Runs on the default strategy
  only (`common.validate_settings`).
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
    settings: run settings (see `common.SETTINGS`).
    root_dir: run directory; an existing compatible run is resumed.
    stop_after_env_steps: for tests, return (without final evaluation or
      export) once this many environment steps are done, as if killed.
    strategy: the `common.make_strategy(settings)` made before TensorFlow
      started; made here by default.

  Returns:
    The result summary (also written to <root_dir>/summary.json).
  """
  strategy = strategy or common.make_strategy(settings)
  common.validate_settings(settings)
  common.write_settings(root_dir, settings)
  run = common.build_run(settings, root_dir, strategy)
  agent = run.agent
  loop = make_loop(run)
  eval_log = EvalLog(root_dir, eval_columns(settings))
  writer = tf.summary.create_file_writer(os.path.join(root_dir, 'train'))
  writer.set_as_default()

  evaluations = []
  score_policies = policy_scorer(agent, settings)

  def log_eval():
    result = evaluate(run, score_policies)
    evaluations.append(result)
    eval_log.append(result)
    scores = {column: result[column] for column in eval_columns(settings)[3:]}
    with writer.as_default(step=result['env_steps']):
      for column, value in scores.items():
        tf.summary.scalar(f'eval/{column}', value)
    print(f"[eval] env_steps={result['env_steps']} "
          f"wall_clock={result['wall_clock_s']:.0f}s " +
          ' '.join(f'{column}={value:.3f}' for column, value in
                   scores.items()), flush=True)
    return result

  common.record_provenance(
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
  paths = common.export_policies(run.agent, run.model,
                                 os.path.join(root_dir, 'policy'))
  summary = {
      'env': settings['env'],
      'algorithm': settings['algorithm'],
      'env_steps': final['env_steps'],
      'train_steps': final['train_steps'],
      'wall_clock_s': round(final['wall_clock_s'], 1),
      'eval_episodes': settings['eval_episodes'],
      **{column: final[column] for column in eval_columns(settings)[3:]},
      'checkpoint': run.checkpointer.manager.latest_checkpoint,
      'saved_models': paths,
  }
  if run.agent.policy is run.agent.network_policy:
    summary['search'] = (
        f'none: --algorithm={settings["algorithm"]} has no search; the '
        'search_* scores are its greedy policy, the same as network_*')
  summary.update({name: settings[name]
                  for name in common.eval_settings(settings)})
  summary.update(level_scores(run, final))
  with tf.io.gfile.GFile(os.path.join(root_dir, 'summary.json'), 'w') as f:
    json.dump(summary, f, indent=2)
  print('[summary] ' + json.dumps(summary, indent=2), flush=True)
  return summary


def main(argv):
  """Trains with the settings of the flags."""
  del argv
  logging.set_verbosity(logging.WARNING)
  try:
    settings = settings_from_flags()
    # First: a mirrored strategy on the CPU configures its logical devices
    # before TensorFlow starts.
    strategy = common.make_strategy(settings)
    common.validate_settings(settings)
  except ValueError as error:
    raise app.UsageError(common.flag_wording(error)) from error
  train(settings, FLAGS.root_dir, strategy=strategy)


def run():
  """Defines the flags and runs `main`."""
  define_flags()
  app.run(main)


if __name__ == '__main__':
  run()
