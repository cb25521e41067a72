r"""Measures the search's policy targets against the exact SPO target.

On an enumerable tree (`environments.toy.RandomTree`: seeded rewards, prior
logits and values, A actions, height H = the search depth), the exact target
q(a_0) of the depth-H search is known (`RandomTree.exact_target`). Each
configuration of the search's q-hat estimator (policy inference, root
sampling, resampling period, particles) runs one search from each of
--num_searches roots with different seeds, and the page reports the mean
per-search KL(exact || q-hat) (what one M-step target carries) and the KL of
the mean q-hat (its bias), in nats. A second table measures the policy
targets over the search's first h steps (`policy_target_horizon`) against
their own exact depth-h target and against the depth-H one.

  python -m launch.estimators --output=docs/results/estimators.md
"""

from typing import Dict, List

from absl import flags
import numpy as np
import tensorflow as tf

from environments import toy
from launch import cli
from tf_spo import config as config_lib
from tf_spo import experiment
from tf_spo import networks
from tf_spo import search

FLAGS = flags.FLAGS

# (policy_inference, root_sampling): today's SPO estimator first.
ESTIMATORS = (('dirac', 'iid'), ('message_passing', 'iid'),
              ('message_passing', 'without_replacement'))


def tree_network_fn(tree: toy.RandomTree):
  """The tree's fixed prior and critic as a network function."""

  def network_fn(observation):
    node = tf.cast(observation[:, 0], tf.int32)
    return networks.NetworkOutput(tf.gather(tree.logits, node),
                                  tf.gather(tree.values, node), ())

  return network_fn


def _kl(p: np.ndarray, q: np.ndarray) -> np.ndarray:
  """KL(p || q) over the last axis; q's zeros count as 1e-30."""
  q = np.maximum(q, 1e-30)
  return np.sum(np.where(p > 0, p * np.log(np.maximum(p, 1e-300) / q), 0.0),
                axis=-1)


def target_kls(tree: toy.RandomTree, config: config_lib.SearchConfig,
               eta: float, num_searches: int, seed: int = 0
               ) -> Dict[str, float]:
  """KLs of the search's q-hat from the root of `tree` to the exact target.

  Args:
    tree: the tree; `config.depth` must equal its height.
    config: the search (discount 1 is the tree's exact target's).
    eta: the temperature.
    num_searches: searches, one per root of a batch (independent seeds).
    seed: the batch's seed.

  Returns:
    {'per_search': mean KL(exact || target) over the searches,
     'of_mean': KL(exact || mean target),
     'of_mean_to_full': KL(exact depth-H target || mean target)}, where
    the target is the search's policy target (q-hat, or with
    `config.policy_target_horizon = h` the estimate over the first h steps,
    whose exact target is then the depth-h one).
  """
  exact = tree.exact_target(eta, config.discount,
                            config.policy_target_horizon or None)
  run = tf.function(
      lambda observation, s: search.smc_search(
          observation, tree, tree_network_fn(tree), eta, config, s),
      jit_compile=True)
  target = run(tf.zeros([num_searches, 1]), tf.constant(
      [seed, 1], tf.int32)).policy_target.action_weights.numpy()
  mean = target.mean(axis=0)
  return {'per_search': float(np.mean(_kl(exact, target))),
          'of_mean': float(_kl(exact, mean)),
          'of_mean_to_full': float(_kl(
              tree.exact_target(eta, config.discount), mean))}


def table(num_actions: int, depth: int, eta: float,
          particles: List[int], periods: List[int], num_searches: int,
          tree_seeds: List[int]) -> List[str]:
  """Markdown lines: a row per estimator and period, columns per N."""
  header = (['policy inference', 'root sampling', 'resample period'] +
            [f'N = {n}' for n in particles])
  lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
  for inference, root in ESTIMATORS:
    for period in periods:
      cells = [inference, root, str(period)]
      for n in particles:
        config = config_lib.SearchConfig(
            num_particles=n, depth=depth, resample_period=period,
            discount=1.0, policy_inference=inference, root_sampling=root)
        kls = [target_kls(toy.RandomTree(num_actions, depth, seed=s),
                          config, eta, num_searches, seed=s)
               for s in tree_seeds]
        cells.append(f"{np.mean([k['per_search'] for k in kls]):.3f} "
                     f"({np.mean([k['of_mean'] for k in kls]):.4f})")
      lines.append('| ' + ' | '.join(cells) + ' |')
  return lines


