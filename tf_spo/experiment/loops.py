"""The compiled pieces of a training iteration: collect, then train.

`make_search_loop` is the off-policy loop of the searching agents (replayed
sequences, under a tf.distribute strategy), `make_ppo_loop` PPO's on-policy
one; `algorithms` says which an algorithm runs. A run (`run.Run`) gives them
its environment, agent, replay buffer, counters and strategy.
"""

import time
from typing import Any, Callable, NamedTuple, Optional

import tensorflow as tf
from tf_agents.trajectories import trajectory
from tf_agents.utils import common as tfa_common


def replica_part(nest):
  """This replica's share of the outer dimension of a nest of tensors.

  Called in a replica of a strategy with R replicas: replica r gets rows
  [r * n, (r + 1) * n) of every [R * n, ...] tensor (static shapes, as TPUs
  need); without a strategy, the nest itself.
  """
  context = tf.distribute.get_replica_context()
  replicas = context.num_replicas_in_sync
  if replicas == 1:
    return nest
  return tf.nest.map_structure(
      lambda x: tf.gather(tf.reshape(
          x, [replicas, x.shape[0] // replicas, *x.shape[1:]]),
                          context.replica_id_in_sync_group), nest)


class Loop(NamedTuple):
  """The compiled pieces of a training iteration (see `make_loop`).

  `train_steps_per_iteration` is how many `train_step()` calls follow a
  `collect()` (None: `num_epochs`).
  """
  collect: Callable[[], None]
  train_step: Callable[[], Any]
  ready_to_train: Callable[[], bool]
  train_steps_per_iteration: Optional[int] = None


def make_collect(run, act: Callable[[Any], Any],
                 env_action: Callable[[Any], Any] = lambda action: action
                 ) -> Callable[[], None]:
  """The compiled collection of a loop.

  Args:
    run: the run whose environments step into its replay buffer.
    act: time step -> the collect policy's `PolicyStep`.
    env_action: action -> the action the environment steps with (the
      trajectories keep the policy's).

  Returns:
    `collect()`: every environment steps `rollout_length` times into the
    buffer, and the env step counter advances.
  """
  env, replay_buffer = run.env, run.replay_buffer
  steps_per_iteration = run.settings['num_envs'] * run.settings[
      'rollout_length']

  def step(i, time_step):
    action_step = act(time_step)
    next_time_step = env.step(env_action(action_step.action))
    replay_buffer.add_batch(trajectory.from_transition(
        time_step, action_step, next_time_step))
    return i + 1, next_time_step

  def collect():
    """Steps every environment `rollout_length` times into the buffer."""
    tf.while_loop(lambda i, _: i < run.settings['rollout_length'], step,
                  (tf.constant(0), env.current_time_step()))
    run.env_steps.assign_add(steps_per_iteration)

  # Without autograph: the loop is explicit, and converting the policy's and
  # environment's code on every trace took most of a short run's start-up.
  return tf.function(collect, autograph=False)


def make_search_loop(run) -> Loop:
  """The off-policy loop of a searching agent (SPO, Gumbel MuZero).

  An iteration is `collect()` (every environment steps `rollout_length`
  times with the collect search policy, into the replay buffer), then, once
  `ready_to_train()`, `num_epochs` calls of `train_step()` (one gradient step
  on [batch_size, sequence_length] replayed sequences, returning its
  `LossInfo`).

  Under a strategy of R replicas (`run.strategy`), replica r searches for
  environments [r * num_envs / R, (r + 1) * num_envs / R) with its own random
  stream and trains on the same share of each replayed batch; the actions
  are gathered for the environment step, and the returned `LossInfo` is
  summed over the replicas (each replica's loss is its share of the global
  batch's).
  """
  settings, agent = run.settings, run.agent
  replay_buffer, strategy = run.replay_buffer, run.strategy
  frames_needed = settings['num_envs'] * settings['sequence_length']

  def act(time_step):
    # (`Strategy.gather` takes one tensor: given a nest, it returns the
    # first replica's.)
    return tf.nest.map_structure(
        lambda x: strategy.gather(x, axis=0),
        strategy.run(lambda time_step: agent.collect_policy.action(
            replica_part(time_step)), args=(time_step,)))

  collect = make_collect(run, act)

  @tfa_common.function
  def train_step():
    """One gradient step on sequences replayed from the buffer."""
    experience = replay_buffer.sample_sequences(settings['batch_size'],
                                                settings['sequence_length'])
    return strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(
        lambda experience: agent.train(replica_part(experience)),
        args=(experience,)), axis=None)

  def ready_to_train():
    return bool(replay_buffer.num_frames() >= frames_needed)

  return Loop(collect, train_step, ready_to_train)


def make_ppo_loop(run) -> Loop:
  """The on-policy loop of `algorithm=ppo`.

  `collect()` steps every environment `rollout_length` times with the PPO
  collect policy (continuous actions clipped into the bounds for the
  environment, kept unclipped in the trajectories) into the replay buffer,
  which holds exactly one rollout (`algorithms.PPO.replay_length`); then one
  `train_step()` (`train_steps_per_iteration` = 1) gives that whole
  rollout, [num_envs, rollout_length] in time order, to `agent.train`,
  which takes its `num_epochs` gradient steps, and returns its `LossInfo`.
  The next `collect()` overwrites the rollout. Runs on the default strategy
  only (`algorithms.PPO.check`).
  """
  settings, agent, env = run.settings, run.agent, run.env
  replay_buffer = run.replay_buffer
  rollout_length = settings['rollout_length']
  steps_per_iteration = settings['num_envs'] * rollout_length
  action_spec = env.action_spec()

  def env_action(action):
    if action_spec.dtype.is_floating:
      return tfa_common.clip_to_spec(action, action_spec)
    return action

  collect = make_collect(run, agent.collect_policy.action, env_action)

  @tfa_common.function
  def train_step():
    """`num_epochs` PPO gradient steps on the last rollout."""
    return agent.train(replay_buffer.newest_steps(rollout_length))

  def ready_to_train():
    return bool(replay_buffer.num_frames() >= steps_per_iteration)

  return Loop(collect, train_step, ready_to_train,
              train_steps_per_iteration=1)


class IterationTimes(NamedTuple):
  """What one `run_iteration` call did and how long its two halves took.

  `loss_info` is the last `LossInfo`, None while the buffer is still too
  small to train; `collect_s` and `train_s` are wall-clock seconds.
  """
  loss_info: Any
  collect_s: float
  train_s: float


def run_iteration(loop: Loop, num_epochs: int) -> IterationTimes:
  """Runs one training iteration and times its halves.

  Collects one rollout with the search, then takes `num_epochs` gradient
  steps once the buffer holds enough sequences (or the loop's
  `train_steps_per_iteration` train steps: one for PPO).
  """
  start = time.perf_counter()
  loop.collect()
  collected = time.perf_counter()
  loss_info = None
  if loop.ready_to_train():
    for _ in range(loop.train_steps_per_iteration or num_epochs):
      loss_info = loop.train_step()
  return IterationTimes(loss_info, collected - start,
                        time.perf_counter() - collected)
