"""Benchmarks: the SMC search against its network calls, and the train loop.

`benchmark` times the SMC search (XLA-compiled for pure-TF models) with a
randomly initialised network against the same network evaluations alone and
the search's model steps alone; `simulator_benchmark` the MuJoCo planning
model against raw `mujoco.rollout`; `train_benchmark` steady-state
iterations of the training loop against their FLOP ideal at a matmul peak
measured in the same run. `launch.benchmark` is their command line.
"""

import functools
import statistics
import tempfile
import time
from typing import Any, Callable, Dict, List, Optional

import mujoco
from mujoco import rollout as mujoco_rollout
import numpy as np
import tensorflow as tf

from environments import model as model_lib
from environments import mujoco_model
from tf_spo import config as config_lib
from tf_spo import networks
from tf_spo import search
from tf_spo.experiment import algorithms
from tf_spo.experiment import builders
from tf_spo.experiment import loops
from tf_spo.experiment import run as run_lib
from tf_spo.experiment import settings as settings_lib

# Fixed temperature of the benchmarked search; it does not affect the cost.
ETA = 0.5
# Seed offset of the random actions making the particle observations of the
# network-only benchmark.
_PARTICLE_ACTIONS_SEED = 1


def check_settings(batch_size: int, num_particles: int, depth: int,
                   resample_period: int, repeats: int,
                   warmup: int) -> config_lib.SearchConfig:
  """Validates the settings that no constructor checks.

  Network sizes are checked by `PolicyValueNetwork`, with the same messages.

  Args:
    batch_size: B, root states per search (>= 1).
    num_particles: N, particles per root (>= 1).
    depth: planning steps per search (>= 1).
    resample_period: resampling period, in [1, depth].
    repeats: timed calls of each function (>= 1).
    warmup: untimed calls of each function before timing (>= 0).

  Returns:
    The `SearchConfig` of the benchmarked search.

  Raises:
    ValueError: naming the flag of the first setting out of range.
  """
  config_lib.check(batch_size >= 1, 'batch_size', '>= 1', batch_size)
  search_config = config_lib.SearchConfig(
      num_particles=num_particles, depth=depth,
      resample_period=resample_period)
  config_lib.check(repeats >= 1, 'repeats', '>= 1', repeats)
  config_lib.check(warmup >= 0, 'warmup', '>= 0', warmup)
  return search_config


def _time_call(fn: Callable[[], Any]) -> float:
  """Seconds taken by `fn()`, with all its outputs copied to the host."""
  start = time.perf_counter()
  for tensor in tf.nest.flatten(fn()):
    if tensor is not None:
      tensor.numpy()
  return time.perf_counter() - start


def random_actions(action_spec, batch_size: int, seed) -> tf.Tensor:
  """Uniform random actions [batch_size, ...] of a bounded action spec."""
  shape = [batch_size] + action_spec.shape.as_list()
  if action_spec.dtype.is_integer:
    return tf.random.stateless_uniform(
        shape, seed, minval=int(action_spec.minimum),
        maxval=int(action_spec.maximum) + 1, dtype=action_spec.dtype)
  return tf.random.stateless_uniform(
      shape, seed, minval=action_spec.minimum, maxval=action_spec.maximum,
      dtype=action_spec.dtype)


def _particle_inputs(model, state: Any, depth: int, seed: int) -> Any:
  """Realistic particle network inputs for the network-only benchmark.

  The particle `state` (the root states tiled N times, as in the search)
  stepped by a random action at each of the `depth` steps, so that every
  network call sees distinct inputs (identical calls could be merged by the
  compiler).

  Returns:
    Nest of network inputs [depth, B * N, ...].
  """
  size = tf.shape(tf.nest.flatten(state)[0])[0]
  inputs = []
  for step in range(depth):
    actions = random_actions(model.action_spec(), size,
                             [seed, _PARTICLE_ACTIONS_SEED + step])
    state = model.step(state, actions).state
    inputs.append(model_lib.network_input(model.observe(state)))
  return tf.nest.map_structure(lambda *x: tf.stack(x), *inputs)


