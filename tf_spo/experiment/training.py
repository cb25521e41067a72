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

  def log_eval():
    result = evaluation.evaluate(run, score_policies)
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

  run_lib.record_provenance(
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
  last_log = time.time()
  last_log_steps = int(run.env_steps.numpy())
  loss_info = None
  while run.env_steps.numpy() < total:
    if (stop_after_env_steps is not None
        and run.env_steps.numpy() >= stop_after_env_steps):
      return {}
    before = int(run.env_steps.numpy())
    times = loops.run_iteration(loop, settings['num_epochs'])
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
            f'{algorithm.progress(agent, loss_info)} '
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


