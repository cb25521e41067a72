"""The algorithm registry: what a run needs to know about each algorithm.

One entry per algorithm (`ALGORITHMS`: spo, gumbel, ppo): its search config,
how its agent is built, which training loop and replay it runs, its progress
line and its own checks. A new algorithm is one entry here; nothing else
compares `settings['algorithm']`.
"""

from typing import Any, Callable, Dict, NamedTuple, Optional

from tf_spo import config as config_lib
from tf_spo.experiment import builders
from tf_spo.experiment import loops
from tf_spo.experiment import settings as settings_lib

check = config_lib.check


class Algorithm(NamedTuple):
  """One algorithm of the registry.

  Attributes:
    search_config_type: the config dataclass of its search (`SearchConfig`,
      `GumbelConfig`), or None for an agent without search (PPO), whose
      `policy` is its `network_policy`: it evaluates and exports only that.
    make_agent: (settings, model, time_step_spec, action_spec, seed,
      train_step_counter) -> the agent; seed and counter may be None (the
      run's seed, the agent's own counter).
    make_loop: run -> its `loops.Loop`.
    replay_length: settings -> steps per environment its replay buffer keeps.
    progress: (agent, loss_info) -> the losses of the progress line.
    check: settings -> None; raises ValueError naming a setting this
      algorithm cannot run with.
    off_policy: it trains on replayed sequences (so the Reverb actor-learner
      can run it).
    report_name: settings -> its name in reports ('trt_smc' for SPO with a
      TRT-SMC switch on).
    forward_passes: settings -> network forward passes of one training
      iteration, counting a backward pass as two (the FLOP ideal of
      `benchmarks.train_benchmark`).
  """
  search_config_type: Optional[type]
  make_agent: Callable[..., Any]
  make_loop: Callable[[Any], loops.Loop]
  replay_length: Callable[[Dict[str, Any]], int]
  progress: Callable[[Any, Any], str]
  check: Callable[[Dict[str, Any]], None]
  off_policy: bool
  report_name: Callable[[Dict[str, Any]], str]
  forward_passes: Callable[[Dict[str, Any]], int]


def _search_agent(config_type: type, q_head: Callable[[Dict[str, Any]], bool],
                  eval_search: Callable[[Dict[str, Any]], Any]):
  """make_agent of a `SpoAgent` with a `config_type` search.

  `eval_search` maps the settings to the evaluation policy's search config,
  or None for the collect search's.
  """

  def make_agent(settings, model, time_step_spec, action_spec, seed=None,
                 train_step_counter=None):
    return builders.spo_agent(
        settings, model, time_step_spec, action_spec,
        settings_lib.part(config_type, settings), q_head(settings), seed,
        train_step_counter, eval_search_config=eval_search(settings))

  return make_agent


def _smc_eval_search(settings: Dict[str, Any]
                     ) -> Optional[config_lib.SearchConfig]:
  """The SMC evaluation search of the `EvalSearchConfig` settings, or None.

  Raises:
    ValueError: naming eval_resample_period if it exceeds the depth.
  """
  eval_search = settings_lib.part(settings_lib.EvalSearchConfig, settings)
  if eval_search.is_default:
    return None
  return eval_search.search_config(
      settings_lib.part(config_lib.SearchConfig, settings))


def _critic_targets(settings: Dict[str, Any]) -> bool:
  return settings['gaussian_policy_target'] == 'critic'


def _replay_length(settings: Dict[str, Any]) -> int:
  return settings['replay_capacity'] // settings['num_envs']


def _check_replay(settings: Dict[str, Any]) -> None:
  check(settings['replay_capacity'] >= settings['num_envs'] *
        settings['sequence_length'], 'replay_capacity',
        '>= num_envs * sequence_length', settings['replay_capacity'])


def _check_spo(settings: Dict[str, Any]) -> None:
  _check_replay(settings)
  _smc_eval_search(settings)


def _check_ppo(settings: Dict[str, Any]) -> None:
  # An iteration trains on its own rollout; the replay settings are unused.
  check(settings['rollout_length'] >= 2, 'rollout_length',
        '>= 2 with algorithm=ppo (the last step of a rollout only '
        'bootstraps the values)', settings['rollout_length'])
  check(settings['strategy'] == 'default', 'strategy',
        "'default' with algorithm=ppo", settings['strategy'])
  rollout = settings['num_envs'] * settings['rollout_length']
  check(rollout % settings['ppo_num_minibatches'] == 0,
        'ppo_num_minibatches',
        f'a divisor of num_envs * rollout_length = {rollout}',
        settings['ppo_num_minibatches'])


def _spo_progress(agent, loss_info) -> str:
  extra = loss_info.extra
  return (f'loss={float(loss_info.loss):.4f} '
          f'policy_loss={float(extra.policy_loss):.4f} '
          f'value_loss={float(extra.value_loss):.4f} '
          f'eta={float(extra.eta):.3f} ' +
          ' '.join(f'{name}={float(value):.3f}' for name, value in
                   agent.alphas.items()) +
          f' kl={float(extra.kl):.5f}')