def benchmark(batch_size: int = 64, num_particles: int = 16, depth: int = 4,
              resample_period: int = 4, torso_units: int = 256,
              num_residual_blocks: int = 2, head_units: int = 256,
              repeats: int = 20, warmup: int = 3, seed: int = 0,
              env: str = 'rubiks_cube') -> Dict[str, Any]:
  """Times the compiled SMC search and its network evaluations alone.

  Args: as `check_settings` (the first warmup call compiles), the network
  sizes of `PolicyValueNetwork` (with the conv front end of the env's CPU
  preset, if any), `seed`, the seed of the network
  initialisation, the root states and the searches, and `env`, the registry
  name of the task (its default model).

  Returns:
    A dict with the settings, `num_network_evals` (B + depth * B * N), the
    median milliseconds per call `search_ms` and `network_ms`,
    `overhead_ratio` = search_ms / network_ms, `env_steps_per_s` (one search
    per root is one real environment step), `particle_steps_per_s`
    (B * N * depth model steps per search), and the model's steps alone:
    `model_ms`, the median milliseconds of the search's B * N * depth model
    steps with random actions, compiled like the search, and
    `model_steps_per_s`.

  Raises:
    ValueError: naming the flag of a setting out of range.
  """
  config = check_settings(batch_size, num_particles, depth, resample_period,
                          repeats, warmup)
  tf.random.set_seed(seed)
  env_settings = settings_lib.resolve_settings(env, 'cpu', {})
  model = builders.make_model(env_settings)
  # Grid tasks keep their preset's convolutional front end.
  net = networks.PolicyValueNetwork(
      model.network_input_spec(), model.action_spec(),
      torso_units=torso_units, num_residual_blocks=num_residual_blocks,
      head_units=head_units,
      conv_channels=settings_lib.parse_conv_channels(env_settings['conv_channels']),
      conv_residual_blocks=env_settings['conv_residual_blocks'])
  root_state = model.reset(batch_size, tf.constant([seed, 0], tf.int32))
  root_observation = model.observe(root_state)
  particle_states = tf.nest.map_structure(
      lambda x: tf.repeat(x, num_particles, axis=0), root_state)
  particle_inputs = _particle_inputs(model, particle_states, depth, seed)

  def network_fn(network_input):
    return net(network_input)[0]

  def output_sum(output):
    # Sums every output so that the compiler cannot drop any evaluation.
    return tf.add_n([tf.reduce_sum(x) for x in tf.nest.flatten(output)])

  @tf.function(jit_compile=model.xla_compatible)
  def search_fn(observation, search_seed):
    return search.smc_search(observation, model, network_fn, ETA, config,
                             search_seed)

  @tf.function(jit_compile=model.xla_compatible)
  def network_evals_fn(observation, inputs):
    total = output_sum(network_fn(model_lib.network_input(observation)))
    for step in range(depth):
      total += output_sum(network_fn(
          tf.nest.map_structure(lambda x, i=step: x[i], inputs)))
    return total

  calls = 0

  def run_search():
    nonlocal calls
    calls += 1
    return search_fn(root_observation, tf.constant([seed, calls], tf.int32))

  def run_network():
    return network_evals_fn(root_observation, particle_inputs)

  @tf.function(jit_compile=model.xla_compatible)
  def model_steps_fn(state, steps_seed):
    # The search's model steps alone: `depth` steps of the B * N particles.
    for step in range(depth):
      actions = random_actions(model.action_spec(),
                               batch_size * num_particles,
                               tf.stack([steps_seed, step]))
      state = model.step(state, actions).state
    return model.observe(state)

  def run_model():
    return model_steps_fn(particle_states, tf.constant(calls, tf.int32))

  times: Dict[str, List[float]] = {'search': [], 'network': [], 'model': []}
  for i in range(warmup + repeats):
    for kind, call in (('search', run_search), ('network', run_network),
                       ('model', run_model)):
      seconds = _time_call(call)
      if i >= warmup:
        times[kind].append(seconds)

  search_s, network_s, model_s = (
      statistics.median(times[kind]) for kind in ('search', 'network', 'model'))
  result = dict(
      env=env,
      batch_size=batch_size,
      num_particles=num_particles,
      depth=depth,
      resample_period=resample_period,
      torso_units=torso_units,
      num_residual_blocks=num_residual_blocks,
      head_units=head_units,
      repeats=repeats,
      warmup=warmup,
      seed=seed,
      num_network_evals=batch_size + depth * batch_size * num_particles,
      search_ms=1e3 * search_s,
      network_ms=1e3 * network_s,
      overhead_ratio=search_s / network_s,
      env_steps_per_s=batch_size / search_s,
      particle_steps_per_s=batch_size * num_particles * depth / search_s,
      model_ms=1e3 * model_s,
      model_steps_per_s=batch_size * num_particles * depth / model_s,
  )
  if hasattr(model, 'simulator'):
    result['simulator'] = simulator_benchmark(
        model, batch_size * num_particles, repeats, warmup, seed)
  return result