def horizon_table(num_actions: int, depth: int, eta: float,
                  particles: List[int], num_searches: int,
                  tree_seeds: List[int]) -> List[str]:
  """Markdown lines: a row per policy target horizon, columns per N.

  Message passing with no resampling before the horizon (period = depth).
  """
  header = ['policy target horizon'] + [f'N = {n}' for n in particles]
  lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
  for horizon in range(1, depth + 1):
    cells = [str(horizon)]
    for n in particles:
      config = config_lib.SearchConfig(
          num_particles=n, depth=depth, resample_period=depth,
          discount=1.0, policy_inference='message_passing',
          policy_target_horizon=horizon)
      kls = [target_kls(toy.RandomTree(num_actions, depth, seed=s),
                        config, eta, num_searches, seed=s)
             for s in tree_seeds]
      cells.append(f"{np.mean([k['per_search'] for k in kls]):.3f} "
                   f"({np.mean([k['of_mean'] for k in kls]):.4f}; "
                   f"{np.mean([k['of_mean_to_full'] for k in kls]):.3f})")
    lines.append('| ' + ' | '.join(cells) + ' |')
  return lines


def main(argv):
  """Measures every estimator and writes the page to --output."""
  del argv
  # Every configuration is a new compiled search: retracing is expected.
  tf.get_logger().setLevel('ERROR')
  command = experiment.command_line('launch.estimators')
  particles = [int(n) for n in FLAGS.particles]
  periods = [int(p) for p in FLAGS.periods]
  seeds = list(range(FLAGS.num_trees))
  lines = experiment.page_header(
      'Policy targets against the exact SPO target', command) + [
      f'Trees of {FLAGS.num_actions} actions and height {FLAGS.depth} '
      f'(`RandomTree`, seeds {seeds[0]}..{seeds[-1]}), search depth '
      f'{FLAGS.depth}, eta = {FLAGS.eta}, {FLAGS.num_searches} searches per '
      'tree and configuration. Each cell: mean per-search KL(exact || q-hat) '
      'in nats (what one M-step target carries), then in parentheses '
      'KL(exact || mean q-hat) (the bias). A Dirac q-hat puts no mass on '
      'the actions no surviving particle took; those count as 1e-30, so '
      'its per-search KL is large whenever an action of the exact target '
      'is missed.', '']
  lines += table(FLAGS.num_actions, FLAGS.depth, FLAGS.eta, particles,
                 periods, FLAGS.num_searches, seeds)
  lines += [
      '', '## Policy targets over the first h steps', '',
      "`--policy_target_horizon=h`: the M-step's target by message passing "
      "over the search's first h steps (the search still acts with its "
      'full-depth q-hat), on the same trees, with no resampling before h. '
      'Each cell: mean per-search KL(exact depth-h target || target), then '
      'in parentheses KL(exact depth-h target || mean target) (the bias) '
      f'and KL(exact depth-{FLAGS.depth} target || mean target) (how far '
      "the shorter look-ahead's target is from the full search's). h = "
      f"{FLAGS.depth} is message passing's row of period {FLAGS.depth} "
      'above.', '']
  lines += horizon_table(FLAGS.num_actions, FLAGS.depth, FLAGS.eta,
                         particles, FLAGS.num_searches, seeds)
  text = '\n'.join(lines) + '\n'
  experiment.write_page(FLAGS.output, text)
  print(text)


def run():
  """Defines the flags and runs `main`."""
  flags.DEFINE_string('output', 'docs/results/estimators.md',
                      'Page to write.')
  flags.DEFINE_integer('num_actions', 8, 'Actions A of the trees.')
  flags.DEFINE_integer('depth', 4, 'Height of the trees and search depth.')
  flags.DEFINE_float('eta', 1.0, 'Temperature.')
  flags.DEFINE_list('particles', ['16', '64', '256'], 'Particle counts N.')
  flags.DEFINE_list('periods', ['4', '1'], 'Resampling periods.')
  flags.DEFINE_integer('num_searches', 256, 'Searches per tree.')
  flags.DEFINE_integer('num_trees', 4, 'Trees (seeds 0..num_trees - 1).')
  cli.run(main)


if __name__ == '__main__':
  run()
