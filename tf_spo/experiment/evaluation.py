"""Scoring policies on held-out episodes, and the run's eval.csv."""

import os
import time
from typing import Any, Callable, Dict, Optional, Tuple

import numpy as np
import tensorflow as tf
from tf_agents.trajectories import time_step as ts

from environments import model as model_lib
from environments import registry
from tf_spo import policy as policy_lib
from tf_spo.experiment import algorithms
from tf_spo.experiment import builders

EVAL_SEED_OFFSET = 1_000_003
# Evaluation steps per compiled call (progress is printed between calls).
_EVAL_CHUNK_STEPS = 50


class Evaluator:
  """Plays held-out episodes of one policy in one model.

  The episode loop is a `tf.function` traced on the first call and reused by
  later calls with the same number of episodes, so a training run that
  evaluates every `eval_interval` steps traces (and compiles) it once.
  Episodes start from `model.reset(num_episodes, [seed, 0])`, so the same
  seed gives the same held-out start states every time. A search policy also
  gets a stateless seed per step, folded from `seed` and the step number, so
  its scores are a function of its weights and `seed` alone, not of how often
  its random generator ran before (a SavedModel takes no seed and uses its
  own generator). The steps run in a compiled `tf.while_loop`,
  `_EVAL_CHUNK_STEPS` per call.
  """

  def __init__(self, policy: Any, model, network_input_only: bool = False):
    """Builds the episode loop (traced on the first call).

    Args:
      policy: anything with `action(time_step)` made of TF ops, returning a
        step with `.action`: a `TFPolicy` or a policy loaded from a
        SavedModel. Its variables are read when it plays, so weights trained
        between calls are the ones scored.
      model: an `EnvironmentModel`.
      network_input_only: give the policy only the network input of the
        observations (an exported network policy).
    """
    self._model = model
    self._observe = model.observe
    if network_input_only:
      self._observe = lambda state: model_lib.network_input(
          model.observe(state))
    self._policy = policy
    self.play = tf.function(self._play, autograph=False)

  def _act(self, time_step, step, seed):
    if isinstance(self._policy, policy_lib.SearchPolicy):
      policy_seed = tf.stack([seed, tf.constant(1, tf.int64)])
      step_seed = tf.random.experimental.stateless_fold_in(policy_seed, step)
      return self._policy.action(time_step, seed=step_seed).action
    return self._policy.action(time_step).action

  def _play(self, state, time_step, returns, lengths, finished, first_step,
            num_steps, seed):
    """Plays up to `num_steps` steps, or until every episode has ended."""

    def body(step, *carry):
      state, time_step, returns, lengths, finished = carry
      model_step = self._model.step(
          state, self._act(time_step, first_step + step, seed))
      active = ~finished
      next_carry = (
          model_step.state,
          ts.transition(self._observe(model_step.state), model_step.reward,
                        model_step.discount),
          returns + tf.where(active, tf.cast(model_step.reward, tf.float64),
                             0.0),
          lengths + tf.cast(active, tf.int64),
          finished | model_step.done)
      # A simulator behind tf.numpy_function loses the static batch size.
      return (step + 1,) + tf.nest.map_structure(
          lambda new, old: tf.ensure_shape(new, old.shape), next_carry, carry)

    def not_done(step, *carry):
      return (step < num_steps) & ~tf.reduce_all(carry[-1])

    return tf.while_loop(
        not_done, body,
        (tf.constant(0), state, time_step, returns, lengths, finished))

  def __call__(self, num_episodes: int, seed: int, max_steps: int = 10_000,
               progress_seconds: float = 30.0) -> Dict[str, float]:
    """Plays one episode in each of `num_episodes` environments.

    Args:
      num_episodes: number of episodes, played as one batch.
      seed: seed of the start states (and of a search policy's steps).
      max_steps: safety cap on episode length (every model ends its episodes
        at its own time limit first: Snake after 4000 steps).
      progress_seconds: print progress (steps, episodes finished, seconds)
        between calls, at most this often, while episodes are running.

    Returns:
      Dict with `solve_rate` (fraction of episodes with a positive return:
      for the cube, the fraction solved), `mean_return` and `mean_length`.
    """
    seed_tensor = tf.constant(seed, tf.int64)
    state = self._model.reset(num_episodes,
                              tf.constant([seed, 0], tf.int64))
    time_step = ts.restart(self._observe(state), num_episodes)
    finished = tf.zeros([num_episodes], tf.bool)
    returns = tf.zeros([num_episodes], tf.float64)
    lengths = tf.zeros([num_episodes], tf.int64)
    start = last_print = time.time()
    step = 0
    while step < max_steps:
      played, state, time_step, returns, lengths, finished = self.play(
          state, time_step, returns, lengths, finished, tf.constant(step),
          tf.constant(min(_EVAL_CHUNK_STEPS, max_steps - step)), seed_tensor)
      step += int(played)
      if bool(tf.reduce_all(finished)):
        break
      if time.time() - last_print >= progress_seconds:
        last_print = time.time()
        done = int(tf.reduce_sum(tf.cast(finished, tf.int32)))
        print(f'[eval] {step} steps, {done}/{num_episodes} episodes '
              f'finished, {time.time() - start:.0f}s', flush=True)
    returns = returns.numpy()
    return {
        'solve_rate': float(np.mean(returns > 0)),
        'mean_return': float(np.mean(returns)),
        'mean_length': float(np.mean(lengths.numpy())),
    }


