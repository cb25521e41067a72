r"""Probes the Gaussian M-step while SPO trains a MuJoCo task.

Trains one short run per --variant (settings on top of the env's CPU preset)
and, every --probe_every iterations, reads the M-step's pieces on a replayed
batch: the duals (eta, alpha_mu, alpha_Sigma) and their KLs, the policy's
mean and scale against q-hat's atoms (their spread, the shift of their
weighted mean from their plain mean, which is the improvement the M-step
carries, and its correlation with the network's own offset), and how far the
network's mean moved on fixed probe states. Ends with each variant's search
and network returns, and writes a markdown page.

  python -m launch.mstep_probe --env=halfcheetah --total_env_steps=40960 \
      --variant='paper_replay={}' \
      --variant='fresh={"replay_capacity": 4096}' \
      --output=docs/results/mstep_probe.md
"""

import json
import tempfile
from typing import Any, Dict, List

from absl import app
from absl import flags
import numpy as np
import tensorflow as tf

from environments import model as model_lib
from launch import cli
from tf_spo import experiment

FLAGS = flags.FLAGS

COLUMNS = ('env_steps', 'eta', 'alpha_mean', 'alpha_cov', 'kl_mean',
           'kl_cov', 'scale', 'mean_rms', 'atom_spread', 'shift_rms',
           'offset_corr', 'probe_moved')


def _flat(nest):
  return tf.nest.map_structure(
      lambda x: tf.reshape(x, [-1] + x.shape[2:].as_list()), nest)


def batch_pieces(network, experience) -> Dict[str, float]:
  """The policy against q-hat's atoms on a [B, T] batch of the replay.

  Returns:
    scale: mean policy standard deviation; mean_rms: RMS of the policy
    mean; atom_spread: mean std of the atoms per state; shift_rms: RMS of
    (weighted atom mean - plain atom mean), the improvement q-hat carries;
    offset_corr: correlation over states and dimensions of that shift with
    (policy mean - plain atom mean), the network's own offset.
  """
  output, _ = network(_flat(model_lib.network_input(experience.observation)))
  info = experience.policy_info
  atoms = _flat(info['search_atoms']).numpy()
  weights = _flat(info['search_weights']).numpy()
  loc, scale = output.policy.loc.numpy(), output.policy.scale.numpy()
  weighted = np.einsum('bn,bnd->bd', weights, atoms)
  plain = atoms.mean(axis=1)
  return dict(
      scale=float(scale.mean()),
      mean_rms=float(np.sqrt(np.mean(loc**2))),
      atom_spread=float(atoms.std(axis=1).mean()),
      shift_rms=float(np.sqrt(np.mean((weighted - plain)**2))),
      offset_corr=float(np.corrcoef((loc - plain).ravel(),
                                    (weighted - plain).ravel())[0, 1]))


def probe(env: str, overrides: Dict[str, Any], total_env_steps: int,
          probe_every: int, eval_episodes: int, root_dir: str
          ) -> Dict[str, Any]:
  """Trains one variant and returns its probe rows and final scores."""
  settings = experiment.resolve_settings(env, 'cpu', overrides)
  settings.update(total_env_steps=total_env_steps,
                  eval_episodes=eval_episodes)
  experiment.validate_settings(settings)
  run = experiment.build_run(settings, root_dir)
  loop = experiment.make_loop(run)
  network = run.agent.network
  probe_input, probe_mean, rows, iteration = None, None, [], 0
  while run.env_steps.numpy() < total_env_steps:
    times = experiment.run_iteration(loop, settings['num_epochs'])
    iteration += 1
    if probe_input is None and times.loss_info is not None:
      probe_input = _flat(model_lib.network_input(
          run.replay_buffer.newest_steps(8).observation))
      probe_mean = network(probe_input)[0].policy.loc.numpy()
    if iteration % probe_every or times.loss_info is None:
      continue
    extra = times.loss_info.extra
    row = dict(env_steps=int(run.env_steps.numpy()), eta=float(extra.eta),
               alpha_mean=float(extra.alpha_mean),
               alpha_cov=float(extra.alpha_cov),
               kl_mean=float(extra.kl_mean), kl_cov=float(extra.kl_cov))
    row.update(batch_pieces(network, run.replay_buffer.sample_sequences(
        settings['batch_size'], settings['sequence_length'])))
    moved = network(probe_input)[0].policy.loc.numpy() - probe_mean
    row['probe_moved'] = float(np.sqrt(np.mean(moved**2)))
    rows.append(row)
    print('[probe] ' + json.dumps(row), flush=True)
  scores = experiment.policy_scorer(run.agent, settings)()
  return dict(rows=rows, scores=scores, overrides=overrides)


