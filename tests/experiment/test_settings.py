"""Tests of tf_spo.experiment's settings and run handling, and launch.cli."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf
from tf_agents.environments import utils as env_utils
from tf_agents.trajectories import time_step as ts

from environments import registry
from launch import cli
from tests import conftest
from tf_spo import experiment
from tf_spo import policy as policy_lib
from tf_spo.experiment import presets


def test_every_env_and_preset_resolves_to_valid_settings():
  assert set(presets.CPU) == set(presets.NAMED) == set(registry.ENVS)
  for env, entry in registry.ENVS.items():
    assert set(entry.settings) <= set(experiment.DEFAULTS), env
    for preset in (presets.CPU[env], *presets.NAMED[env].values()):
      assert set(preset) <= set(experiment.DEFAULTS), env
    for preset in ('cpu', *presets.NAMED[env]):
      assert preset in experiment.PRESETS, (env, preset)
      experiment.validate_settings(experiment.resolve_settings(env, preset, {}))


# The MuJoCo tasks' PyEnvironment (gymnasium's) is validated in
# tests/environments/test_gym_adapter.py.
@pytest.mark.parametrize('env', ['rubiks_cube', 'pendulum', 'sokoban',
                                 'snake'])
def test_every_model_has_a_valid_py_environment(env):
  settings = experiment.resolve_settings(
      env, 'cpu', {'num_levels': 20} if env == 'sokoban' else {})
  entry = registry.entry(env)
  py_env = entry.make_py_env(experiment.make_model(settings), 3, 0)
  assert py_env.batched and py_env.batch_size == 3
  env_utils.validate_py_environment(py_env, episodes=2)


def test_settings_resolve_defaults_env_preset_then_flags():
  settings = experiment.resolve_settings('pendulum', 'paper', {'num_epochs': 3})
  assert settings['env'] == 'pendulum'
  assert settings['time_limit'] == 200  # the env's default
  assert settings['epsilon_eta'] == 0.2 and settings['initial_eta'] == 10.0
  assert settings['num_envs'] == 1024  # paper table 3, continuous column
  # The paper's gradient dual, not the CPU preset's solved eta.
  assert settings['eta_update'] == 'gradient'
  assert settings['initial_alpha_cov'] == 500.0
  assert settings['num_epochs'] == 3  # the flag wins
  cube = experiment.resolve_settings('rubiks_cube', 'paper', {})
  assert cube['num_envs'] == 768 and cube['epsilon_eta'] == 0.5
  with pytest.raises(ValueError, match='preset must be one of'):
    experiment.resolve_settings('pendulum', 'fast', {})
  with pytest.raises(ValueError, match='preset=cpu_30min is not defined '
                     'for env=pendulum; it has cpu, paper, trt_smc'):
    experiment.resolve_settings('pendulum', 'cpu_30min', {})
  cube30 = experiment.resolve_settings('rubiks_cube', 'cpu_30min', {})
  assert cube30['torso_units'] == 512 and cube30['total_env_steps'] == 500_000
  assert cube30['initial_eta'] == 0.05  # the cube's cpu defaults beneath
  # The SPO paper's PPO: table 7 for the cube, table 4 for the pendulum, on
  # each task's own network.
  cube_ppo = experiment.resolve_settings('rubiks_cube', 'ppo', {})
  pendulum_ppo = experiment.resolve_settings('pendulum', 'ppo', {})
  assert cube_ppo['algorithm'] == pendulum_ppo['algorithm'] == 'ppo'
  assert (cube_ppo['ppo_num_minibatches'], cube_ppo['ppo_entropy_coef'],
          pendulum_ppo['ppo_num_minibatches'],
          pendulum_ppo['ppo_entropy_coef']) == (64, 1e-2, 16, 5e-3)
  assert pendulum_ppo['torso_units'] == 64 and cube_ppo['torso_units'] == 256
  # Ant's CPU preset starts its policy at a 0.3 standard deviation; the paper
  # and PPO presets keep the default 1.0 over it, the others inherit it.
  ant = {preset: experiment.resolve_settings('ant', preset, {})
         for preset in ('cpu', 'paper', 'ppo', 'trt_smc')}
  assert {preset: s['initial_scale'] for preset, s in ant.items()} == dict(
      cpu=0.3, paper=1.0, ppo=1.0, trt_smc=0.3)
  assert ant['paper']['target_update_tau'] == 5e-3  # the paper's


def test_a_task_setting_given_to_another_task_is_refused_by_name():
  with pytest.raises(ValueError, match=r'^levels_dir: a setting of sokoban '
                     'only; env=rubiks_cube does not read it.$'):
    experiment.resolve_settings('rubiks_cube', 'cpu', {'levels_dir': 'x'})
  with pytest.raises(ValueError, match=r'^num_threads: a setting of ant, '
                     'halfcheetah, humanoid only; env=snake'):
    experiment.resolve_settings('snake', 'cpu', {'num_threads': 2})
  # Their own tasks take them, and settings every task reads pass.
  sokoban = experiment.resolve_settings(
      'sokoban', 'cpu', {'levels_dir': 'x', 'time_limit': 9})
  assert sokoban['levels_dir'] == 'x'
  result = conftest.run_cli('launch.train', '--eval_scramble=3',
                            '--env=halfcheetah', '--root_dir=unused')
  assert result.stderr == ('error: --eval_scramble: a setting of rubiks_cube '
                           'only; --env=halfcheetah does not read it.\n')


@pytest.mark.parametrize('overrides,message', [
    (dict(env='atari'), "--env must be one of ['ant', 'halfcheetah', "
     "'humanoid', 'pendulum', 'rubiks_cube', 'snake', 'sokoban']"),
    (dict(num_threads=0), '--num_threads must be >= 1'),
    (dict(ess_threshold=1.5), '--ess_threshold must be in [0, 1]'),
    (dict(epsilon_alpha_cov=0.0), '--epsilon_alpha_cov must be > 0'),
    (dict(initial_scale=0.0), '--initial_scale must be >'),
    (dict(num_envs=0), '--num_envs must be >= 1'),
    (dict(sequence_length=1), '--sequence_length must be >= 2'),
    (dict(replay_capacity=10), '--replay_capacity must be >= num_envs'),
    (dict(num_particles=0), '--num_particles must be >= 1'),
    (dict(epsilon_eta=0.0), '--epsilon_eta must be > 0'),
    (dict(learning_rate=0.0), '--learning_rate must be > 0'),
    (dict(torso_units=0), '--torso_units must be >= 1'),
    (dict(min_scramble=5, max_scramble=3), 'max_scramble'),
    (dict(bogus=1), 'Unknown settings'),
    (dict(proposal_alpha=2.0), '--proposal_alpha must be in [0, 1]'),
    (dict(proposal_atoms=0), '--proposal_atoms must be >= 1'),
    (dict(eval_depth=-1), '--eval_depth must be >= 0'),
    (dict(eval_depth=2, eval_resample_period=3),
     '--eval_resample_period must be <= the evaluation depth 2, got 3'),
    (dict(depth=2, resample_period=2, eval_resample_period=4),
     '--eval_resample_period must be <= the evaluation depth 2, got 4'),
    (dict(search_value_weight=-1.0), '--search_value_weight must be in'),
    (dict(depth=2, resample_period=2, policy_target_horizon=3),
     '--policy_target_horizon must be in [0, depth=2], got 3'),
    (dict(conv_channels='32,x'), '--conv_channels must be empty or a '
     'comma-separated list of integers >= 1'),
    (dict(conv_channels='32,0'), '--conv_channels must be empty'),
    (dict(conv_channels='8', network='mlp'),
     '--conv_channels needs --network=residual'),
    # The cube's observations are integer stickers, not a float grid.
    (dict(conv_channels='8'), 'observation_spec: --conv_channels needs '
     'float grid observations'),
    (dict(conv_residual_blocks=-1), '--conv_residual_blocks must be >= 0'),
    (dict(env='sokoban', num_levels=0), '--num_levels must be >= 1'),
    (dict(env='sokoban', levels_dir='/nonexistent/levels'), '--levels_dir'),
    (dict(strategy='horovod'),
     "--strategy must be one of ['default', 'mirrored', 'tpu']"),
    (dict(num_replicas=2), '--num_replicas must be 1 unless '
     '--strategy=mirrored'),
    (dict(strategy='mirrored', num_replicas=0), '--num_replicas must be >= 1'),
    (dict(strategy='mirrored', num_replicas=3),
     '--num_envs must be a multiple of --num_replicas=3, got 64'),
    (dict(strategy='mirrored', num_replicas=2, num_envs=2, batch_size=5),
     '--batch_size must be a multiple of --num_replicas=2, got 5'),
    (dict(gaussian_policy_target='critic'),
     "--gaussian_policy_target must be 'search' for a task with discrete "
     'actions'),
    (dict(experiment.resolve_settings('halfcheetah', 'cpu', {}),
          strategy='tpu'),
     "--strategy must be not 'tpu' for a task whose model runs Python"),
])
def test_validate_settings_names_the_flag(overrides, message):
  with pytest.raises(ValueError) as error:
    experiment.validate_settings(dict(experiment.DEFAULTS, **overrides))
  assert message in cli.flag_wording(error.value, experiment.DEFAULTS)


def test_flag_wording_turns_argument_names_into_flags():
  names = ['time_limit', 'depth', 'policy_inference', 'conv_channels']
  for library, binary in [
      ('time_limit must be >= 1, got 0.', '--time_limit must be >= 1, got 0.'),
      ("root_sampling 'x' needs policy_inference=message_passing",
       "root_sampling 'x' needs --policy_inference=message_passing"),
      ('observation_spec: conv_channels needs float grid observations',
       'observation_spec: --conv_channels needs float grid observations'),
      ('--depth=4 (now 8)', '--depth=4 (now 8)'),  # already a flag
      ('--strategy=depth: no', '--strategy=depth: no'),  # a flag's value
      ('time_limit must be in [1, depth=2], got 3', '--time_limit must be in '
       '[1, depth=2], got 3'),  # a range's bound stays
      ('the search depth is 3; config.depth: 3', 'the search depth is 3; '
       'config.depth: 3'),  # prose and attributes stay
  ]:
    assert cli.flag_wording(ValueError(library), names) == binary


def test_make_strategy_without_the_devices_names_the_flag():
  assert experiment.make_strategy(dict(experiment.DEFAULTS)) is (
      tf.distribute.get_strategy())
  # TensorFlow runs, with the 2 logical CPU devices of tests/conftest.py.
  tf.constant(0.0).numpy()
  with pytest.raises(ValueError, match='num_replicas=3 needs as many '
                     'logical CPU devices, and TensorFlow started with 2'):
    experiment.make_strategy(dict(experiment.DEFAULTS, strategy='mirrored',
                                  num_replicas=3, num_envs=48,
                                  batch_size=48))
  with pytest.raises(ValueError, match="strategy=tpu: no TPU at tpu=''"):
    experiment.make_strategy(dict(experiment.DEFAULTS, strategy='tpu'))


def test_device_settings_may_change_on_resume(tmp_path):
  experiment.write_settings(str(tmp_path), dict(experiment.DEFAULTS))
  experiment.write_settings(str(tmp_path), dict(
      experiment.DEFAULTS, strategy='mirrored', num_replicas=2))
  assert experiment.read_settings(str(tmp_path))['num_replicas'] == 2


def test_read_settings_of_a_missing_run(tmp_path):
  with pytest.raises(FileNotFoundError, match=r'has no config\.json'):
    experiment.read_settings(str(tmp_path))


def test_write_settings_refuses_incompatible_runs(tmp_path):
  experiment.write_settings(str(tmp_path), dict(experiment.DEFAULTS))
  with pytest.raises(ValueError, match=r'depth=4 \(now 8\)'):
    experiment.write_settings(str(tmp_path), dict(experiment.DEFAULTS, depth=8))
  experiment.write_settings(str(tmp_path),
                            dict(experiment.DEFAULTS, total_env_steps=10**6))
  assert experiment.read_settings(str(tmp_path))['total_env_steps'] == 10**6


def test_settings_are_the_typed_config_parts_fields():
  config = experiment.ExperimentConfig()
  assert config.settings() == experiment.DEFAULTS
  # Every setting has a help text, from its part's docstring.
  assert all(text for _, _, text in experiment.SETTINGS)
  helps = {name: text for name, _, text in experiment.SETTINGS}
  assert helps['num_particles'] == 'N, particles per root state (>= 1).'
  assert helps['num_simulations'].startswith('algorithm=gumbel: simulations')
  settings = experiment.resolve_settings('halfcheetah', 'cpu', {})
  typed = experiment.ExperimentConfig.from_settings(settings)
  assert typed.settings() == settings
  assert typed.search.num_particles == settings['num_particles']
  assert typed.network.network == 'mlp' and typed.spo.eta_update == 'solve'


def test_typed_config_checks_each_part_and_the_shared_fields():
  with pytest.raises(ValueError, match='num_particles must be >= 1, got 0'):
    experiment.ExperimentConfig.from_settings(
        dict(experiment.DEFAULTS, num_particles=0))
  with pytest.raises(ValueError, match='Unknown settings:'):
    experiment.ExperimentConfig.from_settings(
        dict(experiment.DEFAULTS, particles=3))
  with pytest.raises(ValueError, match='discount must be the same in every '
                     'part that has it'):
    experiment.ExperimentConfig(
        spo=experiment.settings.config_lib.SpoConfig(discount=0.9))


def test_field_help_needs_every_field_documented():

  @dataclasses.dataclass(frozen=True)
  class Undocumented:
    """A part.

    Attributes:
      first: documented,
        on two lines.
    """
    first: int = 0
    second: int = 1

  with pytest.raises(ValueError,
                     match=r"Undocumented documents no \['second'\]"):
    experiment.settings.field_help(Undocumented)


@pytest.mark.parametrize('overrides, particles, depth, period', [
    # 0 keeps the collect search's value (4 x 2, period 2); the period is
    # capped at the evaluation depth.
    (dict(), 4, 2, 2),
    (dict(eval_depth=1), 4, 1, 1),
    (dict(eval_num_particles=6, eval_depth=3, eval_resample_period=3), 6, 3,
     3),
    # The evaluation search trains nothing: no policy target of its own.
    (dict(eval_depth=1, policy_target_horizon=2), 4, 1, 1),
])
def test_eval_search_settings_make_the_evaluation_policys_search(
    overrides, particles, depth, period):
  settings = conftest.tiny_settings(resample_period=2, **overrides)
  experiment.validate_settings(settings)
  model = experiment.make_model(settings)
  spec = ts.time_step_spec(model.observation_spec())
  agent = experiment.make_agent(settings, model, spec, model.action_spec())
  time_step = ts.restart(model.observe(model.reset(3, tf.constant([0, 2]))),
                         3)
  info = agent.policy.action(time_step).info
  assert info['eta_advantages'].shape == (3, particles)
  direct = policy_lib.search_policy(
      agent.time_step_spec, agent.action_spec, agent.network, model,
      experiment.search_config(dict(
          settings, num_particles=particles, depth=depth,
          resample_period=period, policy_target_horizon=0)), agent.eta,
          greedy=True,
      seed=settings['seed']).action(time_step)
  for name, value in direct.info.items():
    # eta's softplus runs inside or outside the compiled search: 1 ulp.
    np.testing.assert_allclose(info[name], value, rtol=1e-5, atol=1e-6,
                               err_msg=name)
  assert agent.collect_policy.info_spec['eta_advantages'].shape == (4,)