def evaluate_policy(policy: Any, model, num_episodes: int, seed: int,
                    max_steps: int = 10_000,
                    network_input_only: bool = False,
                    progress_seconds: float = 30.0) -> Dict[str, float]:
  """One `Evaluator(policy, model, network_input_only)` call (see there)."""
  return Evaluator(policy, model, network_input_only)(
      num_episodes, seed, max_steps, progress_seconds)


def evaluate_levels(policy: Any, settings: Dict[str, Any],
                    max_level: Optional[int], num_episodes: int, seed: int,
                    network_input_only: bool = False, model: Any = None
                    ) -> Dict[int, Dict[str, float]]:
  """The env's metrics of `policy`, per level of its evaluation sweep.

  Args:
    policy: a `TFPolicy` or a policy loaded from a SavedModel.
    settings: run settings; `settings['env']` picks the task.
    max_level: evaluate the env's sweep setting at 1..max_level; None (or an
      env without a sweep) evaluates the run's own evaluation episodes, as
      level 0.
    num_episodes: episodes per level.
    seed: seed of the held-out start states.
    network_input_only: the policy reads the network input only.
    model: the evaluation model of `settings` if already built; played at
      level 0 instead of building it again.

  Returns:
    {level: {'mean_return', 'mean_length'[, 'solve_rate']}}.
  """
  sweep = registry.entry(settings['env']).eval_sweep
  levels = range(1, max_level + 1) if sweep and max_level else [0]
  results = {}
  for level in levels:
    level_settings = dict(settings, **({sweep: level} if level else {}))
    level_model = (model if model is not None and not level else
                   builders.make_model(level_settings, evaluation=True))
    scores = evaluate_policy(policy, level_model, num_episodes, seed,
                             network_input_only=network_input_only)
    results[level] = {name: scores[name] for name in
                      builders.metrics(settings) + ('mean_length',)}
  return results


def reads_network_input_only(saved_policy, model) -> bool:
  """Whether a loaded policy takes the network input of planning env `model`."""
  if not isinstance(model.observation_spec(), model_lib.PlanningObservation):
    return False
  _, inputs = saved_policy.signatures['action'].structured_input_signature
  return not any('planning_state' in spec.name for spec in inputs.values())


