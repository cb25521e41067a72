"""The MuJoCo simulator as a batched planning model.

A particle is the simulator's integration state (`mj_getState` with
`mjSTATE_INTEGRATION`: time, qpos, qvel, act, the solver's warm start,
controls and applied forces, everything the next step depends on), the
observation, the position the next forward reward differences from, and the
step count. A step sets the state and the controls, runs
`mj_step(frame_skip)` and `mj_rnePostConstraint` exactly as gymnasium's
`MujocoEnv.do_simulation`, and applies the task's reward and termination
(`environments/mujoco_tasks.py`). So a particle's step is the real
environment's step: tests/environments/test_mujoco_model.py checks it to 1e-6
against gymnasium's `env.step`, and `MujocoModel` re-checks it at
construction (once per task and process), so a gymnasium or mujoco version
whose task differs fails with a clear error.

`ParticleSimulator` steps a numpy batch on threads: with `mujoco.batch`
(C threads) for tasks that read no post-constraint forces (HalfCheetah),
else with a per-particle loop on a pool of Python threads, one `MjData` per
thread (mujoco releases the GIL inside `mj_step`). `MujocoModel` bridges
it into TensorFlow with `tf.numpy_function`: it cannot be compiled with XLA
or saved in a SavedModel, so it sets `xla_compatible = False`.

A particle whose state or action is not finite (or, for the state, beyond
MuJoCo's `mjMAXVAL`), or whose simulation diverges during the step (MuJoCo
then resets it, so its time does not advance by one step), ends: it is
terminated, with reward 0 and a zero observation, and its state is zeroed
where it was not finite, so it never poisons the search or the losses. (A
divergence in the very first substep of an episode, at time 0, is not told
apart from a step; MuJoCo's reset leaves a finite state there.)
"""

import concurrent.futures
import contextlib
import threading
from typing import Dict, NamedTuple, Optional

import gymnasium as gym
import mujoco
from mujoco import batch as mujoco_batch
import numpy as np
import tensorflow as tf
from tf_agents.specs import tensor_spec

from environments import model as model_lib
from environments import mujoco_tasks

STATE_SPEC = mujoco.mjtState.mjSTATE_INTEGRATION
# Tolerance of the start-up check against gymnasium.
SELF_CHECK_TOLERANCE = 1e-6
# Tasks whose self check passed in this process: the installed gymnasium and
# mujoco do not change while it runs, so each task is checked once (a run
# builds models for validation, training and every evaluation).
_CHECKED_TASKS = set()


class Particles(NamedTuple):
  """A batch of particles (numpy arrays with leading dimension [B]).

  Attributes:
    physics: float64 [B, S], the integration state.
    observation: float64 [B, O], gymnasium's observation.
    position: float64 [B, 2], where the next forward reward starts from.
  """
  physics: np.ndarray
  observation: np.ndarray
  position: np.ndarray


class ParticleStep(NamedTuple):
  """The result of `ParticleSimulator.step`: particles, reward, terminated."""
  particles: Particles
  reward: np.ndarray
  terminated: np.ndarray


def make_gym_env(task: mujoco_tasks.MujocoTask, time_limit: int):
  """gymnasium's environment of `task`, truncated after `time_limit`."""
  return gym.make(task.gym_id, max_episode_steps=time_limit)