def _rollout_inputs(simulator, particles: Any, action):
  """`mujoco.rollout` inputs of the same particles and actions.

  Returns:
    (initial_state [B, FULLPHYSICS], initial_warmstart [B, nv],
    control [B, frame_skip, nu]).
  """
  model = simulator.model
  data = mujoco.MjData(model)
  full_physics = mujoco.mjtState.mjSTATE_FULLPHYSICS
  state = np.empty([len(action), mujoco.mj_stateSize(model, full_physics)])
  warmstart = np.empty([len(action), model.nv])
  for i, row in enumerate(particles.physics):
    mujoco.mj_setState(model, data, row, mujoco_model.STATE_SPEC)
    mujoco.mj_getState(model, data, state[i], full_physics)
    warmstart[i] = data.qacc_warmstart
  control = np.repeat(action[:, None], simulator.frame_skip, axis=1)
  return state, warmstart, control.astype(np.float64)


def simulator_benchmark(model, batch_size: int, repeats: int, warmup: int,
                        seed: int) -> Dict[str, float]:
  """Particle-steps/s of a simulator model against raw `mujoco.rollout`.

  Steps the same batch of reset particles with the same random actions
  through `ParticleSimulator.step` (the planning model: set state, step,
  observation, reward) and through `mujoco.rollout` (the same physics from
  the same states, nothing else), with 1 and 2 threads. Calls alternate and
  medians are reported.

  Returns:
    {'planning_<n>_threads', 'rollout_<n>_threads': particle-steps/s, and
    'ratio_<n>_threads': planning / rollout} for n in 1, 2.
  """
  rng = np.random.default_rng(seed)
  task = model.simulator.task
  low, high = model.simulator.action_bounds
  particles = model.simulator.reset(rng, batch_size)
  action = rng.uniform(low, high, [batch_size, len(low)]).astype(np.float32)
  result = {}
  for threads in (1, 2):
    simulator = mujoco_model.ParticleSimulator(task, threads)
    state, warmstart, control = _rollout_inputs(simulator, particles, action)
    datas = [mujoco.MjData(simulator.model) for _ in range(threads)]
    with mujoco_rollout.Rollout(nthread=threads if threads > 1 else 0) as pool:
      timings = {'planning': [], 'rollout': []}
      calls = {
          'planning': functools.partial(simulator.step, particles, action),
          'rollout': functools.partial(
              pool.rollout, simulator.model, datas, state, control,
              initial_warmstart=warmstart),
      }
      for i in range(warmup + repeats):
        for kind, call in calls.items():
          start = time.perf_counter()
          call()
          if i >= warmup:
            timings[kind].append(time.perf_counter() - start)
    for kind, times in timings.items():
      result[f'{kind}_{threads}_threads'] = (
          batch_size / statistics.median(times))
    result[f'ratio_{threads}_threads'] = (
        result[f'planning_{threads}_threads'] /
        result[f'rollout_{threads}_threads'])
  return result


