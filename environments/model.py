"""Environment models and a TF-Agents environment that runs them.

An `EnvironmentModel` is a batched, stateless description of an environment:
its methods are pure functions from tensors to tensors, with no variables, so
the same model can be stepped by `ModelEnvironment` (which keeps the state in
variables and exposes the TF-Agents `TFEnvironment` interface; wrapped by
`ModelPyEnvironment` as a `PyEnvironment` for `tf_agents.train.Actor`) and
used as the planning model inside an XLA-compiled search, where particles
are simply a larger batch and resampling is a gather over the state nest.
"""

import abc
from typing import Any, NamedTuple

import numpy as np
import tensorflow as tf
from tf_agents.environments import py_environment
from tf_agents.environments import tf_environment
from tf_agents.specs import tensor_spec
from tf_agents.trajectories import time_step as ts


class ModelStep(NamedTuple):
  """The result of `EnvironmentModel.step`.

  Attributes:
    state: Nest of tensors with leading dimension [B], the state after the
      step.
    reward: float32 [B], the reward received for the step.
    discount: float32 [B], 0.0 where the episode terminated on this step, else
      1.0.
    done: bool [B], whether the episode is over after this step, by termination
      or truncation.
  """
  state: Any
  reward: tf.Tensor
  discount: tf.Tensor
  done: tf.Tensor


class PlanningObservation(NamedTuple):
  """An observation carrying the true planning state beside the network's.

  Models whose observation does not determine their state (a time limit, a
  simulator's full state) observe this: networks and exported network
  policies read only `network_input`; the search plans from
  `planning_state`, the model's state nest.

  Attributes:
    network_input: nest of tensors [B, ...], the network's input.
    planning_state: the model's state, nest of tensors [B, ...].
  """
  network_input: Any
  planning_state: Any


def network_input(observation):
  """The part of an observation (or observation spec) a network reads."""
  if isinstance(observation, PlanningObservation):
    return observation.network_input
  return observation


def planning_state(model, observation):
  """The state the search plans from: carried, or rebuilt by the model."""
  if isinstance(observation, PlanningObservation):
    return observation.planning_state
  return model.state_from_observation(observation)


class EnvironmentModel(tf.Module, metaclass=abc.ABCMeta):
  """Abstract base class for batched, stateless environment models.

  All methods are pure functions of their inputs: a model holds no variables
  and no random state (randomness comes from explicit stateless seeds). Every
  method must run with a batch size that is unknown at trace time; all other
  dimensions are static. Pure-TF models also run under
  `tf.function(jit_compile=True)`; a model that cannot (a simulator behind
  `tf.numpy_function`) sets `xla_compatible = False`, and the search then
  runs as a plain `tf.function`.

  The observation is either the network input itself, from which
  `state_from_observation` rebuilds the state, or a `PlanningObservation`
  carrying the state beside the network input.
  """

  # Whether every method compiles with XLA; the search is compiled if so.
  xla_compatible = True

  @abc.abstractmethod
  def observation_spec(self):
    """Returns the nest of `TensorSpec`s of one observation, without batch."""

  @abc.abstractmethod
  def action_spec(self):
    """Returns the spec of one action, without batch dim.

    A scalar integer `BoundedTensorSpec` with minimum 0 (discrete actions)
    or a float `BoundedTensorSpec` of rank 1 (continuous actions).
    """

  def network_input_spec(self):
    """The spec of the part of an observation that networks read."""
    return network_input(self.observation_spec())

  @abc.abstractmethod
  def reset(self, batch_size, seed):
    """Draws initial states of new episodes.

    Args:
      batch_size: Python int or int32 scalar tensor, the number B of episodes.
      seed: int32 or int64 tensor of shape [2], the stateless random seed.

    Returns:
      The state: nest of tensors with leading dimension [B].
    """

  @abc.abstractmethod
  def step(self, state, action):
    """Applies one action in every episode of the batch.

    Args:
      state: Nest of tensors with leading dimension [B].
      action: [B, ...] actions of `action_spec()`.

    Returns:
      A `ModelStep` with the next state, reward, discount and done flag.
    """

  @abc.abstractmethod
  def observe(self, state):
    """Returns the observation of a state.

    Args:
      state: Nest of tensors with leading dimension [B].

    Returns:
      Nest of tensors [B, ...] matching `observation_spec()`.
    """

  def state_from_observation(self, observation):
    """Rebuilds a planning state from an observation.

    Used by planners, which only see observations, for models whose
    observation is not a `PlanningObservation`. The result must satisfy
    `observe(state_from_observation(observation)) == observation`.

    Args:
      observation: Nest of tensors [B, ...] matching `observation_spec()`.

    Returns:
      The state: nest of tensors with leading dimension [B].
    """
    raise NotImplementedError(
        f'{type(self).__name__} must implement state_from_observation or '
        'observe a PlanningObservation.')