class ParticleSimulator:
  """Steps batches of particles of one task with the simulator.

  Thread-safe: concurrent calls are serialised.
  """

  def __init__(self, task: mujoco_tasks.MujocoTask, num_threads: int = 1):
    """Loads the task's model from gymnasium.

    Args:
      task: the task.
      num_threads: threads stepping the particles (>= 1).

    Raises:
      ValueError: naming `num_threads` if it is < 1.
    """
    if num_threads < 1:
      raise ValueError(f'num_threads must be >= 1, got {num_threads}.')
    env = gym.make(task.gym_id).unwrapped
    self._task = task
    self._model = env.model
    self._frame_skip = env.frame_skip
    self._dt = env.dt
    self._init_qpos = env.init_qpos.copy()
    self._init_qvel = env.init_qvel.copy()
    env.close()
    self._datas = [mujoco.MjData(self._model) for _ in range(num_threads)]
    self._pool = (concurrent.futures.ThreadPoolExecutor(num_threads)
                  if num_threads > 1 else None)
    self._lock = threading.Lock()
    # mujoco.batch steps in C on its own threads, but cannot run
    # mj_rnePostConstraint; tasks that need it use the per-particle loop.
    self._engine = (self._loop_step if task.needs_post_constraint else
                    self._batch_step)
    self._batches = {}
    self.state_size = mujoco.mj_stateSize(self._model, STATE_SPEC)
    self.action_size = self._model.nu
    self.action_bounds = self._model.actuator_ctrlrange.T.astype(np.float32)
    probe = self.reset(np.random.default_rng(0), 1)
    self.observation_size = probe.observation.shape[-1]

  @property
  def task(self) -> mujoco_tasks.MujocoTask:
    return self._task

  @property
  def model(self) -> mujoco.MjModel:
    return self._model

  @property
  def frame_skip(self) -> int:
    return self._frame_skip

  @property
  def num_threads(self) -> int:
    return len(self._datas)

  def fields_of(self, data: mujoco.MjData) -> mujoco_tasks.Fields:
    """The task's fields of one `MjData`, as a batch of one."""
    return {name: getattr(data, name)[None].copy()
            for name in self._task.fields}

  def particles_of(self, data: mujoco.MjData,
                   observation: Optional[np.ndarray] = None) -> Particles:
    """The particle of one simulation, as a batch of one.

    Args:
      data: the simulation, as gymnasium left it after a step or a reset.
      observation: gymnasium's observation of it, or None to compute it.
    """
    physics = np.empty([1, self.state_size])
    mujoco.mj_getState(self._model, data, physics[0], STATE_SPEC)
    fields = self.fields_of(data)
    if observation is None:
      observation = self._task.observation(fields)
    else:
      observation = np.asarray(observation, np.float64).reshape(1, -1)
    return Particles(physics, observation,
                     self._task.position(self._model.body_mass, fields))

  def reset(self, rng: np.random.Generator, batch_size: int) -> Particles:
    """Starts `batch_size` episodes as gymnasium's `reset` does.

    The initial state is `init_qpos` + U(-s, s) noise and `init_qvel` + the
    task's velocity noise, with s the task's `reset_noise_scale`.
    """
    scale = self._task.reset_noise_scale
    qpos = self._init_qpos + rng.uniform(
        low=-scale, high=scale, size=(batch_size, self._model.nq))
    qvel = self._init_qvel + self._task.reset_velocity_noise(
        rng, (batch_size, self._model.nv))
    data = self._datas[0]
    rows = []
    with self._lock:
      for i in range(batch_size):
        mujoco.mj_resetData(self._model, data)
        data.qpos[:] = qpos[i]
        data.qvel[:] = qvel[i]
        mujoco.mj_forward(self._model, data)
        rows.append(self.particles_of(data))
    return Particles(*(np.concatenate(parts) for parts in zip(*rows)))

  def _step_rows(self, data, physics, action, outputs, rows):
    """Steps particles `rows` with one `MjData`, writing into `outputs`."""
    model, frame_skip = self._model, self._frame_skip
    post_constraint = self._task.needs_post_constraint
    next_physics, fields = outputs
    # Views of `data`'s fields, made once: they follow its memory.
    ctrl = data.ctrl
    copies = [(values, getattr(data, name)) for name, values in fields.items()]
    for i in rows:
      mujoco.mj_setState(model, data, physics[i], STATE_SPEC)
      ctrl[:] = action[i]
      mujoco.mj_step(model, data, nstep=frame_skip)
      if post_constraint:
        mujoco.mj_rnePostConstraint(model, data)
      mujoco.mj_getState(model, data, next_physics[i], STATE_SPEC)
      for values, view in copies:
        values[i] = view

  def _loop_step(self, physics, action, rows, outputs):
    """The per-particle loop engine, on a pool of threads."""
    if self._pool is None:
      self._step_rows(self._datas[0], physics, action, outputs, rows)
      return
    chunks = np.array_split(rows, len(self._datas))
    for future in [
        self._pool.submit(self._step_rows, data, physics, action, outputs,
                          chunk)
        for data, chunk in zip(self._datas, chunks)]:
      future.result()

  def _batch_step(self, physics, action, rows, outputs):
    """The `mujoco.batch` engine: the same steps on its C thread pool."""
    next_physics, fields = outputs
    batch = self._batches.get(len(physics))
    if batch is None:
      batch = mujoco_batch.Batch(self._model, len(physics),
                                 nthread=self.num_threads)
      self._batches[len(physics)] = batch
    batch.state[rows] = physics[rows]
    batch.bind('ctrl')[rows] = action[rows]
    # Simulations that raise keep their state: their time does not advance.
    with contextlib.suppress(mujoco_batch.SimulationError):
      batch.step(rows, nstep=self._frame_skip)
    next_physics[rows] = batch.state[rows]
    for name, values in fields.items():
      values[rows] = batch.bind(name)[rows]

  def step(self, particles: Particles, action: np.ndarray) -> ParticleStep:
    """Steps every particle with its action.

    Args:
      particles: the batch, B particles.
      action: [B, nu] actions (float32 from the policy: gymnasium's control
        costs are computed in the action's dtype, so it matters).

    Returns:
      The `ParticleStep`: next particles, float64 [B] rewards, bool [B]
      terminated flags.
    """
    physics = particles.physics
    batch = physics.shape[0]
    valid = ((np.abs(physics) < mujoco.mjMAXVAL).all(axis=-1) &
             np.isfinite(action).all(axis=-1))
    next_physics = np.nan_to_num(physics, nan=0.0, posinf=0.0, neginf=0.0)
    fields = {name: np.zeros((batch,) + getattr(self._datas[0], name).shape)
              for name in self._task.fields}
    with self._lock:
      self._engine(physics, action, np.flatnonzero(valid),
                   (next_physics, fields))
    # A diverging simulation is reset by MuJoCo (time back to 0), and one
    # that raised keeps its state: either way its time is not 1 step later.
    elapsed = next_physics[:, 0] - physics[:, 0]
    diverged = np.abs(elapsed - self._dt) > 0.5 * self._model.opt.timestep
    task = self._task
    position = task.position(self._model.body_mass, fields)
    velocity = (position - particles.position) / self._dt
    observation = task.observation(fields)
    reward = task.reward(fields, action, velocity)
    terminated = task.terminated(fields)
    ended = (~valid | diverged | ~np.isfinite(observation).all(axis=-1) |
             ~np.isfinite(reward) | ~np.isfinite(position).all(axis=-1))
    if ended.any():
      observation[ended] = 0.0
      reward = np.where(ended, 0.0, reward)
      position[ended] = 0.0
      terminated = terminated | ended
    return ParticleStep(Particles(next_physics, observation, position),
                        reward, terminated)


