"""Reverb replay for SPO: tables, a batched sequence writer and the dataset.

The single-process loop keeps one stream of steps per environment and trains
on uniformly sampled windows of `sequence_length` consecutive steps, episode
boundaries included (the losses mask them). The Reverb path keeps the same
semantics across processes:

- `SequenceObserver` is a `tf_agents.train.Actor` observer for *batched*
  trajectories (TF-Agents' `ReverbAddTrajectoryObserver` takes one
  environment and drops windows that cross an episode end, which would drop
  every episode shorter than the window). It splits the batch into groups of
  `envs_per_item` environments, writes one stream per group and an item for
  every window of `sequence_length` steps: [T, envs_per_item, ...]. A writer
  per single environment would be the closest match, but Reverb's append
  costs about 1 ms per call whatever its size, so groups make it cheap.
- `experience_dataset` turns batches of items back into [batch_size, T]
  sequences: each batch holds `batch_size / envs_per_item` uniformly sampled
  windows, each of `envs_per_item` environments.
- `experience_table` samples items uniformly, removes the oldest first, and
  rate-limits sampling to a fixed number of sampled sequences per inserted
  step: the single-process loop's ratio of `num_epochs * batch_size`
  sequences per `num_envs * rollout_length` steps.
- `variable_table` holds the newest weights for `ReverbVariableContainer`.
"""

from typing import Any, Dict, Sequence

import numpy as np
import reverb
import tensorflow as tf
from tf_agents.experimental.distributed import reverb_variable_container
from tf_agents.specs import tensor_spec
import tree

EXPERIENCE_TABLE = 'experience'
VARIABLE_TABLE = reverb_variable_container.DEFAULT_TABLE


def item_spec(data_spec: Any, sequence_length: int,
              envs_per_item: int) -> Any:
  """Spec of an item: [sequence_length, envs_per_item] + a step's shape."""
  return tensor_spec.add_outer_dims_nest(
      tensor_spec.from_spec(data_spec), (sequence_length, envs_per_item))


def experience_table(data_spec: Any, sequence_length: int, envs_per_item: int,
                     capacity: int, samples_per_insert: float,
                     min_size_to_sample: int,
                     error_buffer: float) -> reverb.Table:
  """The table of `sequence_length`-step windows of trajectories.

  Args:
    data_spec: the agent's `collect_data_spec` (one step, no batch).
    sequence_length: steps per item (T).
    envs_per_item: environments per item.
    capacity: most items kept; the oldest are removed first.
    samples_per_insert: sampled items per inserted item, on average.
    min_size_to_sample: items needed before the first sample.
    error_buffer: how far (in samples) the ratio may stray either way
      before inserts or samples block.
  """
  signature = item_spec(data_spec, sequence_length, envs_per_item)
  return reverb.Table(
      EXPERIENCE_TABLE,
      sampler=reverb.selectors.Uniform(),
      remover=reverb.selectors.Fifo(),
      max_size=capacity,
      rate_limiter=reverb.rate_limiters.SampleToInsertRatio(
          samples_per_insert=samples_per_insert,
          min_size_to_sample=min_size_to_sample,
          error_buffer=error_buffer),
      signature=signature)


def variable_table(variables: Dict[str, Any]) -> reverb.Table:
  """The one-item table of the newest weights (`ReverbVariableContainer`)."""
  signature = tf.nest.map_structure(
      lambda variable: tf.TensorSpec(variable.shape, variable.dtype),
      variables)
  return reverb.Table(
      VARIABLE_TABLE,
      sampler=reverb.selectors.Fifo(),
      remover=reverb.selectors.Fifo(),
      max_size=1,
      rate_limiter=reverb.rate_limiters.MinSize(1),
      signature=signature)


