"""Trained policy scale of Ant runs on their network's own greedy episodes.

For each run directory: 16 episodes from the model's start states (seed
12345), up to 200 steps of the network's greedy action (tanh of its mean);
prints the median over visited states of the mean pre-squash scale, and the
mean |tanh(loc)|.
"""
import sys

import numpy as np
import tensorflow as tf

from environments import model as model_lib
from tf_spo import experiment

for run_dir in sys.argv[1:]:
  run = experiment.build_run(experiment.read_settings(run_dir), run_dir,
                             read_only=True)
  model, net = run.model, run.agent.network
  state = model.reset(16, tf.constant([12345, 0], tf.int64))
  alive = np.ones(16, bool)
  scales, means = [], []
  steps = 0
  while steps < 200 and alive.any():
    policy = net(model_lib.network_input(model.observe(state)))[0].policy
    scale, loc = policy.scale.numpy(), policy.loc.numpy()
    scales += list(scale[alive].mean(-1))
    means += list(np.abs(np.tanh(loc[alive])).mean(-1))
    step = model.step(state, tf.tanh(policy.loc))
    alive &= ~step.done.numpy()
    state = step.state
    steps += 1
  low, high = np.percentile(scales, [10, 90])
  print(f'{run_dir}: env_steps {int(run.env_steps.numpy())}, initial_scale '
        f'{run.settings["initial_scale"]}: median scale '
        f'{np.median(scales):.3f} (10-90%: {low:.3f}-{high:.3f}), '
        f'mean |tanh(loc)| {np.mean(means):.3f}, {alive.sum()} of 16 alive '
        f'at {steps} steps')
