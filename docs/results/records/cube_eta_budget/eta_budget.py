"""Exploration: the greedy SMC search's temperature at larger budgets.

Kept as a record of docs/limits.md's cube figures, not part of the library.

As the particles grow, SMC's q-hat tends to pi(a) E_pi[exp(sum A / eta)],
a soft evaluation of pi's continuations; on a deterministic task a smaller
eta moves that toward the best continuation, at the price of variance that
more particles pay for. This restores a run and plays the same N held-out
7-move cubes (seed 12345, as `launch.scaling --level=7`) with the run's
greedy SMC search (its switches, resampled every 2 steps) at several
particles x depth budgets, each with the run's eta scaled by 2, 1, 0.5 and
0.25, and Gumbel MuZero at 64 and 256 simulations for reference; prints
each solve rate.

  python docs/results/records/cube_eta_budget/eta_budget.py RUN_DIR N
"""
import dataclasses
import sys

from tf_spo import experiment
from tf_spo import policy as policy_lib
from tf_spo.experiment import algorithms
from tf_spo.experiment import builders
from tf_spo.experiment import evaluation

SEED = 12345
BUDGETS = ((16, 4), (32, 8), (64, 8))
ETA_SCALES = (2.0, 1.0, 0.5, 0.25)
GUMBEL_SIMULATIONS = (64, 256)


def main(run_dir, num_episodes):
  """Prints each search's solve rate on the same held-out cubes."""
  run = experiment.restore_run(run_dir)
  settings = dict(run.settings, eval_scramble=7)
  model = builders.make_model(settings, evaluation=True)
  agent = run.agent
  base = algorithms.search_config(dict(settings, algorithm='spo'))
  print(run_dir, 'env_steps', int(run.env_steps.numpy()),
        'eta', round(float(agent.eta), 4), flush=True)

  def solve_rate(config, eta):
    policy = policy_lib.search_policy(
        agent.time_step_spec, agent.action_spec, agent.network, run.model,
        config, eta, greedy=True, seed=SEED)
    return evaluation.evaluate_policy(policy, model, num_episodes,
                                      SEED)['solve_rate']

  for particles, depth in BUDGETS:
    config = dataclasses.replace(base, num_particles=particles, depth=depth,
                                 resample_period=2)
    for scale in ETA_SCALES:
      rate = solve_rate(config, agent.eta * scale)
      print(f'{rate:.4f}  SMC {particles}x{depth}, eta x {scale}',
            flush=True)
  for simulations in GUMBEL_SIMULATIONS:
    config = algorithms.search_config(dict(
        settings, algorithm='gumbel', num_simulations=simulations))
    print(f'{solve_rate(config, agent.eta):.4f}  Gumbel MuZero '
          f'{simulations}', flush=True)


if __name__ == '__main__':
  main(sys.argv[1], int(sys.argv[2]))
