r"""Aggregates training runs: rliable statistics, figures and tables.

Reads run directories of `launch.train` (each with config.json and eval.csv),
groups them by algorithm and env (seeds are the runs of a group), and writes
to --output_dir:

- aggregates.png/.pdf: IQM, mean, median and optimality gap of the final
  normalised scores over all envs, with 95% stratified bootstrap intervals;
- probability_of_improvement.png/.pdf: P(X > Y) for every pair of algorithms;
- profiles.png/.pdf: performance profiles (fraction of runs above tau);
- curves_env_steps.png/.pdf and curves_wall_clock.png/.pdf: per env, the IQM
  over seeds of the score at every evaluation, with its interval, against
  env steps and against training wall-clock (mean over the seeds);
- table.md and table.csv: the final scores per algorithm and env and the
  aggregates; report.json: every number of the figures and tables.

  python -m launch.report --run_dirs='runs/cube_s*,runs/trt_s*' \
      --output_dir=runs/report

A run's algorithm is its --algorithm ('trt_smc' for SPO with a TRT-SMC switch
on). PPO has no search: it is scored by its network, the policy it acts
with, under either --policy.

A run's score is the headline metric of its env (the solve rate, or the mean
return) of --policy at the last row of eval.csv. Solve rates are already in
[0, 1]; returns are min-max normalised per env over every evaluation of every
run in the report, so 0 is the worst and 1 the best score seen (the
optimality gap is then the distance to the best score seen).
"""

import os

from absl import flags

from launch import cli
from tf_spo.experiment import reports

FLAGS = flags.FLAGS


def main(argv):
  """Reports on the runs of --run_dirs."""
  del argv
  with cli.flag_errors():  # A ReportError names the run or the flag.
    result = reports.report(reports.find_runs(FLAGS.run_dirs),
                            FLAGS.output_dir, FLAGS.policy, FLAGS.reps,
                            FLAGS.seed)
  with open(os.path.join(FLAGS.output_dir, 'table.md')) as f:
    print(f.read())
  for warning in result['warnings']:
    print(f'[report] warning: {warning}')
  print(f'[report] {len(result["files"])} files in {FLAGS.output_dir}')


def run():
  """Defines the flags and runs `main`."""
  flags.DEFINE_list('run_dirs', None, 'Comma-separated globs of launch.train '
                    'run directories (algorithms x envs x seeds).')
  flags.DEFINE_string('output_dir', 'runs/report', 'Where figures, tables '
                      'and report.json go.')
  flags.DEFINE_enum('policy', 'search', ['search', 'network'],
                    "Which policy's evaluations to score.")
  flags.DEFINE_integer('reps', 2000, 'Bootstrap resamples.')
  flags.DEFINE_integer('seed', 0, 'Seed of the bootstrap.')
  flags.mark_flag_as_required('run_dirs')
  cli.run(main)


if __name__ == '__main__':
  run()