def self_check(simulator: ParticleSimulator, num_steps: int = 25,
               seed: int = 0) -> None:
  """Checks the simulator's steps against gymnasium's `env.step`.

  Plays `num_steps` random actions in gymnasium's environment of the task
  and predicts each step from the environment's state.

  Raises:
    RuntimeError: if a prediction differs by more than
      `SELF_CHECK_TOLERANCE`, naming the installed gymnasium and mujoco
      versions.
  """
  task = simulator.task
  env = make_gym_env(task, task.time_limit)
  env.action_space.seed(seed)
  observation, _ = env.reset(seed=seed)
  data = env.unwrapped.data
  try:
    for step in range(num_steps):
      particles = simulator.particles_of(data, observation)
      action = env.action_space.sample()
      predicted = simulator.step(particles, action[None])
      observation, reward, terminated, _, _ = env.step(action)
      errors = {
          'observation': np.max(np.abs(
              predicted.particles.observation[0] - observation)),
          'reward': abs(predicted.reward[0] - reward),
          'terminated': float(predicted.terminated[0] != terminated),
      }
      for what, error in errors.items():
        if not error <= SELF_CHECK_TOLERANCE:
          raise RuntimeError(
              f'The {task.gym_id} planning model disagrees with gymnasium '
              f'{gym.__version__} / mujoco {mujoco.__version__}: the '
              f'{what} of step {step} differs by {error:.3g}. This task '
              'follows gymnasium 1.3.0 with mujoco 4.0.0 (the versions '
              'pinned in setup.cfg); install those.')
      if terminated:
        observation, _ = env.reset()
  finally:
    env.close()


def _state_spec(simulator: ParticleSimulator) -> Dict[str, tf.TensorSpec]:
  """Spec of the planning state: a particle and its step count."""
  return {
      'physics': tf.TensorSpec([simulator.state_size], tf.float64),
      'observation': tf.TensorSpec([simulator.observation_size], tf.float64),
      'position': tf.TensorSpec([2], tf.float64),
      'steps': tf.TensorSpec([], tf.int32),
  }


