"""Presets: the settings each task's runs start from, as data in one place.

`CPU[env]` is an env's own settings on top of the global defaults (the
'cpu' preset: a run that finishes on a 2-core laptop CPU); `NAMED[env]` its
named presets on top of that: 'paper' (table 3 of the SPO paper, its
discrete or continuous column), 'trt_smc' (the TRT-SMC switches), 'trial',
'ppo' (the SPO paper's PPO baseline) and, for the cube, 'cpu_30min'. Task
facts (episode limits, the cube's scrambles) are the registry's
(`environments/registry.py`); `settings.resolve_settings` puts them
together.
"""

from environments import mujoco_tasks

# The paper's search switches (and its value targets without search values),
# over whatever a CPU preset sets.
_PAPER_SEARCH = dict(
    policy_inference='dirac', root_sampling='iid', search_value_weight=0.0,
    eval_num_particles=0, eval_depth=0, eval_resample_period=0)

# Paper 000, appendix D.3, table 3, discrete column.
_PAPER_DISCRETE = dict(
    num_envs=768, rollout_length=21, num_particles=16, depth=4,
    resample_period=4, learning_rate=3e-4, dual_learning_rate=3e-4,
    discount=0.99, gae_lambda=0.95, target_update_tau=5e-3, epsilon_eta=0.5,
    epsilon_alpha=1e-3, initial_eta=0.5, initial_alpha=0.5, max_grad_norm=0.5,
    batch_size=64, sequence_length=17, num_epochs=16, replay_capacity=65_536,
    root_dirichlet_alpha=0.03, root_exploration_fraction=0.25,
    eta_update='gradient', **_PAPER_SEARCH)

# Paper 000, appendix D.3, table 3, continuous column; the search alone
# collects, and the policy starts at the default 1.0 standard deviation over
# whatever a CPU preset sets (Ant's 0.3).
_PAPER_CONTINUOUS = dict(
    num_envs=1024, rollout_length=32, num_particles=16, depth=4,
    resample_period=4, learning_rate=3e-4, dual_learning_rate=1e-3,
    discount=0.99, gae_lambda=0.95, target_update_tau=5e-3, epsilon_eta=0.2,
    initial_eta=10.0, initial_alpha_mean=10.0, initial_alpha_cov=500.0,
    epsilon_alpha_mean=5e-2, epsilon_alpha_cov=5e-4, max_grad_norm=0.5,
    batch_size=32, sequence_length=32, num_epochs=128, replay_capacity=65_536,
    eta_update='gradient', network_collect_fraction=0.0, initial_scale=1.0,
    **_PAPER_SEARCH)

# Paper 001, tables 6 and 7 (Jumanji column) on top of an env's CPU preset:
# K = m = 4, alpha = 0.1, message passing, revived resampling,
# Retrace(0.95) search values mixed in with sigma = 0.5.
_TRT_SMC = dict(
    _PAPER_SEARCH, num_particles=4, depth=4, resample_period=1,
    proposal_alpha=0.1, proposal_atoms=30, revived_resampling=True,
    policy_inference='message_passing', retrace_lambda=0.95,
    search_value_weight=0.5)

# The MuJoCo tasks on a 2-core CPU: the simulator is the planning model, so
# every search step costs B * N simulator steps (docs/history.md, "MuJoCo:
# planning-model throughput").
# With few gradient steps (10k to 30k in a run, the paper's ~400k) the
# paper's multipliers (alpha_mu from 10, alpha_Sigma from 500) hold the
# network's mean and scale at their start through the KL to the slow target
# network, and the network policy did not learn: they start at 1 here
# (docs/results/mstep_probe.md). The replay holds the last 8 iterations
# (the paper's holds 2), and eta is solved per batch for a 1-nat E-step
# bound (docs/results/halfcheetah.md).
_MUJOCO_CPU = dict(
    network='mlp', normalize_observations=True, num_envs=16,
    rollout_length=32, num_particles=16, depth=4, resample_period=4,
    num_threads=2, total_env_steps=1_000_000,
    learning_rate=1e-3, dual_learning_rate=1e-2, epsilon_eta=1.0,
    eta_update='solve', initial_eta=1.0, initial_alpha_mean=1.0,
    initial_alpha_cov=1.0, batch_size=32, sequence_length=32, num_epochs=16,
    replay_capacity=4_096, eval_episodes=8, eval_interval=50_000,
    checkpoint_interval=25_000, log_interval=5_000)

