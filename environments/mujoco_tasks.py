"""Gymnasium's v5 MuJoCo locomotion tasks, vectorised over a batch.

A task is what a gymnasium v5 environment computes around the simulator:
which `MjData` fields it reads after `mj_step(frame_skip)` and
`mj_rnePostConstraint`, and how it turns them into the observation, the
reward and the termination flag, plus the noise of its `reset_model`. Here
those computations take a batch: every field is an array [B, ...] (one row
per particle), so a planning model steps many particles in C and then runs
the task's arithmetic once, in numpy, on the whole batch. The arithmetic
follows gymnasium's `half_cheetah_v5.py`, `ant_v5.py` and `humanoid_v5.py`
with their default arguments, operation for operation, so a particle's step
matches `env.step` (tests/environments/test_mujoco_model.py checks it).

The forward reward differences a position before and after the step. For
Ant and Humanoid gymnasium reads it from derived fields (`xpos`, `xipos`),
which after `mj_step` describe the state before the last substep, so the
position "before" a step is the one read after the previous step (or after
the reset): a particle carries it (`position`).
"""

import dataclasses
from typing import Dict, Tuple

import numpy as np

Fields = Dict[str, np.ndarray]


@dataclasses.dataclass(frozen=True)
class MujocoTask:
  """A gymnasium v5 MuJoCo task, with its default arguments.

  Attributes:
    name: registry name, e.g. 'halfcheetah'.
    gym_id: gymnasium id, e.g. 'HalfCheetah-v5'.
    fields: `MjData` fields the task reads after a step.
    needs_post_constraint: whether those include `cfrc_ext`, computed by
      `mj_rnePostConstraint` after the step.
    forward_reward_weight: weight of the forward velocity.
    ctrl_cost_weight: weight of the squared controls.
    reset_noise_scale: scale of the noise added to the initial state.
    time_limit: gymnasium's `max_episode_steps`.
  """
  name: str
  gym_id: str
  fields: Tuple[str, ...]
  needs_post_constraint: bool
  forward_reward_weight: float
  ctrl_cost_weight: float
  reset_noise_scale: float
  time_limit: int = 1000

  def position(self, body_mass: np.ndarray, fields: Fields) -> np.ndarray:
    """float64 [B, 2]: the position whose change is the forward reward."""
    raise NotImplementedError

  def observation(self, fields: Fields) -> np.ndarray:
    """float64 [B, O]: gymnasium's `_get_obs()` of each particle."""
    raise NotImplementedError

  def reward(self, fields: Fields, action: np.ndarray,
             velocity: np.ndarray) -> np.ndarray:
    """float64 [B]: gymnasium's reward, given the [B, 2] xy velocity."""
    raise NotImplementedError

  def terminated(self, fields: Fields) -> np.ndarray:
    """bool [B]: gymnasium's `terminated` after the step."""
    raise NotImplementedError

  def reset_velocity_noise(self, rng: np.random.Generator,
                           size: Tuple[int, int]) -> np.ndarray:
    """float64 [B, nv]: the noise `reset_model` adds to `init_qvel`."""
    return self.reset_noise_scale * rng.standard_normal(size)


def _control_cost(weight: float, action: np.ndarray) -> np.ndarray:
  """weight * sum(action**2) per row, in the action's dtype (gymnasium)."""
  return weight * np.sum(np.square(action), axis=-1)


@dataclasses.dataclass(frozen=True)
class HalfCheetah(MujocoTask):
  """HalfCheetah-v5: run forward; never terminates."""
  name: str = 'halfcheetah'
  gym_id: str = 'HalfCheetah-v5'
  fields: Tuple[str, ...] = ('qpos', 'qvel')
  needs_post_constraint: bool = False
  forward_reward_weight: float = 1.0
  ctrl_cost_weight: float = 0.1
  reset_noise_scale: float = 0.1

  def position(self, body_mass, fields):
    del body_mass
    x = fields['qpos'][:, 0]
    return np.stack([x, np.zeros_like(x)], axis=-1)

  def observation(self, fields):
    return np.concatenate([fields['qpos'][:, 1:], fields['qvel']], axis=-1)

  def reward(self, fields, action, velocity):
    del fields
    forward = self.forward_reward_weight * velocity[:, 0]
    return forward - _control_cost(self.ctrl_cost_weight, action)

  def terminated(self, fields):
    return np.zeros(fields['qpos'].shape[0], bool)