def play_gymnasium(policy: Any, model, settings: Dict[str, Any],
                   num_episodes: int, seed: int,
                   network_input_only: bool = False
                   ) -> Dict[int, Dict[str, float]]:
  """The mean and spread of `policy`'s returns in gymnasium's own task.

  Plays the registry's `play_gymnasium` of `settings['env']` (the pendulum
  and the MuJoCo tasks): one gymnasium environment per episode.

  Returns:
    {0: {'mean_return', 'std_return'}}, as `evaluate_levels` at level 0.

  Raises:
    ValueError: naming env if its task has no gymnasium environment.
  """
  play = registry.entry(settings['env']).play_gymnasium
  if play is None:
    have = sorted(name for name, entry in registry.ENVS.items()
                  if entry.play_gymnasium)
    raise ValueError(f'env={settings["env"]} has no gymnasium environment to '
                     f'play; those that have: {have}.')
  returns = play(policy, model, num_episodes, seed, network_input_only)
  return {0: {'mean_return': float(np.mean(returns)),
              'std_return': float(np.std(returns))}}


COUNTERS = ('env_steps', 'wall_clock_s', 'train_steps')


def policies(settings: Dict[str, Any]) -> Tuple[str, ...]:
  """The policies a run evaluates and exports, the one that acts first.

  ('search', 'network') for an algorithm with a search; ('network',) for
  one without (PPO), whose policy is its network.
  """
  has_search = algorithms.search_config(settings) is not None
  return ('search', 'network') if has_search else ('network',)


def eval_columns(settings) -> tuple:
  """Columns of eval.csv (and the scores of summary.json).

  The counters, the env's metrics for each of the run's `policies`, and the
  episode length of the acting policy: a policy the algorithm does not have
  has no column.
  """
  kinds = policies(settings)
  return (COUNTERS +
          tuple(f'{kind}_{metric}' for metric in builders.metrics(settings)
                for kind in kinds) +
          (f'{kinds[0]}_mean_length',))


class EvalLog:
  """Appends evaluation results to <root_dir>/eval.csv.

  An eval.csv written with other columns is rewritten with `columns` if it
  has them all: a PPO run's from before its duplicate search_ columns were
  dropped (its network's scores; `search_mean_length` was its network's
  episode length).
  """

  def __init__(self, root_dir, columns):
    self._path = os.path.join(root_dir, 'eval.csv')
    self._columns = columns
    if not tf.io.gfile.exists(self._path):
      with tf.io.gfile.GFile(self._path, 'w') as f:
        f.write(','.join(columns) + '\n')
      return
    with tf.io.gfile.GFile(self._path) as f:
      header, *rows = f.read().splitlines()
    old = header.split(',')
    if old == list(columns):
      return
    sources = [column if column in old else
               column.replace('network_', 'search_', 1)
               for column in columns]
    missing = sorted(column for column, source in zip(columns, sources)
                     if source not in old)
    if missing:
      raise ValueError(f'{self._path} has no columns {missing}: it is not '
                       'the eval.csv of this run.')
    keep = [old.index(source) for source in sources]
    with tf.io.gfile.GFile(self._path, 'w') as f:
      f.write('\n'.join([','.join(columns)] + [
          ','.join(row.split(',')[i] for i in keep) for row in rows]) + '\n')

  def drop_rows_after(self, env_steps: int) -> None:
    """Drops rows past `env_steps`: a resumed run evaluates them again."""
    with tf.io.gfile.GFile(self._path) as f:
      header, *rows = f.read().splitlines()
    kept = [row for row in rows if int(row.split(',')[0]) <= env_steps]
    if len(kept) < len(rows):
      with tf.io.gfile.GFile(self._path, 'w') as f:
        f.write('\n'.join([header] + kept) + '\n')

  def row_at(self, env_steps: int) -> Optional[Dict[str, Any]]:
    """The last row at `env_steps` (counters as ints), or None."""
    with tf.io.gfile.GFile(self._path) as f:
      header, *rows = f.read().splitlines()
    names = header.split(',')
    for row in reversed(rows):
      values = row.split(',')
      if int(values[0]) == env_steps:
        return {name: (int(value) if name in ('env_steps', 'train_steps')
                       else float(value))
                for name, value in zip(names, values)}
    return None

  def last_train_step(self) -> Optional[int]:
    """The train step of the last row; None before the first."""
    with tf.io.gfile.GFile(self._path) as f:
      header, *rows = f.read().splitlines()
    if not rows:
      return None
    return int(rows[-1].split(',')[header.split(',').index('train_steps')])

  def append(self, row: Dict[str, float]) -> None:
    with tf.io.gfile.GFile(self._path, 'a') as f:
      f.write(','.join(str(row[c]) if isinstance(row[c], int) else
                       f'{row[c]:.4f}' for c in self._columns) + '\n')


