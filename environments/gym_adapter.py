"""gymnasium's MuJoCo environments as a batched TF-Agents `PyEnvironment`.

`GymnasiumEnvironment` is the real environment of training for the MuJoCo
tasks: it steps `num_envs` gymnasium environments of the task of a
`MujocoModel` and presents them with the model's specs, so the agent, the
replay buffer and `TFPyEnvironment` see the same observations as with a
`ModelEnvironment` of the model. Each observation is a `PlanningObservation`
whose planning state is the exact simulator state of its environment
(`ParticleSimulator.particles_of` and the episode's step count), so the
search plans from where the environment really is and the model predicts
the environment's next step exactly.

The time steps follow `ModelEnvironment`: LAST when gymnasium's episode ends,
with discount 0.0 on termination and 1.0 on truncation (gymnasium's
`TimeLimit` after `model.time_limit` steps); stepping an environment whose
time step is LAST resets it, ignores its action and returns FIRST.
"""

from typing import Tuple

import gymnasium as gym
import numpy as np
import tensorflow as tf
from tf_agents.environments import py_environment
from tf_agents.specs import tensor_spec
from tf_agents.trajectories import time_step as ts

from environments import model as model_lib
from environments import mujoco_model


def env_seed(seed: int, index: int) -> int:
  """The seed of environment `index`'s first reset and action space."""
  return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


class GymnasiumEnvironment(py_environment.PyEnvironment):
  """`num_envs` gymnasium environments of a MuJoCo task, batched.

  Observations mirror `model.observation_spec()`: a `PlanningObservation`
  whose `network_input` is gymnasium's observation (float32 [B, O]) and whose
  `planning_state` is, per environment, the simulator's particle (`physics`
  float64 [B, S], `observation` float64 [B, O], `position` float64 [B, 2])
  and the episode's elapsed steps (`steps` int32 [B], 0 after a reset).
  `model.step(planning_state, action)` predicts the next time step.

  Environment i's first reset and its action space are seeded with
  `env_seed(seed, i)`; later resets draw from gymnasium's own generator, so
  a run is reproducible from `seed`. The gymnasium environments are not
  checkpointed (`get_state` is not implemented): a run restored from a
  checkpoint starts new episodes.
  """

  def __init__(self, model: mujoco_model.MujocoModel, num_envs: int,
               seed: int = 0):
    """Creates the environments (they are reset on the first `reset`).

    Args:
      model: the `MujocoModel` of the task; gives the task, the time limit,
        the specs and the simulator that reads the planning state.
      num_envs: the batch size, the number of gymnasium environments.
      seed: Python int >= 0, the base of the environments' seeds.

    Raises:
      ValueError: naming `num_envs` if it is < 1.
    """
    if num_envs < 1:
      raise ValueError(f'num_envs must be >= 1, got {num_envs}.')
    super().__init__(handle_auto_reset=False)
    self._model = model
    self._simulator = model.simulator
    self._num_envs = num_envs
    self._observation_spec = tensor_spec.to_nest_array_spec(
        model.observation_spec())
    self._action_spec = tensor_spec.to_array_spec(model.action_spec())
    # The seeds of the first resets; None once used.
    self._reset_seeds = [env_seed(seed, i) for i in range(num_envs)]
    self._envs = []
    try:
      for i in range(num_envs):
        env = mujoco_model.make_gym_env(self._simulator.task, model.time_limit)
        self._envs.append(env)
        env.action_space.seed(self._reset_seeds[i])
    except BaseException:
      self.close()
      raise
    self._steps = np.zeros([num_envs], np.int32)
    self._is_last = np.zeros([num_envs], bool)

  @property
  def batched(self) -> bool:
    return True

  @property
  def batch_size(self) -> int:
    return self._num_envs

  @property
  def model(self) -> mujoco_model.MujocoModel:
    """The model whose task and specs this environment has."""
    return self._model

  @property
  def gym_envs(self) -> Tuple[gym.Env, ...]:
    """The gymnasium environments, one per batch entry."""
    return tuple(self._envs)

  def observation_spec(self):
    return self._observation_spec

  def action_spec(self):
    return self._action_spec

  def _reset_env(self, index: int) -> np.ndarray:
    """Resets environment `index`; returns its float64 [O] observation."""
    seed, self._reset_seeds[index] = self._reset_seeds[index], None
    observation, _ = self._envs[index].reset(seed=seed)
    self._steps[index] = 0
    self._is_last[index] = False
    return observation

  def _observe(self, observations) -> model_lib.PlanningObservation:
    """The batched observation of the environments' current states.

    Args:
      observations: per environment, gymnasium's float64 [O] observation of
        its current state.

    Returns:
      A `PlanningObservation` of arrays [num_envs, ...] matching
      `observation_spec()`.
    """
    rows = [self._simulator.particles_of(env.unwrapped.data, observation)
            for env, observation in zip(self._envs, observations)]
    physics, observation, position = (
        np.concatenate(parts) for parts in zip(*rows))
    return model_lib.PlanningObservation(
        network_input=observation.astype(np.float32),
        planning_state={'physics': physics, 'observation': observation,
                        'position': position, 'steps': self._steps.copy()})

  def _reset(self) -> ts.TimeStep:
    observations = [self._reset_env(i) for i in range(self._num_envs)]
    return ts.restart(self._observe(observations), self._num_envs)

  def _step(self, action) -> ts.TimeStep:
    """Steps every environment, restarting those whose time step is LAST.

    Args:
      action: float32 [num_envs, nu], the actions (cast to float32, the
        dtype `MujocoModel.step` uses: the tasks' control costs are computed
        in the action's dtype).

    Returns:
      The `TimeStep` of arrays [num_envs, ...].

    Raises:
      ValueError: if the action's shape is not [num_envs, nu].
    """
    action = np.asarray(action, np.float32)
    expected = (self._num_envs,) + tuple(self._action_spec.shape)
    if action.shape != expected:
      raise ValueError(
          f'Expected actions of shape {expected}, got {action.shape}.')
    step_type = np.full([self._num_envs], ts.StepType.MID, np.int32)
    reward = np.zeros([self._num_envs], np.float32)
    discount = np.ones([self._num_envs], np.float32)
    observations = []
    for i, env in enumerate(self._envs):
      if self._is_last[i]:
        observations.append(self._reset_env(i))
        step_type[i] = ts.StepType.FIRST
        continue
      observation, reward[i], terminated, truncated, _ = env.step(action[i])
      observations.append(observation)
      self._steps[i] += 1
      if terminated or truncated:
        step_type[i] = ts.StepType.LAST
        self._is_last[i] = True
        if terminated:
          discount[i] = 0.0
    return ts.TimeStep(step_type=step_type, reward=reward, discount=discount,
                       observation=self._observe(observations))

  def close(self) -> None:
    """Closes the gymnasium environments."""
    for env in self._envs:
      env.close()