# Snake on a 2-core CPU: paper 001's network (app. B.1 embeds the board with
# one 3x3 convolution of 3 channels before a 2 x 128 MLP) and its Jumanji
# discount. The 3-channel embedding makes training ~3.4x faster than a
# 16-channel conv ResNet front end (docs/history.md, "Snake: learning").
_SNAKE_CPU = dict(
    conv_channels='3', conv_residual_blocks=0,
    torso_units=128, num_residual_blocks=1, head_units=128, num_envs=64,
    rollout_length=16, discount=0.997, learning_rate=3e-4,
    total_env_steps=3_000_000, batch_size=64, sequence_length=16,
    num_epochs=8, replay_capacity=65_536, eval_episodes=32,
    eval_interval=100_000, checkpoint_interval=50_000, log_interval=10_000)

# Boxoban on a 2-core CPU: the paper's conv ResNet (appendix A.1.2) at a
# fraction of its width and depth.
_SOKOBAN_CPU = dict(
    conv_channels='32,32', conv_residual_blocks=1,
    torso_units=128, num_residual_blocks=1, head_units=128, num_envs=64,
    rollout_length=16, learning_rate=3e-4, total_env_steps=1_000_000,
    batch_size=64, sequence_length=17, num_epochs=8, replay_capacity=65_536,
    eval_episodes=200, eval_interval=100_000, checkpoint_interval=50_000,
    log_interval=10_000)

CPU = {
    # The main job: a few minutes of training on 2 cores (docs/using.md).
    # A looser M-step trust region and a faster target network than the
    # paper's (tau 5e-3), eta solved per batch for the paper's 0.5-nat bound
    # (from its 0.5 at dual lr 3e-4 the paper's eta is still 0.3 after 144k
    # steps: docs/history.md, "What limits it"), TRT-SMC's message-passing
    # q-hat and search values, roots without replacement, and targets from a
    # 32 x 2 search while the greedy policy acts with a 16 x 4 one (both 64
    # model steps). At 256k env steps (3 seeds) its search solves 0.710,
    # 0.730 and 0.700 of the 7-move cubes and its network 0.435, 0.475 and
    # 0.460 (docs/results/cube_eval_search.md), against 0.702 / 0.412 when
    # the 16 x 4 search also collects (docs/results/cube_search.md) and
    # 0.52 / 0.26 for the previous preset (the paper's search and eta
    # gradient, eps_alpha 1e-2, eta from 0.05) at 192k.
    'rubiks_cube': dict(num_particles=32, depth=2, resample_period=2,
                        eval_num_particles=16, eval_depth=4,
                        eval_resample_period=2,
                        policy_inference='message_passing',
                        root_sampling='without_replacement',
                        search_value_weight=0.5, eta_update='solve',
                        epsilon_alpha=0.1, initial_eta=0.05,
                        target_update_tau=2e-2, total_env_steps=192_000,
                        eval_interval=64_000, checkpoint_interval=64_000,
                        log_interval=16_000),
    # Tuned for a 2-core CPU (docs/results/pendulum.md): the MuJoCo preset's
    # M-step (a replay of the last 8 iterations, multipliers from 1, eta
    # solved per batch for a 1-nat bound). The previous one (eps_eta 0.2,
    # alpha_mu and alpha_Sigma from 10 and 500, a 64-iteration replay)
    # ended near -196.
    'pendulum': dict(
        num_envs=32, rollout_length=16, total_env_steps=200_000,
        torso_units=64, num_residual_blocks=1, head_units=64,
        learning_rate=1e-3, dual_learning_rate=1e-2, epsilon_eta=1.0,
        eta_update='solve', initial_eta=1.0, initial_alpha_mean=1.0,
        initial_alpha_cov=1.0, batch_size=32, sequence_length=16,
        num_epochs=16, replay_capacity=4_096, eval_episodes=100,
        eval_interval=25_000, checkpoint_interval=50_000,
        log_interval=10_000),
    'sokoban': _SOKOBAN_CPU,
    'snake': _SNAKE_CPU,
    **dict.fromkeys(mujoco_tasks.TASKS, _MUJOCO_CPU),
    # Half of the collection steps act with the network's greedy action
    # while the search still sets the target at that state (DAgger): the
    # network then learns on the states it visits itself. At 300k env steps
    # (3 seeds) its exported network averages 6,832 in gymnasium's
    # HalfCheetah-v5 and the search 12,754, against 734 and 14,876 without
    # (docs/results/halfcheetah.md).
    'halfcheetah': dict(_MUJOCO_CPU, network_collect_fraction=0.5),
    # Ant's episodes end when the torso hops above the healthy range, a hop
    # launched from states the value cannot tell apart from running: the
    # greedy policy plans 8 steps ahead (16 x 8, twice the collection
    # search's cost) and sees it. On the networks of four seed-0 runs (100k
    # and 200k env steps, 16 held-out episodes) 16 x 8 returns 2,409 to
    # 3,031 where 16 x 4 returns 1,282 to 1,693 and 32 x 4 (16 x 8's budget)
    # 1,828 and 2,567 (docs/results/ant_target.md, ant_default.md).
    # The policy starts at a 0.3 standard deviation (pre-squash) instead of
    # 1, with a faster target network (tau 0.2) and a 64k-step replay: the
    # search's atoms, samples of the policy, stay near its mean, and at 100k
    # env steps (3 seeds) the exported network averages 1,312, 1,838 and 701
    # in gymnasium's Ant-v5 (from 1.0: 555, 414 and 434; standing still
    # earns about 1,000) and the 16 x 8 search 5,149, 5,288 and 3,679 in-run
    # (from 1.0: 3,449 and 3,256 on seeds 1 and 2) (docs/results/ant_scale.md).
    'ant': dict(_MUJOCO_CPU, eval_depth=8, initial_scale=0.3,
                target_update_tau=0.2, replay_capacity=65_536),
}