def network_flops(net, input_spec) -> int:
  """Floating-point operations of one forward pass of `net` on one input.

  Counted by TF's graph profiler on the traced network with batch 1:
  2 * in * out per dense layer, 2 * H * W * k * k * C_in * C_out per
  convolution, one per bias add and elementwise arithmetic op; activations
  are free.
  """
  spec = tf.nest.map_structure(
      lambda s: tf.TensorSpec([1] + s.shape.as_list(), s.dtype), input_spec)
  forward = tf.function(lambda x: net(x)[0])
  graph = forward.get_concrete_function(spec).graph
  builder = tf.compat.v1.profiler.ProfileOptionBuilder
  options = builder(builder.float_operation()).with_empty_output().build()
  return tf.compat.v1.profiler.profile(graph, options=options).total_float_ops


def matmul_peak_gflops(size: int = 1024, repeats: int = 10) -> float:
  """GFLOP/s of an XLA-compiled float32 [size, size] matmul (median)."""
  a = tf.random.stateless_normal([size, size], [0, 1])
  b = tf.random.stateless_normal([size, size], [0, 2])
  matmul = tf.function(tf.linalg.matmul, jit_compile=True)
  matmul(a, b).numpy()
  seconds = statistics.median(
      _time_call(lambda: matmul(a, b)) for _ in range(repeats))
  return 2 * size**3 / seconds / 1e9


def train_benchmark(env: str = 'rubiks_cube', preset: str = 'cpu',
                    repeats: int = 10, warmup: int = 2,
                    overrides: Optional[Dict[str, Any]] = None
                    ) -> Dict[str, Any]:
  """Times steady-state training iterations of `launch.train`'s loop.

  Builds the run `training.train` would with `env`'s `preset` (plus
  `overrides`) in a temporary directory, collects until the replay buffer
  can be sampled, runs `warmup` untimed iterations (compilation), then times
  `repeats` iterations: the collect (search, environment steps, replay
  writes) and the `num_epochs` gradient steps. Its FLOP ideal is the
  iteration's network FLOPs (search: B * (1 + N * depth) forward passes per
  env step; training: 4 forward passes' worth per replayed step, i.e. the
  online forward and backward and the target forward) at the matmul peak
  measured in the same run. With `algorithm='ppo'` (in `overrides`) the
  network is the actor and the critic, and an iteration costs
  2 + 3 * num_epochs of their forward passes per env step: the collect, the
  values of the rollout, and each epoch's forward and backward.

  Returns:
    A dict with the run's main settings, `env_steps_per_iteration`, median
    seconds `iteration_s`, `collect_s`, `train_s` and `other_s` (the rest of
    the iteration), `env_steps_per_s`, `network_flops` (one forward pass),
    `iteration_gflop`, `peak_gflops`, `ideal_s` and
    `flop_ratio` = ideal_s / iteration_s.

  Raises:
    ValueError: naming the flag of a setting out of range.
  """
  config_lib.check(repeats >= 1, 'repeats', '>= 1', repeats)
  config_lib.check(warmup >= 0, 'warmup', '>= 0', warmup)
  settings = settings_lib.resolve_settings(env, preset, overrides or {})
  algorithms.validate_settings(settings)
  with tempfile.TemporaryDirectory() as root_dir:
    run = run_lib.build_run(settings, root_dir)
    loop = algorithms.get(settings).make_loop(run)
    while not loop.ready_to_train():
      loop.collect()
    times: Dict[str, List[float]] = {'iteration': [], 'collect': [],
                                     'train': []}
    for i in range(warmup + repeats):
      start = time.perf_counter()
      iteration = loops.run_iteration(loop, settings['num_epochs'])
      if iteration.loss_info is not None:
        iteration.loss_info.loss.numpy()
      if i >= warmup:
        times['iteration'].append(time.perf_counter() - start)
        times['collect'].append(iteration.collect_s)
        times['train'].append(iteration.train_s)
    flops = network_flops(run.agent.network, run.model.network_input_spec())
  median = {kind: statistics.median(t) for kind, t in times.items()}
  steps = settings['num_envs'] * settings['rollout_length']
  forward_passes = algorithms.get(settings).forward_passes(settings)
  peak = matmul_peak_gflops()
  ideal_s = forward_passes * flops / (peak * 1e9)
  return dict(
      env=env, preset=preset, algorithm=settings['algorithm'],
      **{name: settings[name] for name in (
          'num_envs', 'rollout_length', 'num_particles', 'depth',
          'num_epochs', 'batch_size', 'sequence_length')},
      repeats=repeats, warmup=warmup,
      env_steps_per_iteration=steps,
      iteration_s=median['iteration'],
      collect_s=median['collect'],
      train_s=median['train'],
      other_s=median['iteration'] - median['collect'] - median['train'],
      env_steps_per_s=steps / median['iteration'],
      network_flops=flops,
      iteration_gflop=forward_passes * flops / 1e9,
      peak_gflops=peak,
      ideal_s=ideal_s,
      flop_ratio=ideal_s / median['iteration'],
  )