def _ppo_progress(agent, loss_info) -> str:
  del agent
  extra = loss_info.extra
  return (f'loss={float(loss_info.loss):.4f} '
          f'policy_loss={float(extra.policy_gradient_loss):.4f} '
          f'value_loss={float(extra.value_estimation_loss):.4f} '
          f'entropy_loss={float(extra.entropy_regularization_loss):.4f} '
          f'clip_fraction={float(extra.clip_fraction):.3f}')


def _search_passes(model_steps: Callable[[Dict[str, Any]], int]):
  """forward_passes of a searching agent.

  A root call and `model_steps` calls per env step, and a forward and
  backward pass of every replayed step.
  """

  def forward_passes(settings: Dict[str, Any]) -> int:
    steps = settings['num_envs'] * settings['rollout_length']
    return (steps * (1 + model_steps(settings)) +
            4 * settings['num_epochs'] * settings['batch_size'] *
            settings['sequence_length'])

  return forward_passes


def _ppo_passes(settings: Dict[str, Any]) -> int:
  # The collect policy and the values of the rollout, then a forward and
  # backward pass per epoch (over all minibatches together).
  return (settings['num_envs'] * settings['rollout_length'] *
          (2 + 3 * settings['num_epochs']))


def _spo_name(settings: Dict[str, Any]) -> str:
  trt_smc = (settings['proposal_alpha'] > 0 or settings['revived_resampling']
             or settings['policy_inference'] != 'dirac'
             or settings['search_value_weight'] > 0)
  return 'trt_smc' if trt_smc else 'spo'


ALGORITHMS: Dict[str, Algorithm] = {
    # SPO; TRT-SMC with its switches on. The twisted proposal
    # (proposal_alpha > 0) and the critic's M-step targets read a Q head.
    'spo': Algorithm(
        search_config_type=config_lib.SearchConfig,
        make_agent=_search_agent(
            config_lib.SearchConfig,
            lambda settings: (settings['proposal_alpha'] > 0 or
                              _critic_targets(settings)),
            _smc_eval_search),
        make_loop=loops.make_search_loop, replay_length=_replay_length,
        progress=_spo_progress, check=_check_spo, off_policy=True,
        report_name=_spo_name,
        forward_passes=_search_passes(
            lambda settings: settings['num_particles'] * settings['depth'])),
    # Gumbel MuZero on the true model, the same M-step and value targets.
    'gumbel': Algorithm(
        search_config_type=config_lib.GumbelConfig,
        make_agent=_search_agent(config_lib.GumbelConfig, _critic_targets,
                                 lambda _: None),
        make_loop=loops.make_search_loop, replay_length=_replay_length,
        progress=_spo_progress, check=_check_replay, off_policy=True,
        report_name=lambda _: 'gumbel',
        forward_passes=_search_passes(
            lambda settings: settings['num_simulations'])),
    # TF-Agents' PPOClipAgent, on-policy: its replay holds exactly the one
    # rollout its next train step learns from.
    'ppo': Algorithm(
        search_config_type=None, make_agent=builders.ppo_agent,
        make_loop=loops.make_ppo_loop,
        replay_length=lambda settings: settings['rollout_length'],
        progress=_ppo_progress, check=_check_ppo, off_policy=False,
        report_name=lambda _: 'ppo', forward_passes=_ppo_passes),
}


def get(settings: Dict[str, Any]) -> Algorithm:
  """The registry entry of `settings['algorithm']`.

  Raises:
    ValueError: naming `algorithm` and the registered names.
  """
  name = settings['algorithm']
  check(name in ALGORITHMS, 'algorithm', f'one of {list(ALGORITHMS)}', name)
  return ALGORITHMS[name]


def algorithm_name(settings: Dict[str, Any]) -> str:
  """The algorithm a run trains, as reports name it."""
  return get(settings).report_name(settings)


def search_config(settings: Dict[str, Any]):
  """The run's search config (`SearchConfig`, `GumbelConfig`), or None."""
  config_type = get(settings).search_config_type
  return None if config_type is None else settings_lib.part(config_type,
                                                             settings)


def make_agent(settings: Dict[str, Any], model, time_step_spec, action_spec,
               seed: Optional[int] = None, train_step_counter=None):
  """The run's agent on the real environment's specs (see `Algorithm`)."""
  return get(settings).make_agent(settings, model, time_step_spec,
                                  action_spec, seed, train_step_counter)


def validate_settings(settings: Dict[str, Any]) -> None:
  """Every check a run's construction would make, before anything runs.

  `settings.check_settings` (every part of the typed config), the
  algorithm's own checks, then the model and network built once.

  Raises:
    ValueError: naming the setting and its allowed range.
  """
  settings_lib.check_settings(settings)
  algorithm = get(settings)
  algorithm.check(settings)
  model = builders.make_model(settings)
  check(settings['strategy'] != 'tpu' or model.xla_compatible, 'strategy',
        "not 'tpu' for a task whose model runs Python (the MuJoCo simulator)",
        settings['strategy'])
  check(not (_critic_targets(settings) and algorithm.search_config_type)
        or model.action_spec().dtype.is_floating, 'gaussian_policy_target',
        "'search' for a task with discrete actions (the critic's targets fit "
        'a Gaussian policy)', settings['gaussian_policy_target'])
  builders.network(settings, model)


def make_loop(run) -> loops.Loop:
  """The collect and train functions of a run (`run.Run`), its algorithm's."""
  return get(run.settings).make_loop(run)
