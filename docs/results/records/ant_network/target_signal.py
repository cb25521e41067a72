"""Exploration probe of how much of the search's improvement one target carries.

Kept as a record of docs/limits.md's Ant figures, not part of the library.

From states on a run's own greedy-search episodes (4 model environments,
every 20th of 160 steps), the collect search runs K times per state; per
search, the weighted mean of the root atoms minus the policy mean, in units
of the policy's scale, is the mean shift d the M-step fits. Printed, as
medians over the states: the weights' ESS, the share of the log-weights'
variance a linear fit on the root atoms explains, and the per-dimension
signal-to-noise ratio of d (|mean over searches| / std over searches) for
searches of depth 1, 2 and 4 and for the weights softened to eta x c; with a
LATER run directory (the same run's later checkpoint), how far its network's
mean moved from this one's, along mean d (cosine, and the move along it in
this network's scales) and in all.

  python docs/results/records/ant_network/target_signal.py \
      RUN_DIR K [LATER_RUN_DIR]
"""
import sys

import numpy as np
import tensorflow as tf

from environments import model as model_lib
from tf_spo import experiment
from tf_spo import policy as policy_lib

SOFTENING = (1, 2, 4, 8)


def load(run_dir):
  """The run of `run_dir` at its newest checkpoint."""
  run = experiment.build_run(experiment.read_settings(run_dir), run_dir,
                             read_only=True)
  print(run_dir, 'env_steps', int(run.env_steps.numpy()))
  return run


def main(run_dir, repeats, later_dir=None):
  """Prints the probe's medians (see the module's docstring)."""
  run = load(run_dir)
  model, agent, net = run.model, run.agent, run.agent.network
  later = load(later_dir).agent.network if later_dir else None
  searches = {
      depth: policy_lib.search_policy(
          agent.time_step_spec, agent.action_spec, net, model,
          experiment.search_config(dict(run.settings, depth=depth,
                                        resample_period=depth)),
          agent.eta, add_root_noise=True)
      for depth in (1, 2, 4)}
  state = model.reset(4, tf.constant([12345, 0], tf.int64))
  states = []
  for t in range(160):
    observation = model.observe(state)
    out = agent.policy.search(observation, tf.constant([t, 1], tf.int32))
    best = tf.argmax(out.atom_weights, -1, output_type=tf.int32)
    step = model.step(state, tf.tanh(tf.gather(out.atoms, best, batch_dims=1)))
    if (t + 1) % 20 == 0:
      states += [(observation, e) for e in np.flatnonzero(~step.done.numpy())]
    state = step.state
  rows = {depth: [] for depth in searches}
  moved = []
  for j, (observation, e) in enumerate(states):
    root = tf.nest.map_structure(
        lambda x, e=e: tf.repeat(x[e:e + 1], repeats, 0), observation)
    policy = net(model_lib.network_input(root))[0].policy
    loc, scale = policy.loc.numpy()[:1], policy.scale.numpy()[:1]
    for depth, search in searches.items():
      out = search.search(root, tf.constant([99, j], tf.int32))
      z = (out.atoms.numpy() - loc[:, None]) / scale[:, None]  # [K, N, D]
      log_w = np.log(np.maximum(out.atom_weights.numpy(), 1e-30))
      log_w -= log_w.mean(1, keepdims=True)
      centred = (z - z.mean(1, keepdims=True)).reshape(-1, z.shape[-1])
      beta = np.linalg.lstsq(centred, log_w.reshape(-1), rcond=None)[0]
      residual = log_w.reshape(-1) - centred @ beta
      row = [np.mean(1 / (out.atom_weights.numpy()**2).sum(-1)),
             1 - (residual**2).sum() / (log_w**2).sum()]
      for c in SOFTENING:
        w = np.exp((log_w - log_w.max(1, keepdims=True)) / c)
        d = np.einsum('kn,knd->kd', w / w.sum(1, keepdims=True), z)
        row.append(np.sqrt((d.mean(0)**2).mean() / d.var(0).mean()))
        if c == 1:
          mean_d = d.mean(0)
      rows[depth].append(row)
      if depth == 4 and later is not None:
        after = later(model_lib.network_input(root))[0].policy
        move = (after.loc.numpy()[0] - loc[0]) / scale[0]
        moved.append([move @ mean_d / np.linalg.norm(move) /
                      np.linalg.norm(mean_d),
                      move @ mean_d / np.linalg.norm(mean_d),
                      np.linalg.norm(move)])
  print(f'{len(states)} states, {repeats} searches each; medians over states')
  print('depth  ESS  R2(log w ~ root atom)  SNR of d at eta x',
        ', '.join(map(str, SOFTENING)))
  for depth, values in rows.items():
    med = np.median(np.array(values), 0)
    print(f'{depth:5d} {med[0]:5.2f} {med[1]:6.3f}   ',
          ' '.join(f'{x:.3f}' for x in med[2:]))
  if moved:
    med = np.median(np.array(moved), 0)
    print('LATER network mean minus this one, in its scales: cosine with '
          f"this depth-4 search's mean d {med[0]:.3f}, move along it "
          f'{med[1]:.3f}, move in all {med[2]:.3f}')


if __name__ == '__main__':
  main(sys.argv[1], int(sys.argv[2]), *sys.argv[3:4])
