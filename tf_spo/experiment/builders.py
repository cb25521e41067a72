"""Builders of a run's parts from its settings: the only reader of them.

The configs of the search and the M-step, the model, the network, the agent
and the tf.distribute strategy.
"""

import contextlib
from typing import Any, Dict, Optional

import tensorflow as tf

from environments import model as model_lib
from environments import registry
from tf_spo import agent as agent_lib
from tf_spo import config as config_lib
from tf_spo import networks
from tf_spo import ppo
from tf_spo.experiment import settings as settings_lib


def make_strategy(settings: Dict[str, Any]) -> tf.distribute.Strategy:
  """The run's `tf.distribute` strategy (see the strategy flag).

  `strategy=mirrored` without a GPU splits the CPU into num_replicas
  logical devices, which must happen before TensorFlow starts: call this
  first (`launch.train` does). If TensorFlow already runs with enough
  logical CPU devices, those are used.

  Raises:
    ValueError: naming strategy, num_replicas or tpu if the devices
      are not there.
  """
  settings_lib.validate_device_settings(settings)
  if settings['strategy'] == 'default':
    return tf.distribute.get_strategy()
  if settings['strategy'] == 'tpu':
    try:
      resolver = tf.distribute.cluster_resolver.TPUClusterResolver(
          tpu=settings['tpu'])
      tf.config.experimental_connect_to_cluster(resolver)
      tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, tf.errors.OpError) as error:
      raise ValueError(
          f'strategy=tpu: no TPU at tpu={settings["tpu"]!r} '
          f'({str(error).splitlines()[0]}).') from error
    return tf.distribute.TPUStrategy(resolver)
  replicas = settings['num_replicas']
  gpus = tf.config.list_physical_devices('GPU')
  if gpus:
    config_lib.check(replicas <= len(gpus), 'num_replicas',
                     f'<= {len(gpus)}, the local GPUs', replicas)
    devices = [f'/gpu:{i}' for i in range(replicas)]
  else:
    cpu = tf.config.list_physical_devices('CPU')[0]
    # Once TensorFlow runs its devices are fixed, and this raises.
    with contextlib.suppress(RuntimeError):
      tf.config.set_logical_device_configuration(
          cpu, [tf.config.LogicalDeviceConfiguration()] * replicas)
    available = len(tf.config.list_logical_devices('CPU'))
    if available < replicas:
      raise ValueError(
          f'num_replicas={replicas} needs as many logical CPU devices, and '
          f'TensorFlow started with {available}: choose the strategy before '
          'running TensorFlow ops.')
    devices = [f'/cpu:{i}' for i in range(replicas)]
  return tf.distribute.MirroredStrategy(devices)


def spo_config(settings) -> config_lib.SpoConfig:
  """The run's `SpoConfig`."""
  return settings_lib.part(config_lib.SpoConfig, settings)


def ppo_config(settings) -> ppo.PpoConfig:
  """The run's `PpoConfig` (algorithm=ppo)."""
  return settings_lib.part(ppo.PpoConfig, settings)


def make_model(settings, evaluation: bool = False
               ) -> model_lib.EnvironmentModel:
  """The run's model; with `evaluation`, that of the held-out episodes."""
  return registry.entry(settings['env']).make_model(settings, evaluation)


def metrics(settings) -> tuple:
  """The evaluation metrics of the run's env, headline first."""
  return registry.entry(settings['env']).metrics


def eval_settings(settings) -> tuple:
  """Names of the settings that define the env's evaluation episodes."""
  return registry.entry(settings['env']).eval_settings


def network(settings, model, q_head: bool = False):
  """The run's network, with a Q head if `q_head`.

  `network=residual` is the shared residual torso of the discrete tasks
  (`PolicyValueNetwork`, with a convolutional ResNet in front for
  `conv_channels`), `network=mlp` the separate actor and critic
  MLPs of the MuJoCo tasks (`MlpActorCriticNetwork`), with a running
  observation normaliser if `normalize_observations`.
  """
  spec = model.network_input_spec()
  if settings['network'] == 'mlp':
    if settings['conv_channels']:
      raise ValueError('conv_channels needs network=residual.')
    normalizer = (networks.ObservationNormalizer(spec)
                  if settings['normalize_observations'] else None)
    units = (settings['mlp_units'],) * settings['mlp_layers']
    return networks.MlpActorCriticNetwork(
        spec, model.action_spec(), actor_units=units, critic_units=units,
        q_head=q_head, initial_scale=settings['initial_scale'],
        loc_bound=settings['loc_bound'], normalizer=normalizer)
  if settings['normalize_observations']:
    raise ValueError('normalize_observations needs network=mlp.')
  return networks.PolicyValueNetwork(
      spec, model.action_spec(),
      torso_units=settings['torso_units'],
      num_residual_blocks=settings['num_residual_blocks'],
      head_units=settings['head_units'],
      q_head=q_head,
      initial_scale=settings['initial_scale'],
      loc_bound=settings['loc_bound'],
      conv_channels=settings_lib.parse_conv_channels(
          settings['conv_channels']),
      conv_residual_blocks=settings['conv_residual_blocks'])