def select(condition, x, y):
  """Selects, per batch element, between two nests of the same structure.

  Args:
    condition: bool [B].
    x: Nest of tensors [B, ...], taken where `condition` is true.
    y: Nest of tensors [B, ...] with the structure of `x`, taken elsewhere.

  Returns:
    Nest of tensors [B, ...] with the structure of `x`.
  """

  def select_tensor(a, b):
    broadcast_condition = tf.reshape(condition, [-1] + [1] * (a.shape.rank - 1))
    return tf.where(broadcast_condition, a, b)

  return tf.nest.map_structure(select_tensor, x, y)


class ModelEnvironment(tf_environment.TFEnvironment, tf.Module):
  """A batched TF-Agents environment that steps an `EnvironmentModel`.

  The current model state, the current `TimeStep` and a step counter are held
  in variables, so the environment works in eager mode and inside
  `tf.function`, and can be saved with `tf.train.Checkpoint(env=...)`. Random
  seeds are derived statelessly from the constructor seed and the counter, so
  a run is reproducible and resumes identically after a checkpoint restore
  into an environment built with the same arguments.

  A `TimeStep` is LAST when the model reports `done`; its discount is the
  model's discount (0.0 on termination, 1.0 on truncation). Stepping an
  environment whose current time step is LAST ignores its action and starts a
  new episode instead, returning a FIRST time step; the other environments of
  the batch are stepped as usual.
  """

  def __init__(self, model, batch_size, seed=0, name='model_environment'):
    """Creates the environment and starts a first episode in each slot.

    Must be called eagerly (it creates variables).

    Args:
      model: An `EnvironmentModel`.
      batch_size: Python int, the number of environments stepped in parallel.
      seed: Python int, the base of the stateless random seeds.
      name: Name of the module.
    """
    tf.Module.__init__(self, name=name)
    tf_environment.TFEnvironment.__init__(
        self,
        time_step_spec=ts.time_step_spec(model.observation_spec()),
        action_spec=model.action_spec(),
        batch_size=batch_size,
    )
    self._model = model
    self._seed = seed
    self._counter = tf.Variable(0, dtype=tf.int64, trainable=False,
                                name='counter')
    state, time_step = self._restart()

    def variable(value):
      return tf.Variable(value, trainable=False)

    state_variables = tf.nest.map_structure(variable, state)
    time_step_variables = tf.nest.map_structure(variable, time_step)
    # tf.Module wraps containers of variables assigned to it in trackable
    # proxies, which tf.nest would carry over into the values read back. Keep
    # the structured views unwrapped and track a flat list for checkpointing.
    self._state_variables = self._no_dependency(state_variables)
    self._time_step_variables = self._no_dependency(time_step_variables)
    self._variables = tf.nest.flatten((state_variables, time_step_variables))

  @property
  def model(self):
    """The `EnvironmentModel` stepped by this environment."""
    return self._model

  def _next_seed(self):
    """Returns a fresh int64 [2] stateless seed and advances the counter."""
    seed = tf.stack([tf.constant(self._seed, tf.int64), self._counter])
    self._counter.assign_add(1)
    return seed

  def _restart(self):
    """Draws new episodes for the whole batch.

    Returns:
      A tuple (state, time_step) of the new model state and its FIRST
      `TimeStep`, both with leading dimension [batch_size].
    """
    state = self._model.reset(self._batch_size, self._next_seed())
    time_step = ts.restart(self._model.observe(state), self._batch_size)
    return state, time_step

  def _assign(self, state, time_step):
    """Stores a new current state and `TimeStep`."""
    tf.nest.map_structure(lambda variable, value: variable.assign(value),
                          (self._state_variables, self._time_step_variables),
                          (state, time_step))

  def _current_time_step(self):
    return tf.nest.map_structure(tf.identity, self._time_step_variables)

  def _reset(self):
    state, time_step = self._restart()
    self._assign(state, time_step)
    return time_step

  def _step(self, action):
    """Steps every environment, restarting those whose time step is LAST.

    Args:
      action: int32 [batch_size], the actions.

    Returns:
      The new `TimeStep`, with leading dimension [batch_size].
    """
    is_last = tf.equal(self._time_step_variables.step_type, ts.StepType.LAST)
    state = tf.nest.map_structure(tf.identity, self._state_variables)
    model_step = self._model.step(state, action)
    stepped_time_step = ts.TimeStep(
        step_type=tf.where(model_step.done, ts.StepType.LAST,
                           ts.StepType.MID),
        reward=model_step.reward,
        discount=model_step.discount,
        observation=self._model.observe(model_step.state),
    )
    restart_state, restart_time_step = self._restart()
    state = select(is_last, restart_state, model_step.state)
    time_step = select(is_last, restart_time_step, stepped_time_step)
    self._assign(state, time_step)
    return time_step


