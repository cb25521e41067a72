r"""Exports the policies of a training checkpoint as SavedModels.

Rebuilds the run from `<root_dir>/config.json`, restores its latest
checkpoint and writes the SMC search policy and the bare network policy with
TF-Agents' `PolicySaver`:

  python -m launch.export --root_dir=runs/cube --output_dir=/tmp/cube_policy

The SavedModels load without this project:
`policy = tf.saved_model.load(dir); policy.action(time_step, ())`.
"""

from absl import flags

from launch import cli
from tf_spo import experiment

FLAGS = flags.FLAGS


def main(argv):
  """Restores the run of --root_dir and exports its policies."""
  del argv
  run = experiment.restore_run(FLAGS.root_dir)
  paths = experiment.export_policies(
      run.agent, run.model, FLAGS.output_dir or f'{FLAGS.root_dir}/policy',
      run.settings['env'])
  print(f'exported train step {int(run.agent.train_step_counter.numpy())}: '
        + ', '.join(f'{kind} -> {path}' for kind, path in paths.items()))


def run():
  """Defines the flags and runs `main`."""
  flags.DEFINE_string('root_dir', None, 'Run directory of launch.train.')
  flags.DEFINE_string('output_dir', '', 'Where to write the SavedModels '
                      '(default <root_dir>/policy).')
  flags.mark_flag_as_required('root_dir')
  cli.run(main)


if __name__ == '__main__':
  run()
