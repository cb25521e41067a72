r"""Writes a results page (markdown) from run directories of `launch.train`.

Every number on the page comes from the runs' files: eval.csv (both
policies' headline metric at every evaluation), config.json (the settings
that set a group of runs apart from its env's CPU preset) and
provenance.jsonl (commit, resumes, what else ran). The page starts with the
command that regenerates it.

  python -m launch.results --run_dirs='runs/hc_*' \
      --title='HalfCheetah-v5' --output=docs/results/halfcheetah.md \
      --records_dir=docs/results/records/halfcheetah

With --records_dir the runs' records (those files and the --evaluations
outputs; no checkpoints) are copied there first and the page is written
from the copies, with the command that regenerates it from them: commit the
records with the page and it regenerates after the run directories are gone.

Runs are grouped by env and by the settings they set apart from the env's
preset (seed, schedule and device settings aside); a group's table has a
row per evaluated env-step count with each seed's search / network score
and the means over the seeds that reached that row.
"""

from absl import flags

from launch import cli
from tf_spo import experiment
from tf_spo.experiment import pages

FLAGS = flags.FLAGS


def main(argv):
  """Writes the page of --run_dirs to --output."""
  del argv
  command = experiment.command_line('launch.results')
  with cli.flag_errors():
    run_dirs = pages.run_dirs(FLAGS.run_dirs)
    if FLAGS.records_dir:
      run_dirs = pages.archive_records(run_dirs, FLAGS.records_dir,
                                       FLAGS.evaluations)
      command = pages.regenerating_command(run_dirs, FLAGS.title,
                                           FLAGS.evaluations, FLAGS.output)
  text = pages.results_page(run_dirs, FLAGS.title, command, FLAGS.evaluations)
  experiment.write_page(FLAGS.output, text)
  print(f'[results] wrote {FLAGS.output} from {len(run_dirs)} runs')


def run():
  """Defines the flags and runs `main`."""
  flags.DEFINE_list('run_dirs', None, 'Comma-separated globs of launch.train '
                    'run directories.', required=True)
  flags.DEFINE_string('title', 'Results', 'Title of the page.')
  flags.DEFINE_string('output', 'docs/results/results.md', 'Page to write.')
  flags.DEFINE_list('evaluations', [], 'File names of `launch.evaluate '
                    '--output` results inside each run directory to tabulate '
                    '(e.g. gym_search.json), or of `launch.scaling` outputs '
                    '(scaling/scaling.json: a column per search).')
  flags.DEFINE_string('records_dir', '', "If set, copy the runs' records "
                      '(config.json, eval.csv, provenance.jsonl and the '
                      '--evaluations files) to <records_dir>/<run dir name> '
                      'and write the page from the copies.')
  cli.run(main)


if __name__ == '__main__':
  run()
