"""Exploration probe of how an exported Ant network policy's episodes end.

Kept as a record of docs/limits.md's Ant figures, not part of the library.

Plays N episodes of gymnasium's own Ant-v5 (seeds from 12345, as
`launch.evaluate --gymnasium`) with a run's exported network policy and
prints each episode's return, length and the torso's height z after its last
step (Ant-v5 ends an episode when z leaves its healthy range [0.2, 1.0]),
then the mean |action| and the share of saturated actions (|a| > 0.95).

  python docs/results/records/ant_network/episode_ends.py SAVED_MODEL N
"""
import sys

import numpy as np
import tensorflow as tf
from tf_agents.trajectories import time_step as ts

from environments import gym_adapter
from tf_spo import experiment


def torso_heights(env):
  """z of each environment's torso (qpos[2] of Ant)."""
  # pylint: disable=protected-access
  return np.array([e.unwrapped.data.qpos[2] for e in env._envs])


def main(saved_model, num_episodes):
  """Plays the episodes and prints how they end."""
  policy, settings = experiment.load_saved_policy(saved_model, 'ant')
  model = experiment.make_model(settings, evaluation=True)
  env = gym_adapter.GymnasiumEnvironment(model, num_episodes, 12345)
  try:
    time_step = env.reset()
    returns = np.zeros(num_episodes)
    lengths = np.zeros(num_episodes, int)
    final_z = np.zeros(num_episodes)
    ended = np.zeros(num_episodes, bool)
    actions = []
    while not ended.all():
      observation = time_step.observation.network_input
      action = np.asarray(policy.action(tf.nest.map_structure(
          tf.convert_to_tensor,
          time_step._replace(observation=observation))).action)
      actions.append(action[~ended])
      time_step = env.step(action)
      returns += np.where(ended, 0.0, time_step.reward)
      lengths += ~ended
      final_z = np.where(ended, final_z, torso_heights(env))
      ended |= time_step.step_type == ts.StepType.LAST
  finally:
    env.close()
  actions = np.abs(np.concatenate(actions))
  print(saved_model)
  print('return', np.round(returns).astype(int).tolist())
  print('length', lengths.tolist())
  print('final z', np.round(final_z, 2).tolist())
  early = lengths < 1000
  print(f'{early.sum()} of {num_episodes} end before 1,000 steps, '
        f'{(early & (final_z > 1.0)).sum()} of them with z > 1.0; '
        f'mean |a| {actions.mean():.3f}, '
        f'|a| > 0.95: {(actions > 0.95).mean():.4f}')


if __name__ == '__main__':
  main(sys.argv[1], int(sys.argv[2]))