class MujocoModel(model_lib.EnvironmentModel):
  """A gymnasium v5 MuJoCo task as an `EnvironmentModel` (the simulator).

  The observation is a `PlanningObservation`: the network reads gymnasium's
  observation (float32 [O]); the search plans from the particle. Episodes
  are truncated (discount 1) after `time_limit` steps and terminated
  (discount 0) when gymnasium's task terminates.
  """

  xla_compatible = False

  def __init__(self, task: mujoco_tasks.MujocoTask, time_limit: int = 1000,
               num_threads: int = 1, check: bool = True,
               name: Optional[str] = None):
    """Creates the model.

    Args:
      task: the task.
      time_limit: steps per episode (>= 1).
      num_threads: threads stepping particles (>= 1).
      check: run `self_check` against gymnasium (once per task and
        process).
      name: module name, by default the task's.

    Raises:
      ValueError: naming the flag of an argument out of range.
      RuntimeError: if the self check fails.
    """
    super().__init__(name=name or task.name)
    if time_limit < 1:
      raise ValueError(f'time_limit must be >= 1, got {time_limit}.')
    self._time_limit = time_limit
    self._simulator = ParticleSimulator(task, num_threads)
    if check and task not in _CHECKED_TASKS:
      self_check(self._simulator)
      _CHECKED_TASKS.add(task)
    low, high = self._simulator.action_bounds
    self._action_spec = tensor_spec.BoundedTensorSpec(
        [self._simulator.action_size], tf.float32, low, high, name='action')
    # Unwrapped: tf.Module would track a dict attribute as a _DictWrapper.
    self._state_spec = self._no_dependency(_state_spec(self._simulator))

  @property
  def simulator(self) -> ParticleSimulator:
    return self._simulator

  @property
  def time_limit(self) -> int:
    return self._time_limit

  def observation_spec(self):
    return model_lib.PlanningObservation(
        network_input=tf.TensorSpec([self._simulator.observation_size],
                                    tf.float32),
        planning_state=self._state_spec)

  def action_spec(self):
    return self._action_spec

  def reset(self, batch_size, seed):

    def reset_numpy(batch_size, seed):
      rng = np.random.default_rng(np.asarray(seed, np.uint64))
      return tuple(self._simulator.reset(rng, int(batch_size)))

    particles = tf.numpy_function(
        reset_numpy, [batch_size, seed], [tf.float64] * 3, stateful=False)
    steps = tf.zeros([tf.shape(particles[0])[0]], tf.int32)
    return self._state(Particles(*particles), steps)

  def _state(self, particles, steps):
    state = {'physics': particles.physics,
             'observation': particles.observation,
             'position': particles.position, 'steps': steps}
    for name, spec in self._state_spec.items():
      state[name] = tf.ensure_shape(state[name], [None] + spec.shape.as_list())
    return state

  def step(self, state, action):

    def step_numpy(physics, observation, position, action):
      result = self._simulator.step(
          Particles(physics, observation, position), action)
      return tuple(result.particles) + (result.reward.astype(np.float32),
                                        result.terminated)

    outputs = tf.numpy_function(
        step_numpy,
        [state['physics'], state['observation'], state['position'],
         tf.cast(action, tf.float32)],
        [tf.float64] * 3 + [tf.float32, tf.bool], stateful=False)
    *particles, reward, terminated = outputs
    steps = state['steps'] + 1
    reward = tf.ensure_shape(reward, [None])
    terminated = tf.ensure_shape(terminated, [None])
    return model_lib.ModelStep(
        state=self._state(Particles(*particles), steps),
        reward=reward,
        discount=1.0 - tf.cast(terminated, tf.float32),
        done=terminated | (steps >= self._time_limit))

  def observe(self, state):
    return model_lib.PlanningObservation(
        network_input=tf.cast(state['observation'], tf.float32),
        planning_state=state)


def make_model(name: str, time_limit: int = 1000,
               num_threads: int = 1) -> MujocoModel:
  """The `MujocoModel` of the task registered as `name`."""
  return MujocoModel(mujoco_tasks.task(name), time_limit, num_threads)