def _table(rows) -> str:
  """(name, value) rows as two aligned columns."""
  width = max(len(name) for name, _ in rows)
  return '\n'.join(f'{name:<{width}}  {value}' for name, value in rows)


def format_table(result: Dict[str, Any]) -> str:
  """A small human-readable table of a `benchmark` result."""
  rows = [
      ('env', result['env']),
      ('settings', f'B={result["batch_size"]} N={result["num_particles"]} '
                   f'depth={result["depth"]} '
                   f'resample_period={result["resample_period"]}'),
      ('network', f'torso={result["torso_units"]}x'
                  f'{result["num_residual_blocks"]} '
                  f'head={result["head_units"]}'),
      ('network evals/search', f'{result["num_network_evals"]}'),
      ('search ms (median)', f'{result["search_ms"]:.2f}'),
      ('network ms (median)', f'{result["network_ms"]:.2f}'),
      ('overhead ratio', f'{result["overhead_ratio"]:.3f}'),
      ('env steps/s', f'{result["env_steps_per_s"]:.1f}'),
      ('particle steps/s', f'{result["particle_steps_per_s"]:.1f}'),
      ('model alone ms (median)', f'{result["model_ms"]:.2f}'),
      ('model alone steps/s', f'{result["model_steps_per_s"]:.1f}'),
  ]
  for name, value in result.get('simulator', {}).items():
    digits = 3 if name.startswith('ratio') else 0
    rows.append((f'simulator {name}', f'{value:.{digits}f}'))
  return _table(rows)


def format_train_table(result: Dict[str, Any]) -> str:
  """A small human-readable table of a `train_benchmark` result."""
  iteration = result['iteration_s']
  if result.get('algorithm') == 'ppo':
    training = (f'{result["num_epochs"]} PPO epochs on the '
                f'{result["num_envs"]}x{result["rollout_length"]} rollout')
  else:
    training = (f'{result["num_epochs"]} gradient steps of '
                f'{result["batch_size"]}x{result["sequence_length"]}')
  rows = [
      ('env, preset', f'{result["env"]}, {result["preset"]}'),
      ('iteration', f'{result["env_steps_per_iteration"]} env steps, '
                    f'{training}'),
      ('iteration ms (median)', f'{1e3 * iteration:.1f}'),
  ] + [
      (f'  {kind} ms', f'{1e3 * result[f"{kind}_s"]:.1f} '
                       f'({result[f"{kind}_s"] / iteration:.0%})')
      for kind in ('collect', 'train', 'other')
  ] + [
      ('env steps/s', f'{result["env_steps_per_s"]:.0f}'),
      ('network forward FLOPs', f'{result["network_flops"]:,}'),
      ('iteration GFLOP', f'{result["iteration_gflop"]:.2f}'),
      ('matmul peak GFLOP/s', f'{result["peak_gflops"]:.1f}'),
      ('FLOP-ideal ms', f'{1e3 * result["ideal_s"]:.1f}'),
      ('ratio to FLOP ideal', f'{result["flop_ratio"]:.3f}'),
  ]
  return _table(rows)

