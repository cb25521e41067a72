"""Tests of the launch scripts' shared settings and run handling."""

import pytest

from launch import common


def test_presets_only_name_known_settings():
  for preset in common.PRESETS.values():
    assert set(preset) <= set(common.DEFAULTS)
  for preset in common.PRESETS.values():
    common.validate_settings(dict(common.DEFAULTS, **preset))


@pytest.mark.parametrize('overrides,message', [
    (dict(env='atari'), "--env must be one of ['rubiks_cube']"),
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
    (dict(search_value_weight=-1.0), '--search_value_weight must be in'),
])
def test_validate_settings_names_the_flag(overrides, message):
  with pytest.raises(ValueError, match=message.replace('[', r'\[').replace(
      ']', r'\]')):
    common.validate_settings(dict(common.DEFAULTS, **overrides))


def test_read_settings_of_a_missing_run(tmp_path):
  with pytest.raises(FileNotFoundError, match='has no config.json'):
    common.read_settings(str(tmp_path))


def test_write_settings_refuses_incompatible_runs(tmp_path):
  common.write_settings(str(tmp_path), dict(common.DEFAULTS))
  with pytest.raises(ValueError, match=r'--depth=4 \(now 8\)'):
    common.write_settings(str(tmp_path), dict(common.DEFAULTS, depth=8))
  common.write_settings(str(tmp_path),
                        dict(common.DEFAULTS, total_env_steps=10**6))
  assert common.read_settings(str(tmp_path))['total_env_steps'] == 10**6
