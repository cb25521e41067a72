"""Fabricated run directories for the report and results-page tests."""

import os

from tf_spo import experiment

ENV_STEPS = [0, 1000, 2000]


def fabricate(root, algorithm, env, seed, final, env_steps=ENV_STEPS):
  """A run dir whose search scores rise 0, final / 2, final."""
  # SPO is the paper's search; trt_smc adds the twisted proposal.
  settings = dict(experiment.resolve_settings(env, 'cpu', {}), seed=seed,
                  policy_inference='dirac', root_sampling='iid',
                  search_value_weight=0.0)
  if algorithm == 'trt_smc':
    settings['proposal_alpha'] = 0.1
  run_dir = os.path.join(root, f'{algorithm}_{env}_s{seed}')
  experiment.write_settings(run_dir, settings)
  columns = experiment.eval_columns(settings)
  log = experiment.EvalLog(run_dir, columns)
  for i, steps in enumerate(env_steps):
    score = final * i / (len(env_steps) - 1)
    log.append(dict.fromkeys(columns, 0.0) | {
        'env_steps': steps, 'wall_clock_s': 10.0 * i + seed,
        'train_steps': steps // 64,
        f'search_{experiment.metrics(settings)[0]}': score})
  return run_dir