class ModelPyEnvironment(py_environment.PyEnvironment):
  """A batched `PyEnvironment` that steps an `EnvironmentModel`.

  The episodes of a `ModelEnvironment` with the same arguments, as NumPy
  arrays: for `tf_agents.train.Actor`, `PyDriver` and Reverb observers, which
  need a `PyEnvironment`, with the collect policy wrapped in
  `PyTFEagerPolicy`. Each step runs one compiled TF function (with XLA for
  models that compile). Give each actor its own `seed`: the episodes are a
  function of the seed, so two actors with different seeds draw different
  episodes.

  Episodes restart as in `ModelEnvironment`: the step after a LAST time step
  ignores its action and returns a FIRST one.
  """

  def __init__(self, model, batch_size, seed=0):
    """Creates the environment and starts a first episode in each slot.

    Args:
      model: An `EnvironmentModel`.
      batch_size: Python int, the number of environments stepped in parallel.
      seed: Python int, the base of the stateless random seeds.
    """
    super().__init__(handle_auto_reset=False)
    self._environment = ModelEnvironment(model, batch_size, seed)
    self._step_fn = tf.function(self._environment.step,
                                jit_compile=model.xla_compatible,
                                autograph=False)
    self._reset_fn = tf.function(self._environment.reset,
                                 jit_compile=model.xla_compatible,
                                 autograph=False)
    self._time_step_spec = tensor_spec.to_nest_array_spec(
        self._environment.time_step_spec())
    self._action_spec = tensor_spec.to_nest_array_spec(
        self._environment.action_spec())

  @property
  def batched(self):
    return True

  @property
  def batch_size(self):
    return self._environment.batch_size

  def observation_spec(self):
    return self._time_step_spec.observation

  def action_spec(self):
    return self._action_spec

  def time_step_spec(self):
    return self._time_step_spec

  def _reset(self):
    return tf.nest.map_structure(np.asarray, self._reset_fn())

  def _step(self, action):
    """Steps every environment, restarting those whose time step is LAST.

    Args:
      action: [batch_size, ...] NumPy actions of `action_spec()`.

    Returns:
      The new `TimeStep` of NumPy arrays with leading dimension [batch_size].
    """
    action = tf.nest.map_structure(
        lambda spec, value: tf.convert_to_tensor(value, spec.dtype),
        self._environment.action_spec(), action)
    return tf.nest.map_structure(np.asarray, self._step_fn(action))
