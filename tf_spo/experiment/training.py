"""Training a run: collect, train, log, evaluate, checkpoint, export.

`train(settings, root_dir)` trains (or resumes) the run in `root_dir` with
its algorithm's loop (`algorithms`), and writes eval.csv, TensorBoard logs,
checkpoints, the SavedModels and summary.json.
"""

import json
import os
import time
from typing import Any, Dict, Optional

import tensorflow as tf

from tf_spo import agent as agent_lib
from tf_spo.experiment import algorithms
from tf_spo.experiment import builders
from tf_spo.experiment import evaluation
from tf_spo.experiment import export
from tf_spo.experiment import loops
from tf_spo.experiment import run as run_lib


def _duration(seconds: float) -> str:
  """'1h02m', '12m05s' or '40s'."""
  seconds = round(seconds)
  if seconds >= 3600:
    return f'{seconds // 3600}h{seconds % 3600 // 60:02d}m'
  if seconds >= 60:
    return f'{seconds // 60}m{seconds % 60:02d}s'
  return f'{seconds}s'


class NonFiniteLossError(ValueError):
  """A part of the training loss became NaN or Inf."""


def non_finite_loss_error(error: tf.errors.InvalidArgumentError,
                          settings: Dict[str, Any], train_step: int
                          ) -> Optional[NonFiniteLossError]:
  """The `NonFiniteLossError` of an error of `SpoAgent.train`, or None.

  It names the part of the loss and the settings that usually cause it.
  """
  match = agent_lib.NON_FINITE_MESSAGE.search(error.message)
  if match is None:
    return None
  part, kind = match.groups()
  causes = ', '.join(f'{name}={settings[name]:g}' for name in (
      'learning_rate', 'dual_learning_rate', 'max_grad_norm'))
  return NonFiniteLossError(
      f'{part} became {kind} at train step {train_step}, usually from steps '
      f'too large: lower one of {causes} (in a new root_dir).')


def time_left(remaining_steps: int, steps_per_s: float, remaining_evals: int,
              eval_s: float) -> float:
  """Seconds to the end of a run: training at its rate, then its evaluations.

  Args:
    remaining_steps: env steps still to collect (< 0 counts as 0).
    steps_per_s: env steps per second of collecting and training alone.
    remaining_evals: evaluations still to run.
    eval_s: seconds of one evaluation.
  """
  return (max(remaining_steps, 0) / max(steps_per_s, 1e-9) +
          remaining_evals * eval_s)


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
  algorithms.validate_settings(settings)
  with run_lib.locked(root_dir):
    return _train(settings, root_dir, stop_after_env_steps, strategy)