class SequenceObserver:
  """Writes batched trajectories to Reverb as windows of consecutive steps.

  Call it with each batched `Trajectory` (arrays [num_envs, ...]), as an
  observer of `tf_agents.train.Actor` or `PyDriver`. Environments
  g * envs_per_item ... (g + 1) * envs_per_item - 1 form stream g; once it
  holds `sequence_length` steps, every new step creates an item of its last
  `sequence_length` steps ([T, envs_per_item, ...]), across
  episode boundaries, as `StatelessUniformReplayBuffer` samples them.
  """

  def __init__(self, py_client: reverb.Client, table_name: str,
               sequence_length: int, num_envs: int, envs_per_item: int = 1):
    """Creates one trajectory writer per group of environments.

    Args:
      py_client: client of the replay server.
      table_name: table the items go to.
      sequence_length: steps per item (>= 1).
      num_envs: batch size of the observed trajectories.
      envs_per_item: environments per stream and item; divides `num_envs`.

    Raises:
      ValueError: naming the argument that is out of range.
    """
    for name, value in (('sequence_length', sequence_length),
                        ('num_envs', num_envs),
                        ('envs_per_item', envs_per_item)):
      if value < 1:
        raise ValueError(f'{name} must be >= 1, got {value}.')
    if num_envs % envs_per_item:
      raise ValueError(f'envs_per_item={envs_per_item} must divide '
                       f'num_envs={num_envs}.')
    self._table_name = table_name
    self._sequence_length = sequence_length
    self._num_envs = num_envs
    self._envs_per_item = envs_per_item
    self._writers = [
        py_client.trajectory_writer(num_keep_alive_refs=sequence_length)
        for _ in range(num_envs // envs_per_item)]
    self._steps = 0

  def __call__(self, trajectory: Any) -> None:
    """Appends each group's slice of the batch to its stream; writes items."""
    leaves = tree.flatten(trajectory)
    batch = {np.shape(leaf)[0] for leaf in leaves}
    if batch != {self._num_envs}:
      raise ValueError(f'expected trajectories of batch {self._num_envs}, '
                       f'got leading dimensions {sorted(batch)}.')
    self._steps += 1
    due = self._steps >= self._sequence_length
    width = self._envs_per_item
    for g, writer in enumerate(self._writers):
      writer.append(tree.unflatten_as(
          trajectory, [np.asarray(leaf[g * width:(g + 1) * width])
                       for leaf in leaves]))
      if due:
        writer.create_item(
            self._table_name, priority=1.0,
            trajectory=tree.map_structure(
                lambda column: column[-self._sequence_length:],
                writer.history))

  def flush(self) -> None:
    """Blocks until every created item has reached the server."""
    for writer in self._writers:
      writer.flush()

  def close(self) -> None:
    for writer in self._writers:
      writer.end_episode(clear_buffers=True)
      writer.close()


def _merge_envs(column: tf.Tensor) -> tf.Tensor:
  """[items, T, envs_per_item, ...] -> [items * envs_per_item, T, ...]."""
  perm = [0, 2, 1] + list(range(3, column.shape.rank))
  merged = tf.transpose(column, perm)
  return tf.reshape(merged, tf.concat(
      [[-1], tf.shape(merged)[2:]], axis=0))


def experience_dataset(data_spec: Any, server_address: str,
                       batch_size: int, sequence_length: int,
                       envs_per_item: int,
                       table_name: str = EXPERIENCE_TABLE) -> tf.data.Dataset:
  """Batches of [batch_size, sequence_length] sequences, with sample info.

  Each batch is `batch_size / envs_per_item` uniformly sampled items, each
  split into its environments' sequences. Elements are
  `(trajectory, SampleInfo)`, what `tf_agents.train.Learner` unpacks.

  Raises:
    ValueError: if `envs_per_item` does not divide `batch_size`.
  """
  if batch_size % envs_per_item:
    raise ValueError(f'envs_per_item={envs_per_item} must divide '
                     f'batch_size={batch_size}.')
  spec = item_spec(data_spec, sequence_length, envs_per_item)
  items = batch_size // envs_per_item
  dataset = reverb.TrajectoryDataset(
      server_address, table_name,
      dtypes=tf.nest.map_structure(lambda s: s.dtype, spec),
      shapes=tf.nest.map_structure(lambda s: s.shape, spec),
      max_in_flight_samples_per_worker=2 * items)
  static_batch = [batch_size, sequence_length]
  return dataset.batch(items, drop_remainder=True).map(
      lambda sample: (tf.nest.map_structure(
          lambda column: tf.ensure_shape(
              _merge_envs(column), static_batch + column.shape[3:]),
          sample.data), sample.info)).prefetch(2)


def tables(data_spec: Any, variables: Dict[str, Any], sequence_length: int,
           envs_per_item: int, capacity: int, samples_per_insert: float,
           min_size_to_sample: int) -> Sequence[reverb.Table]:
  """The experience and variable tables of a replay server.

  The error buffer allows a few learner iterations of slack either way, so
  an actor's pause (or death) does not stall the learner at once.
  """
  error_buffer = max(10.0 * samples_per_insert * min_size_to_sample,
                     2.0 * min_size_to_sample)
  return [experience_table(data_spec, sequence_length, envs_per_item,
                           capacity, samples_per_insert, min_size_to_sample,
                           error_buffer),
          variable_table(variables)]