def play_gymnasium(policy, model: mujoco_model.MujocoModel, num_episodes: int,
                   seed: int, network_input_only: bool = False) -> np.ndarray:
  """Plays one episode of gymnasium's own task in each of `num_episodes` envs.

  The environments are a `GymnasiumEnvironment(model, num_episodes, seed)`:
  gymnasium steps with the policy's actions and its own rewards, until each
  environment's first episode ends (termination or the time limit).

  Args:
    policy: anything with `action(time_step)` returning a step with
      `.action` [B, nu]: a `TFPolicy` or a policy loaded from a SavedModel.
    model: the `MujocoModel` of the task.
    num_episodes: episodes, played as one batch.
    seed: the base of the environments' seeds (`env_seed`).
    network_input_only: give the policy only the network input (an exported
      network policy).

  Returns:
    [num_episodes] float64 episode returns.
  """
  env = GymnasiumEnvironment(model, num_episodes, seed)
  try:
    time_step = env.reset()
    returns = np.zeros(num_episodes)
    ended = np.zeros(num_episodes, bool)
    while not ended.all():
      observation = time_step.observation
      if network_input_only:
        observation = observation.network_input
      tf_time_step = tf.nest.map_structure(
          tf.convert_to_tensor, time_step._replace(observation=observation))
      action = policy.action(tf_time_step).action
      time_step = env.step(np.asarray(action))
      returns += np.where(ended, 0.0, time_step.reward.astype(np.float64))
      ended |= time_step.step_type == ts.StepType.LAST
    return returns
  finally:
    env.close()