def page(results: Dict[str, Dict[str, Any]], env: str, command: str) -> str:
  """The markdown page of the variants' probes."""
  lines = experiment.page_header(f'The Gaussian M-step on {env}, probed',
                                 command) + [
      'Columns: the duals and the KL parts of the last gradient step; on a '
      "replayed batch, the policy scale, the RMS of its mean, the atoms' "
      "spread, the RMS shift of q-hat's weighted atom mean from the plain "
      'atom mean (the improvement the M-step carries), the correlation of '
      "the network's offset from the plain atom mean with that shift; the "
      'RMS change of the mean on fixed probe states since the first '
      'update.', '']
  for name, result in results.items():
    scores = result['scores']
    lines += [f'## {name}: `{json.dumps(result["overrides"])}`', '',
              f"Final returns: search {scores['search_mean_return']:,.0f}, "
              f"network {scores['network_mean_return']:,.0f}.", '',
              '| ' + ' | '.join(COLUMNS) + ' |',
              '|' + '---|' * len(COLUMNS)]
    for row in result['rows']:
      lines.append('| ' + ' | '.join(
          f'{row[c]:,}' if c == 'env_steps' else f'{row[c]:.4g}'
          for c in COLUMNS) + ' |')
    lines.append('')
  return '\n'.join(lines)


def parse_variants(values: List[str]) -> Dict[str, Dict[str, Any]]:
  """{name: settings} of --variant NAME=JSON values."""
  variants = {}
  for value in values:
    name, _, text = value.partition('=')
    try:
      overrides = json.loads(text)
    except json.JSONDecodeError as error:
      raise app.UsageError(f'--variant {value!r}: not NAME=JSON '
                           f'({error}).') from None
    if not name or not isinstance(overrides, dict):
      raise app.UsageError(f'--variant {value!r}: not NAME=JSON object.')
    variants[name] = overrides
  return variants


def main(argv):
  """Probes every --variant and writes the page to --output."""
  del argv
  variants = parse_variants(FLAGS.variant)
  command = experiment.command_line('launch.mstep_probe')
  results = {}
  for name, overrides in variants.items():
    with tempfile.TemporaryDirectory() as root_dir, cli.flag_errors(
        prefix=f'--variant {name}: '):
      results[name] = probe(FLAGS.env, overrides, FLAGS.total_env_steps,
                            FLAGS.probe_every, FLAGS.eval_episodes, root_dir)
  text = page(results, FLAGS.env, command)
  experiment.write_page(FLAGS.output, text)
  print(text)


def run():
  """Defines the flags and runs `main`."""
  flags.DEFINE_string('env', 'halfcheetah', 'A task with continuous '
                      'actions.')
  flags.DEFINE_multi_string('variant', ['preset={}'], 'NAME=JSON settings '
                            "on top of the env's CPU preset; repeatable.")
  flags.DEFINE_integer('total_env_steps', 40_960, 'Env steps per variant.')
  flags.DEFINE_integer('probe_every', 10, 'Iterations between probes.')
  flags.DEFINE_integer('eval_episodes', 8, 'Final evaluation episodes.')
  flags.DEFINE_string('output', 'docs/results/mstep_probe.md',
                      'Page to write.')
  cli.run(main)


if __name__ == '__main__':
  run()
