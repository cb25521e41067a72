"""Small SPO agents and experience for the agent's tests (cube, pendulum)."""

import numpy as np
import tensorflow as tf
from tf_agents.specs import tensor_spec
from tf_agents.trajectories import time_step as ts
from tf_agents.trajectories import trajectory

from environments import model as model_lib
from environments import pendulum
from environments import rubiks_cube
from tf_spo import agent as agent_lib
from tf_spo import config as config_lib
from tf_spo import networks

CUBE = rubiks_cube.RubiksCube(1, 3)
SEARCH = config_lib.SearchConfig(num_particles=4, depth=2, resample_period=1)


def make_agent(config=config_lib.SpoConfig(), model=CUBE,
               search_config=SEARCH, network=None):
  tf.random.set_seed(0)
  if network is None:
    network = networks.PolicyValueNetwork(
        model.network_input_spec(), model.action_spec(), torso_units=32,
        num_residual_blocks=1, head_units=32,
        q_head=search_config.proposal_alpha > 0)
  return agent_lib.SpoAgent(
      ts.time_step_spec(model.observation_spec()), model.action_spec(),
      network, model, search_config=search_config, config=config)


def fabricated_experience(agent, batch=4, time=5, advantage_scale=1.0,
                          seed=0):
  """Random trajectories with valid step types and search targets."""
  rng = np.random.default_rng(seed)
  experience = tensor_spec.sample_spec_nest(
      agent.collect_data_spec, seed=seed, outer_dims=(batch, time))
  step_type = rng.choice([0, 1, 1, 1, 2], size=[batch, time]).astype(np.int32)
  next_step_type = np.roll(step_type, -1, axis=1)
  logits = rng.normal(size=[batch, time, 18])
  probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
  info = dict(experience.policy_info)
  info['search_policy'] = tf.constant(probs, tf.float32)
  info['eta_advantages'] = tf.constant(
      advantage_scale * rng.normal(size=[batch, time, 4]), tf.float32)
  info['eta_log_ratios'] = tf.zeros([batch, time, 4])
  info['retrace_value'] = tf.constant(rng.normal(size=[batch, time]),
                                      tf.float32)
  return experience._replace(
      step_type=tf.constant(step_type),
      next_step_type=tf.constant(next_step_type),
      reward=tf.constant(rng.normal(size=[batch, time]), tf.float32),
      discount=tf.constant(rng.uniform(size=[batch, time]) > 0.1, tf.float32),
      policy_info=info)


PENDULUM = pendulum.Pendulum(time_limit=20)


def make_pendulum_agent(config=config_lib.SpoConfig(
    epsilon_eta=0.2, initial_eta=10.0), search_config=SEARCH):
  return make_agent(config, PENDULUM, search_config)


def collected_experience(agent, batch=4, time=6):
  """[B, T] trajectories collected by the agent's search on the pendulum."""
  env = model_lib.ModelEnvironment(PENDULUM, batch, seed=3)
  steps = []
  time_step = env.current_time_step()
  for _ in range(time):
    action_step = agent.collect_policy.action(time_step)
    next_time_step = env.step(action_step.action)
    steps.append(trajectory.from_transition(time_step, action_step,
                                            next_time_step))
    time_step = next_time_step
  return tf.nest.map_structure(lambda *x: tf.stack(x, axis=1), *steps)