@dataclasses.dataclass(frozen=True)
class Ant(MujocoTask):
  """Ant-v5: walk forward, staying healthy (torso height in [0.2, 1])."""
  name: str = 'ant'
  gym_id: str = 'Ant-v5'
  fields: Tuple[str, ...] = ('qpos', 'qvel', 'xpos', 'cfrc_ext')
  needs_post_constraint: bool = True
  forward_reward_weight: float = 1.0
  ctrl_cost_weight: float = 0.5
  reset_noise_scale: float = 0.1
  contact_cost_weight: float = 5e-4
  healthy_reward: float = 1.0
  healthy_z_range: Tuple[float, float] = (0.2, 1.0)
  contact_force_range: Tuple[float, float] = (-1.0, 1.0)
  main_body: int = 1

  def position(self, body_mass, fields):
    del body_mass
    return fields['xpos'][:, self.main_body, :2].copy()

  def _contact_forces(self, fields):
    return np.clip(fields['cfrc_ext'], *self.contact_force_range)

  def _is_healthy(self, fields):
    qpos = fields['qpos']
    state = np.concatenate([qpos, fields['qvel']], axis=-1)
    low, high = self.healthy_z_range
    return (np.isfinite(state).all(axis=-1) & (low <= qpos[:, 2]) &
            (qpos[:, 2] <= high))

  def observation(self, fields):
    batch = fields['qpos'].shape[0]
    contact = self._contact_forces(fields)[:, 1:].reshape(batch, -1)
    return np.concatenate([fields['qpos'][:, 2:], fields['qvel'], contact],
                          axis=-1)

  def reward(self, fields, action, velocity):
    forward = velocity[:, 0] * self.forward_reward_weight
    healthy = self._is_healthy(fields) * self.healthy_reward
    batch = action.shape[0]
    contact_cost = self.contact_cost_weight * np.sum(
        np.square(self._contact_forces(fields).reshape(batch, -1)), axis=-1)
    costs = _control_cost(self.ctrl_cost_weight, action) + contact_cost
    return forward + healthy - costs

  def terminated(self, fields):
    return ~self._is_healthy(fields)


@dataclasses.dataclass(frozen=True)
class Humanoid(MujocoTask):
  """Humanoid-v5: walk forward, staying up (torso height in (1, 2))."""
  name: str = 'humanoid'
  gym_id: str = 'Humanoid-v5'
  fields: Tuple[str, ...] = ('qpos', 'qvel', 'xipos', 'cinert', 'cvel',
                             'qfrc_actuator', 'cfrc_ext', 'ctrl')
  needs_post_constraint: bool = True
  forward_reward_weight: float = 1.25
  ctrl_cost_weight: float = 0.1
  reset_noise_scale: float = 1e-2
  contact_cost_weight: float = 5e-7
  contact_cost_range: Tuple[float, float] = (-np.inf, 10.0)
  healthy_reward: float = 5.0
  healthy_z_range: Tuple[float, float] = (1.0, 2.0)

  def position(self, body_mass, fields):
    # gymnasium's mass_center: einsum('b,bj->j', body_mass, xipos) / mass.
    center = np.einsum('b,nbj->nj', body_mass, fields['xipos'])
    return (center / body_mass.sum())[:, :2]

  def _is_healthy(self, fields):
    low, high = self.healthy_z_range
    z = fields['qpos'][:, 2]
    return (low < z) & (z < high)

  def observation(self, fields):
    batch = fields['qpos'].shape[0]
    return np.concatenate([
        fields['qpos'][:, 2:], fields['qvel'],
        fields['cinert'][:, 1:].reshape(batch, -1),
        fields['cvel'][:, 1:].reshape(batch, -1),
        fields['qfrc_actuator'][:, 6:],
        fields['cfrc_ext'][:, 1:].reshape(batch, -1)], axis=-1)

  def reward(self, fields, action, velocity):
    del action  # gymnasium's control cost reads data.ctrl.
    batch = fields['qpos'].shape[0]
    forward = self.forward_reward_weight * velocity[:, 0]
    healthy = self._is_healthy(fields) * self.healthy_reward
    control_cost = _control_cost(self.ctrl_cost_weight, fields['ctrl'])
    contact_cost = np.clip(
        self.contact_cost_weight * np.sum(
            np.square(fields['cfrc_ext'].reshape(batch, -1)), axis=-1),
        *self.contact_cost_range)
    return forward + healthy - (control_cost + contact_cost)

  def terminated(self, fields):
    return ~self._is_healthy(fields)

  def reset_velocity_noise(self, rng, size):
    scale = self.reset_noise_scale
    return rng.uniform(low=-scale, high=scale, size=size)


TASKS: Dict[str, MujocoTask] = {
    task.name: task for task in (HalfCheetah(), Ant(), Humanoid())}


def task(name: str) -> MujocoTask:
  """The task registered as `name`.

  Raises:
    ValueError: naming `env` and the MuJoCo tasks, for an unknown name.
  """
  if name not in TASKS:
    raise ValueError(
        f'env must be one of the MuJoCo tasks {sorted(TASKS)}, got '
        f'{name!r}.')
  return TASKS[name]