def policy_scorer(agent, settings: Dict[str, Any]
                  ) -> Callable[[], Dict[str, float]]:
  """A function scoring the run's policies on held-out episodes.

  Its evaluation model and episode loops are built once: a run that scores
  its policies every `eval_interval` env steps traces each loop once. The
  policies are the run's `policies`: the search (`agent.policy`) and the
  network (`agent.network_policy`), or the network alone.

  Args:
    agent: the agent whose policies play (with their current weights).
    settings: settings of the held-out evaluation episodes (the run's own,
      or with a different level of the env's evaluation sweep).

  Returns:
    A function of no arguments returning the score columns of
    `eval_columns` ({'<policy>_<metric>', ..., '<acting policy>_mean_length'})
    over `settings['eval_episodes']` episodes.
  """
  model = builders.make_model(settings, evaluation=True)
  seed = settings['seed'] + EVAL_SEED_OFFSET
  kinds = policies(settings)
  evaluators = {kind: Evaluator(agent.policy if kind == 'search'
                                else agent.network_policy, model)
                for kind in kinds}

  def scores() -> Dict[str, float]:
    result = {}
    for kind, evaluator in evaluators.items():
      episodes = evaluator(settings['eval_episodes'], seed)
      result.update({f'{kind}_{metric}': episodes[metric]
                     for metric in builders.metrics(settings)})
      if kind == kinds[0]:
        result[f'{kind}_mean_length'] = episodes['mean_length']
    return result

  return scores


def evaluate(run,
             scores: Callable[[], Dict[str, float]]) -> Dict[str, float]:
  """An eval.csv row: the run's counters and `scores()` of its policies."""
  return {
      'env_steps': int(run.env_steps.numpy()),
      'wall_clock_s': float(run.wall_clock.numpy()),
      'train_steps': int(run.agent.train_step_counter.numpy()),
      **scores(),
  }


def level_scores(agent, settings: Dict[str, Any],
                 final: Dict[str, float]) -> Dict[str, Any]:
  """The policies' metrics at the env's summary levels.

  For the cube: the solve rates at 3 and 7 scramble moves. A level equal to
  the run's own evaluation episodes reuses `final`, the last evaluation.

  Args:
    agent: the agent whose policies play.
    settings: the run's settings.
    final: the run's last evaluation (an eval.csv row).

  Returns:
    {'by_<sweep setting>': {'<level>': {'search_<metric>', ...}}}, empty for
    an env without summary levels.
  """
  entry = registry.entry(settings['env'])
  if not entry.summary_levels:
    return {}
  by_level = {}
  for level in entry.summary_levels:
    if level == settings[entry.eval_sweep]:
      scores = {column: final[column]
                for column in eval_columns(settings)[len(COUNTERS):]}
    else:
      scores = policy_scorer(
          agent, dict(settings, **{entry.eval_sweep: level}))()
    by_level[str(level)] = scores
  return {f'by_{entry.eval_sweep}': by_level}