# The SPO paper's PPO baseline (paper 000, appendix E.1: table 7 for
# discrete actions, table 4 for continuous ones): 4 epochs on minibatches,
# clip 0.1, its entropy weight and learning rate (table 4's actor rate for
# both networks), decayed linearly to 0, advantages standardised
# (TF-Agents' default). PPO has no search to pay for, so it collects from
# 64 envs, rollouts of 64 (discrete) or the paper's 16 (continuous) steps;
# its continuous policy starts at the default 1.0 standard deviation on every
# task (Ant's CPU preset sets 0.3 for SPO).
_PPO_DISCRETE = dict(
    algorithm='ppo', num_envs=64, rollout_length=64, num_epochs=4,
    ppo_num_minibatches=64, ppo_clip_ratio=0.1, ppo_entropy_coef=1e-2,
    learning_rate=3e-4, ppo_learning_rate_decay=True)
_PPO_CONTINUOUS = dict(
    algorithm='ppo', num_envs=64, rollout_length=16, num_epochs=4,
    ppo_num_minibatches=16, ppo_clip_ratio=0.1, ppo_entropy_coef=5e-3,
    learning_rate=6.9e-4, ppo_learning_rate_decay=True, initial_scale=1.0)

# A quick trial of a task: train, evaluate and export in under 3 minutes
# on 2 cores, with its CPU preset's network and search; it checks a setup,
# and learns little. Episodes are cut short where a full one takes long.
_TRIAL = dict(total_env_steps=8_192, eval_interval=8_192,
              checkpoint_interval=4_096, log_interval=2_048,
              eval_episodes=32)

NAMED = {
    # With the paper's Rubik's Cube network (appendix A.2.2) and training
    # scrambles [3, 7].
    'rubiks_cube': dict(
        # About 30 minutes on 2 cores (docs/history.md, "Learning on the
        # Rubik's Cube"): for that budget the paper's 512-wide network does a
        # little better (3 seeds) than the default 256-wide one, though it
        # runs a third of the env steps per second.
        cpu_30min=dict(torso_units=512, head_units=512,
                       total_env_steps=500_000, eval_interval=100_000,
                       checkpoint_interval=100_000, log_interval=50_000),
        paper=dict(_PAPER_DISCRETE, torso_units=512, head_units=512,
                   min_scramble=3, max_scramble=7),
        trt_smc=_TRT_SMC, trial=_TRIAL, ppo=_PPO_DISCRETE),
    'pendulum': dict(paper=_PAPER_CONTINUOUS, trt_smc=_TRT_SMC, trial=_TRIAL,
                     ppo=_PPO_CONTINUOUS),
    # The paper's Boxoban network: four [conv, residual, residual] blocks of
    # 256, 256, 512, 512 channels, heads of 128 units.
    'sokoban': dict(
        paper=dict(_PAPER_DISCRETE, conv_channels='256,256,512,512',
                   conv_residual_blocks=2, head_units=128),
        trt_smc=_TRT_SMC,
        # Its search trains at ~50 env steps/s on 2 cores.
        trial=dict(_TRIAL, total_env_steps=2_048, eval_interval=2_048,
                   checkpoint_interval=2_048, log_interval=1_024,
                   eval_episodes=16, num_levels=1_000),
        ppo=_PPO_DISCRETE),
    'snake': dict(paper=_PAPER_DISCRETE, trt_smc=_TRT_SMC,
                  trial=dict(_TRIAL, time_limit=500), ppo=_PPO_DISCRETE),
    **{name: dict(paper=_PAPER_CONTINUOUS, trt_smc=_TRT_SMC,
                  trial=dict(_TRIAL, eval_episodes=2, time_limit=100),
                  ppo=_PPO_CONTINUOUS)
       for name in mujoco_tasks.TASKS},
}
