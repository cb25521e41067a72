"""tf-spo: Sequential Monte Carlo Policy Optimisation for TF-Agents.

Modules, from the inside out:
  config    validated `SearchConfig`, `GumbelConfig` and `SpoConfig`.
  search    the pure-TF, XLA-compiled SMC search (`smc_search`).
  gumbel    the Gumbel MuZero baseline search (`gumbel_search`).
  networks  the policy/value networks and the observation normaliser.
  losses    M-step losses and the eta / alpha duals.
  policy    `SmcPolicy`, `GumbelPolicy` (searches) and `NetworkPolicy` (prior)
            TF-Agents policies.
  agent     `SpoAgent`, the TF-Agents agent.
  ppo       `PpoAgent`, the PPO baseline (TF-Agents' PPOClipAgent).
  replay    `StatelessUniformReplayBuffer`, reproducible replay sampling.
"""

from tf_spo.agent import SpoAgent
from tf_spo.agent import SpoLossInfo
from tf_spo.config import GumbelConfig
from tf_spo.config import SearchConfig
from tf_spo.config import SpoConfig
from tf_spo.gumbel import gumbel_search
from tf_spo.networks import MlpActorCriticNetwork
from tf_spo.networks import ObservationNormalizer
from tf_spo.networks import PolicyValueNetwork
from tf_spo.policy import GumbelPolicy
from tf_spo.policy import NetworkPolicy
from tf_spo.policy import SmcPolicy
from tf_spo.ppo import PpoAgent
from tf_spo.ppo import PpoConfig
from tf_spo.replay import StatelessUniformReplayBuffer
from tf_spo.search import SearchOutput
from tf_spo.search import smc_search