def _train(settings: Dict[str, Any], root_dir: str,
           stop_after_env_steps: Optional[int],
           strategy: tf.distribute.Strategy) -> Dict[str, Any]:
  """`train` inside the run directory's lock."""
  run_lib.write_settings(root_dir, settings)
  run = run_lib.build_run(settings, root_dir, strategy)
  agent = run.agent
  algorithm = algorithms.get(settings)
  loop = algorithm.make_loop(run)
  eval_log = evaluation.EvalLog(root_dir, evaluation.eval_columns(settings))
  writer = tf.summary.create_file_writer(os.path.join(root_dir, 'train'))
  writer.set_as_default()

  evaluations = []
  score_policies = evaluation.policy_scorer(agent, settings)

  eval_seconds = []  # of the evaluations this process ran

  def log_eval():
    start = time.time()
    result = evaluation.evaluate(run, score_policies)
    eval_seconds.append(time.time() - start)
    evaluations.append(result)
    eval_log.append(result)
    scores = {column: result[column]
              for column in evaluation.eval_columns(settings)[
                  len(evaluation.COUNTERS):]}
    with writer.as_default(step=result['env_steps']):
      for column, value in scores.items():
        tf.summary.scalar(f'eval/{column}', value)
    print(f"[eval] env_steps={result['env_steps']} "
          f"wall_clock={result['wall_clock_s']:.0f}s " +
          ' '.join(f'{column}={value:.3f}' for column, value in
                   scores.items()), flush=True)
    return result

  other_jobs = run_lib.record_provenance(
      root_dir, int(run.env_steps.numpy())
      if run.checkpointer.checkpoint_exists else None)
  if run.checkpointer.checkpoint_exists:
    print(f'[train] resumed from {run.checkpointer.manager.latest_checkpoint} '
          f'at env_steps={int(run.env_steps.numpy())}', flush=True)
  # eval.csv holds one row per evaluated env step, as an uninterrupted run
  # writes them: rows past the checkpoint are evaluated again, the row at it
  # (the last one of a finished run run again, or step 0 of a run killed
  # before its first checkpoint) is kept.
  eval_log.drop_rows_after(int(run.env_steps.numpy()))
  current = eval_log.row_at(int(run.env_steps.numpy()))
  if current is not None:
    evaluations.append(current)
  elif not run.checkpointer.checkpoint_exists:
    log_eval()

  total = settings['total_env_steps']
  # Throughput of collecting and training alone, between progress lines.
  busy_s, busy_steps = 0.0, 0
  loss_info = None
  while run.env_steps.numpy() < total:
    if (stop_after_env_steps is not None
        and run.env_steps.numpy() >= stop_after_env_steps):
      return {}
    before = int(run.env_steps.numpy())
    try:
      times = loops.run_iteration(loop, settings['num_epochs'])
    except tf.errors.InvalidArgumentError as error:
      non_finite = non_finite_loss_error(
          error, settings, int(agent.train_step_counter.numpy()))
      if non_finite is None:
        raise
      raise non_finite from error
    if times.loss_info is not None:
      loss_info = times.loss_info
    run.wall_clock.assign_add(times.collect_s + times.train_s)
    after = int(run.env_steps.numpy())
    busy_s += times.collect_s + times.train_s
    busy_steps += after - before

    def crossed(interval, before=before, after=after):
      return after // interval > before // interval or after >= total

    if crossed(settings['log_interval']) and loss_info is not None:
      rate = busy_steps / max(busy_s, 1e-9)
      interval = settings['eval_interval']
      remaining_evals = ((total - 1) // interval - after // interval + 1
                         if after < total else 0)
      eta = time_left(total - after, rate, remaining_evals,
                      eval_seconds[-1] if eval_seconds else 0.0)
      print(f'[train] env_steps={after}/{total} '
            f'train_steps={int(agent.train_step_counter.numpy())} '
            f'steps/s={rate:.0f} '
            f'{algorithm.progress(agent, loss_info)} '
            f'time_left={_duration(eta)}', flush=True)
      busy_s, busy_steps = 0.0, 0
      other_jobs = run_lib.record_sharing(root_dir, after, other_jobs)
    if crossed(settings['eval_interval']):
      log_eval()
    if crossed(settings['checkpoint_interval']):
      run.checkpointer.save(run.env_steps)

  final = evaluations[-1] if evaluations else log_eval()
  paths = export.export_policies(run.agent, run.model,
                                 os.path.join(root_dir, 'policy'),
                                 settings['env'])
  return write_summary(root_dir, settings, run.agent, final,
                       run.checkpointer.manager.latest_checkpoint, paths)


def write_summary(root_dir: str, settings: Dict[str, Any], agent,
                  final: Dict[str, Any], checkpoint: str,
                  saved_models: Dict[str, str],
                  extra: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
  """Writes <root_dir>/summary.json, the same keys for every entry point.

  The env, algorithm, counters and scores of the final evaluation (`final`,
  an eval.csv row: a policy the algorithm does not have has no key), the
  checkpoint and SavedModels, the settings of the evaluation episodes, the
  scores at the env's summary levels (`evaluation.level_scores`), and
  `extra` (the Reverb run's collection counters under 'distributed').

  Returns:
    The summary.
  """
  summary = {
      'env': settings['env'],
      'algorithm': settings['algorithm'],
      'env_steps': final['env_steps'],
      'train_steps': final['train_steps'],
      'wall_clock_s': round(final['wall_clock_s'], 1),
      'eval_episodes': settings['eval_episodes'],
      **{column: final[column] for column in
         evaluation.eval_columns(settings)[len(evaluation.COUNTERS):]},
      'checkpoint': checkpoint,
      'saved_models': saved_models,
      **{name: settings[name] for name in builders.eval_settings(settings)},
      **evaluation.level_scores(agent, settings, final),
      **(extra or {}),
  }
  with tf.io.gfile.GFile(os.path.join(root_dir, 'summary.json'), 'w') as f:
    json.dump(summary, f, indent=2)
  print('[summary] ' + json.dumps(summary, indent=2), flush=True)
  return summary