def spo_agent(settings: Dict[str, Any], model, time_step_spec, action_spec,
              search_config, q_head: bool, seed: Optional[int] = None,
              train_step_counter: Optional[tf.Variable] = None,
              eval_search_config: Optional[config_lib.SearchConfig] = None
              ) -> agent_lib.SpoAgent:
  """A `SpoAgent` with `search_config`'s search on the real env's specs.

  Args:
    settings: run settings.
    model: the planning model.
    time_step_spec: `TimeStep` spec of the real environment (tensor specs).
    action_spec: its action spec.
    search_config: `SearchConfig` (SPO) or `GumbelConfig` (Gumbel MuZero).
    q_head: whether the network has a Q head.
    seed: seed of the policies' random generators (default the run's seed;
      each actor of a distributed run passes its own).
    train_step_counter: the step counter variable (default the agent's own).
    eval_search_config: the evaluation policy's `SearchConfig` (default
      `search_config`).
  """
  return agent_lib.SpoAgent(
      time_step_spec, action_spec, network(settings, model, q_head), model,
      search_config=search_config, config=spo_config(settings),
      optimizer=tf.keras.optimizers.Adam(settings['learning_rate']),
      dual_optimizer=tf.keras.optimizers.Adam(settings['dual_learning_rate']),
      eval_search_config=eval_search_config,
      seed=settings['seed'] if seed is None else seed, debug_summaries=True,
      train_step_counter=train_step_counter)


def ppo_agent(settings: Dict[str, Any], model, time_step_spec, action_spec,
              seed: Optional[int] = None,
              train_step_counter: Optional[tf.Variable] = None
              ) -> ppo.PpoAgent:
  """The run's `PpoAgent`: TF-Agents' PPOClipAgent, no search.

  Its actor and critic are separate networks of the sizes of the run's
  `network`, as far as TF-Agents' `ActorDistributionNetwork` and
  `ValueNetwork` allow: `network=mlp` gives each `mlp_layers` SiLU layers
  of `mlp_units` (observations normalised with
  `normalize_observations`); `network=residual` gives each
  `num_residual_blocks` + 1 ReLU layers of `torso_units` and one of
  `head_units`, without skip connections, after one 3x3 'valid'
  convolution per `conv_channels` stage (`conv_residual_blocks` does not
  apply). Continuous actions: a Gaussian with tanh-squashed mean and a
  state-independent standard deviation starting at `initial_scale`.
  `learning_rate` (decayed linearly to 0 over the run's gradient steps
  with `ppo_learning_rate_decay`), `discount`, `gae_lambda`, `num_epochs`
  (passes over each rollout), `ppo_num_minibatches` (gradient steps per
  pass), `value_loss_coef`, `max_grad_norm` (over both networks' gradients
  together), `ppo_clip_ratio` and `ppo_entropy_coef` apply; the search
  and SPO settings do not.

  Args:
    settings: run settings.
    model: the planning model (only its specs are used).
    time_step_spec: `TimeStep` spec of the real environment.
    action_spec: its action spec.
    seed: seed of the collect policy's random generator (default the run's
      seed).
    train_step_counter: the step counter variable (default the agent's own).
  """
  if time_step_spec.observation != model.observation_spec():
    raise ValueError(
        f'time_step_spec.observation {time_step_spec.observation} does not '
        f'match the model observation_spec {model.observation_spec()}.')
  if settings['network'] == 'mlp':
    layers = dict(fc_layer_params=(settings['mlp_units'],) *
                  settings['mlp_layers'],
                  activation_fn=tf.keras.activations.swish)
  else:
    channels = settings_lib.parse_conv_channels(settings['conv_channels'])
    layers = dict(
        fc_layer_params=((settings['torso_units'],) *
                         (settings['num_residual_blocks'] + 1) +
                         (settings['head_units'],)),
        conv_layer_params=[(c, 3, 1) for c in channels] or None,
        activation_fn=tf.keras.activations.relu)
  return ppo.PpoAgent(
      time_step_spec, action_spec, **layers,
      initial_scale=settings['initial_scale'],
      normalize_observations=settings['normalize_observations'],
      config=ppo_config(settings),
      optimizer=tf.keras.optimizers.Adam(ppo_learning_rate(settings)),
      seed=settings['seed'] if seed is None else seed,
      train_step_counter=train_step_counter)


def ppo_learning_rate(settings: Dict[str, Any]):
  """PPO's learning rate: constant, or its linear decay to 0.

  With `ppo_learning_rate_decay`, it falls to 0 over the run's gradient
  steps: `num_epochs * ppo_num_minibatches` per rollout of `num_envs *
  rollout_length` env steps, until `total_env_steps`.
  """
  if not settings['ppo_learning_rate_decay']:
    return settings['learning_rate']
  rollout = settings['num_envs'] * settings['rollout_length']
  rollouts = -(-settings['total_env_steps'] // rollout)
  return tf.keras.optimizers.schedules.PolynomialDecay(
      settings['learning_rate'],
      rollouts * settings['num_epochs'] * settings['ppo_num_minibatches'],
      end_learning_rate=0.0)
