"""Experiments: build, train, resume, evaluate and export runs from Python.

A run is a flat dict of settings (`SETTINGS`; `resolve_settings` fills it
from a task's defaults and a preset) and a run directory holding its
config.json, checkpoints, eval.csv, TensorBoard logs, SavedModels and
summary.json. The `launch/` binaries are flag wrappers of these functions.

  from tf_spo import experiment
  settings = experiment.resolve_settings('rubiks_cube', 'cpu',
                                         {'total_env_steps': 4096})
  summary = experiment.train(settings, 'runs/cube')
  run = experiment.restore_run('runs/cube')
  scores = experiment.evaluate_policy(run.agent.policy,
                                      experiment.make_model(run.settings,
                                                            evaluation=True),
                                      num_episodes=100, seed=1)

Modules: `settings` (the typed config and its flat settings), `presets`,
`algorithms` (the registry: spo, gumbel, ppo), `builders` (model, network,
agents, strategy), `run` (the run directory), `loops` (an iteration's
compiled collect and train), `training` (the training run), `evaluation`,
`export`, `pages` (results pages); `distributed`, `reports`, `scaling` and
`benchmarks` are imported by name.
"""

from tf_spo.experiment.algorithms import ALGORITHMS
from tf_spo.experiment.algorithms import algorithm_name
from tf_spo.experiment.algorithms import make_agent
from tf_spo.experiment.algorithms import make_loop
from tf_spo.experiment.algorithms import search_config
from tf_spo.experiment.algorithms import validate_settings
from tf_spo.experiment.builders import eval_settings
from tf_spo.experiment.builders import make_model
from tf_spo.experiment.builders import make_strategy
from tf_spo.experiment.builders import metrics
from tf_spo.experiment.evaluation import EVAL_SEED_OFFSET
from tf_spo.experiment.evaluation import EvalLog
from tf_spo.experiment.evaluation import Evaluator
from tf_spo.experiment.evaluation import eval_columns
from tf_spo.experiment.evaluation import evaluate_levels
from tf_spo.experiment.evaluation import evaluate_policy
from tf_spo.experiment.evaluation import play_gymnasium
from tf_spo.experiment.evaluation import policy_scorer
from tf_spo.experiment.evaluation import reads_network_input_only
from tf_spo.experiment.export import export_policies
from tf_spo.experiment.export import exported_env
from tf_spo.experiment.export import load_saved_policy
from tf_spo.experiment.loops import run_iteration
from tf_spo.experiment.pages import command_line
from tf_spo.experiment.pages import page_header
from tf_spo.experiment.pages import write_page
from tf_spo.experiment.run import CONFIG_FILE
from tf_spo.experiment.run import PROVENANCE_FILE
from tf_spo.experiment.run import Run
from tf_spo.experiment.run import RunInUseError
from tf_spo.experiment.run import RunPathError
from tf_spo.experiment.run import build_run
from tf_spo.experiment.run import check_saved_model
from tf_spo.experiment.run import read_provenance
from tf_spo.experiment.run import read_settings
from tf_spo.experiment.run import record_provenance
from tf_spo.experiment.run import record_sharing
from tf_spo.experiment.run import restore_run
from tf_spo.experiment.run import source_commit
from tf_spo.experiment.run import write_settings
from tf_spo.experiment.settings import DEFAULTS
from tf_spo.experiment.settings import PRESETS
from tf_spo.experiment.settings import SETTINGS
from tf_spo.experiment.settings import ExperimentConfig
from tf_spo.experiment.settings import parse_conv_channels
from tf_spo.experiment.settings import resolve_settings
from tf_spo.experiment.training import NonFiniteLossError
from tf_spo.experiment.training import non_finite_loss_error
from tf_spo.experiment.training import train
