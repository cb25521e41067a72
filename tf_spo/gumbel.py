"""Gumbel MuZero search on the true model (Danihelka et al., ICLR 2022).

The tree-search baseline of both papers (AlphaZero/Gumbel MCTS with the true
model), written as a pure function like `tf_spo.search.smc_search`: root
observations, the planning model, a network function, a static
`GumbelConfig` and an explicit stateless seed in; a `GumbelOutput` out. It is
static-shaped apart from the batch and compiles with `jit_compile=True` for
pure-TF models.

The algorithm follows the paper (and mctx's `gumbel_muzero_policy`):
- Root: Gumbel noise g(a) is added to the prior logits; the first
  simulations visit the top-m actions by g + logits (Gumbel-top-k sampling
  without replacement), and Sequential Halving then halves the considered
  actions by g + logits + sigma(q-hat), ranked at the end of each phase,
  until the budget is spent.
- Interior nodes pick deterministically: argmax of the improved policy
  softmax(logits + sigma(completed Q)) minus N(a) / (1 + sum_b N(b)).
- Completed Q: visited actions have their Q = r + gamma * discount * V(child);
  unvisited ones the mixed value v_mix of the node (the network value mixed
  with the prior-weighted Q of the visited actions). sigma min-max
  normalises them over the node's actions and scales them by
  (c_visit + max_b N(b)) * c_scale.
- The executed action is the best of the most visited actions by
  g + logits + sigma(completed Q); the policy target is the improved policy
  softmax(logits + sigma(completed Q)) at the root.

The tree is a set of node-major arrays with `num_simulations + 1` nodes:
node 0 is the root, simulation s expands node s + 1. Every simulation
descends from the root to an unexpanded edge, steps the model there (one
model step and one network evaluation per root), and backs the leaf's value
up the path.

A node has K edges. For discrete actions they are the A actions, with the
network's logits as prior. For continuous actions (sampled actions, as in
Sampled MuZero, Hubert et al. 2021) each node draws K =
`num_sampled_actions` actions from pi when it is expanded, with a uniform
prior over them (the empirical distribution of samples from pi); the search
over the K edges is the same, and its targets are the root's K atoms with
the improved policy as their weights.
"""

import math
from typing import Any, Callable, NamedTuple

import numpy as np
import tensorflow as tf

from environments import model as model_lib
from tf_spo import action_spaces
from tf_spo import config as config_lib
from tf_spo import networks

NetworkFn = Callable[[Any], networks.NetworkOutput]
_UNEXPANDED = -1
# Floor of masked logits in the root scores, as in the paper's code.
_LOW_LOGIT = -1e9


class GumbelOutput(NamedTuple):
  """What one Gumbel MuZero search returns for B roots with K edges.

  Attributes:
    action: [B] int32, the selected root edge: an index into `atoms` (for
      discrete actions, the action itself).
    atoms: [B, K, ...] search actions of the root's edges: the A actions,
      or K actions sampled from pi (pre-squash for Gaussian policies).
    action_weights: [B, K] float32, the improved policy
      softmax(logits + sigma(completed Q)) over the root's edges: the policy
      target.
    visit_counts: [B, K] float32 visits of the root's edges.
    completed_q: [B, K] float32 completed Q-values at the root (before
      sigma).
    value: [B] float32, the root's value: the mean of its network value and
      every simulation's backed-up return.
    root_value: [B] float32, V of the root.
    prior: [B, K] float32 root prior logits over the edges (0 for sampled
      actions).
    gumbel: [B, K] float32 root Gumbel noise (zeros without noise).
  """
  action: tf.Tensor
  atoms: tf.Tensor
  action_weights: tf.Tensor
  visit_counts: tf.Tensor
  completed_q: tf.Tensor
  value: tf.Tensor
  root_value: tf.Tensor
  prior: tf.Tensor
  gumbel: tf.Tensor


def sequential_halving(max_num_considered: int,
                       num_simulations: int) -> tuple:
  """Sequential Halving's schedule at the root.

  Simulation s visits, among the considered actions, one with exactly
  `considered_visits[s]` visits so far. Each phase gives every considered
  action max(1, floor(S / (ceil(log2 m) * k))) more visits, then halves k
  (down to 2), as in the paper (section 3.2) and mctx; `phase_start[s]`
  marks the first simulation of each phase, where the actions are ranked.

  Args:
    max_num_considered: m, actions considered at first (>= 1).
    num_simulations: S.

  Returns:
    (considered_visits int32 [S], phase_start bool [S]) arrays.
  """
  if max_num_considered <= 1:
    return (np.arange(num_simulations, dtype=np.int32),
            np.ones(num_simulations, bool))
  log2max = math.ceil(math.log2(max_num_considered))
  sequence, starts, visits = [], [], [0] * max_num_considered
  considered = max_num_considered
  while len(sequence) < num_simulations:
    starts.append(len(sequence))
    extra = max(1, int(num_simulations / (log2max * considered)))
    for _ in range(extra):
      sequence.extend(visits[:considered])
      for i in range(considered):
        visits[i] += 1
    considered = max(2, considered // 2)
  phase_start = np.zeros(len(sequence), bool)
  phase_start[starts] = True
  return (np.array(sequence[:num_simulations], np.int32),
          phase_start[:num_simulations])


def mixed_value(raw_value: tf.Tensor, q_values: tf.Tensor,
                visit_counts: tf.Tensor, prior_logits: tf.Tensor) -> tf.Tensor:
  """v_mix: the network value mixed with the visited actions' Q (app. D).

  v_mix = (V + sum_b N(b) * sum_{a visited} pi(a) Q(a) / sum_{a visited}
  pi(a)) / (1 + sum_b N(b)).

  Args:
    raw_value: [B] network value of the node.
    q_values: [B, A] Q-values (anything for unvisited actions).
    visit_counts: [B, A] visits.
    prior_logits: [B, A] logits.

  Returns:
    [B] float32.
  """
  visited = visit_counts > 0
  probs = tf.maximum(tf.nn.softmax(prior_logits), np.finfo(np.float32).tiny)
  visited_probs = tf.where(visited, probs, 0.0)
  sum_probs = tf.reduce_sum(visited_probs, axis=-1, keepdims=True)
  weighted_q = tf.reduce_sum(
      tf.where(visited, visited_probs * q_values /
               tf.where(sum_probs > 0, sum_probs, 1.0), 0.0), axis=-1)
  total = tf.reduce_sum(visit_counts, axis=-1)
  return (raw_value + total * weighted_q) / (total + 1.0)


def completed_q_values(raw_value: tf.Tensor, q_values: tf.Tensor,
                       visit_counts: tf.Tensor,
                       prior_logits: tf.Tensor) -> tf.Tensor:
  """Q of visited actions, v_mix for the others: [B, A]."""
  value = mixed_value(raw_value, q_values, visit_counts, prior_logits)
  return tf.where(visit_counts > 0, q_values, value[:, None])


def sigma(completed_q: tf.Tensor, visit_counts: tf.Tensor,
          config: config_lib.GumbelConfig) -> tf.Tensor:
  """The scaled Q: (c_visit + max_b N(b)) * c_scale * min-max normalised q."""
  low = tf.reduce_min(completed_q, axis=-1, keepdims=True)
  high = tf.reduce_max(completed_q, axis=-1, keepdims=True)
  normalised = (completed_q - low) / tf.maximum(high - low, 1e-8)
  scale = (config.c_visit + tf.reduce_max(visit_counts, axis=-1,
                                          keepdims=True)) * config.c_scale
  return scale * normalised


def score_considered(considered_visit: tf.Tensor, gumbel: tf.Tensor,
                     logits: tf.Tensor, sigma_q: tf.Tensor,
                     visit_counts: tf.Tensor) -> tf.Tensor:
  """g + logits + sigma(q) for actions with `considered_visit` visits.

  Args:
    considered_visit: [B] or [B, 1] visit count an action must have.
    gumbel: [B, A] Gumbel noise.
    logits: [B, A] prior logits.
    sigma_q: [B, A] sigma of the completed Q-values.
    visit_counts: [B, A] visits.

  Returns:
    [B, A] scores, -inf for the actions not considered.
  """
  considered_visit = tf.reshape(considered_visit, [-1, 1])
  logits = logits - tf.reduce_max(logits, axis=-1, keepdims=True)
  score = tf.maximum(_LOW_LOGIT, gumbel + logits + sigma_q)
  return tf.where(visit_counts == considered_visit, score, -np.inf)


def node_actions(policy: Any, action_space: action_spaces.ActionSpace,
                 config: config_lib.GumbelConfig,
                 seed: tf.Tensor) -> tuple:
  """The edges of new nodes: (prior logits [B, K], search actions [B, K, ...]).

  Discrete actions: the A actions with pi's logits. Continuous actions:
  `config.num_sampled_actions` actions drawn from pi, uniform prior.
  """
  if action_space.is_discrete:
    logits = tf.cast(policy, tf.float32)
    return logits, tf.broadcast_to(action_space.enumerate(), tf.shape(logits))
  atoms = action_space.sample(policy, config.num_sampled_actions, seed)
  return tf.zeros(tf.shape(atoms)[:2]), atoms


class _Tree(NamedTuple):
  """Node-major arrays of a batch of trees: [nodes, B, ...]."""
  states: Any
  atoms: tf.Tensor  # [M, B, K, ...] search actions of the edges
  logits: tf.Tensor  # [M, B, K]
  raw_values: tf.Tensor  # [M, B]
  node_values: tf.Tensor  # [M, B]
  node_visits: tf.Tensor  # [M, B] float32
  parents: tf.Tensor  # [M, B] int32
  action_from_parent: tf.Tensor  # [M, B] int32
  children_index: tf.Tensor  # [M, B, K] int32
  children_visits: tf.Tensor  # [M, B, K] float32
  children_values: tf.Tensor  # [M, B, K]
  children_rewards: tf.Tensor  # [M, B, K]
  children_discounts: tf.Tensor  # [M, B, K]


def _node_index(node: tf.Tensor) -> tf.Tensor:
  """[B, 2] indices (node[b], b) into a node-major array."""
  return tf.stack([node, tf.range(tf.shape(node)[0], dtype=node.dtype)], -1)


def _edge_index(node: tf.Tensor, action: tf.Tensor) -> tf.Tensor:
  """[B, 3] indices (node[b], b, action[b]) into a children array."""
  return tf.concat([_node_index(node), action[:, None]], -1)


def _q_values(tree: _Tree, node: tf.Tensor) -> tf.Tensor:
  """Q(a) = r(a) + discount(a) * V(child a) at nodes [B]: [B, A]."""
  index = _node_index(node)
  return (tf.gather_nd(tree.children_rewards, index) +
          tf.gather_nd(tree.children_discounts, index) *
          tf.gather_nd(tree.children_values, index))


def _sigma_at(tree: _Tree, node: tf.Tensor,
              config: config_lib.GumbelConfig) -> tuple:
  """(completed Q, sigma(completed Q), visits, logits) at nodes [B]."""
  index = _node_index(node)
  visits = tf.gather_nd(tree.children_visits, index)
  logits = tf.gather_nd(tree.logits, index)
  completed = completed_q_values(tf.gather_nd(tree.raw_values, index),
                                 _q_values(tree, node), visits, logits)
  return completed, sigma(completed, visits, config), visits, logits


def _interior_action(tree: _Tree, node: tf.Tensor,
                     config: config_lib.GumbelConfig) -> tf.Tensor:
  """Deterministic selection below the root (paper, section 5)."""
  _, sigma_q, visits, logits = _sigma_at(tree, node, config)
  improved = tf.nn.softmax(logits + sigma_q)
  score = improved - visits / (1.0 + tf.reduce_sum(visits, -1, keepdims=True))
  return tf.argmax(score, axis=-1, output_type=tf.int32)


def _root_action(tree: _Tree, gumbel: tf.Tensor, considered_visit: tf.Tensor,
                 phase_start: tf.Tensor, ranking: tf.Tensor,
                 config: config_lib.GumbelConfig) -> tuple:
  """Sequential Halving's choice at the root for one simulation.

  The actions are ranked by g + logits + sigma(completed Q) at the start of
  each phase, and the ranking holds for the whole phase, so a phase keeps
  the best half of the previous phase's actions as ranked at its end
  (exact Sequential Halving; mctx re-ranks at every simulation instead).

  Args:
    tree: the trees.
    gumbel: [B, A] root Gumbel noise.
    considered_visit: scalar, the visits an action must have to be chosen.
    phase_start: scalar bool, this simulation starts a phase.
    ranking: [B, A] the phase's ranking scores so far.
    config: the search configuration.

  Returns:
    (action [B], ranking [B, A] of this phase).
  """
  root = tf.zeros(tf.shape(gumbel)[:1], tf.int32)
  _, sigma_q, visits, logits = _sigma_at(tree, root, config)
  logits = logits - tf.reduce_max(logits, axis=-1, keepdims=True)
  ranking = tf.where(phase_start,
                     tf.maximum(_LOW_LOGIT, gumbel + logits + sigma_q),
                     ranking)
  score = tf.where(visits == tf.cast(considered_visit, tf.float32), ranking,
                   -np.inf)
  return tf.argmax(score, axis=-1, output_type=tf.int32), ranking


def _descend(tree: _Tree, root_action: tf.Tensor,
             config: config_lib.GumbelConfig) -> tuple:
  """From the root to an unexpanded edge: (parent node [B], action [B])."""
  node = tf.zeros_like(root_action)
  action = root_action
  child = tf.gather_nd(tree.children_index, _edge_index(node, action))

  def body(node, action, child):
    expanded = child != _UNEXPANDED
    next_node = tf.where(expanded, child, node)
    next_action = tf.where(expanded, _interior_action(tree, next_node, config),
                           action)
    next_child = tf.where(
        expanded,
        tf.gather_nd(tree.children_index, _edge_index(next_node, next_action)),
        child)
    return next_node, next_action, next_child

  node, action, _ = tf.while_loop(
      lambda node, action, child: tf.reduce_any(child != _UNEXPANDED), body,
      (node, action, child), maximum_iterations=config.num_simulations)
  return node, action


def _update(array: tf.Tensor, index: tf.Tensor, values: tf.Tensor):
  return tf.tensor_scatter_nd_update(array, index, values)


def _expand(tree: _Tree, node_id: tf.Tensor, parent: tf.Tensor,
            action: tf.Tensor, model, network_fn: NetworkFn,
            action_space: action_spaces.ActionSpace,
            config: config_lib.GumbelConfig, seed: tf.Tensor) -> _Tree:
  """Steps the model on edge (parent, action) into new node `node_id`."""
  parent_index = _node_index(parent)
  state = tf.nest.map_structure(lambda x: tf.gather_nd(x, parent_index),
                                tree.states)
  edge = _edge_index(parent, action)
  step = model.step(state, action_space.env_action(
      tf.gather_nd(tree.atoms, edge)))
  output = network_fn(model_lib.network_input(model.observe(step.state)))
  logits, atoms = node_actions(output.policy, action_space, config, seed)
  new = [[node_id]]
  batch = tf.shape(parent)[0]
  return tree._replace(
      states=tf.nest.map_structure(
          lambda x, s: _update(x, new, tf.cast(s, x.dtype)[None]),
          tree.states, step.state),
      atoms=_update(tree.atoms, new, atoms[None]),
      logits=_update(tree.logits, new, logits[None]),
      raw_values=_update(tree.raw_values, new, output.value[None]),
      node_values=_update(tree.node_values, new, output.value[None]),
      node_visits=_update(tree.node_visits, new, tf.ones([1, batch])),
      parents=_update(tree.parents, new, parent[None]),
      action_from_parent=_update(tree.action_from_parent, new, action[None]),
      children_index=_update(tree.children_index, edge,
                             tf.fill([batch], node_id)),
      children_rewards=_update(tree.children_rewards, edge,
                               tf.cast(step.reward, tf.float32)),
      children_discounts=_update(
          tree.children_discounts, edge,
          config.discount * tf.cast(step.discount, tf.float32)))


def _backup(tree: _Tree, leaf: tf.Tensor) -> _Tree:
  """Backs the value of node `leaf` (scalar) up to the root of every tree."""
  batch = tf.shape(tree.raw_values)[1]
  index = tf.fill([batch], leaf)
  value = tree.node_values[leaf]

  def body(tree, index, value):
    active = index != 0
    node_index = _node_index(index)
    parent = tf.maximum(tf.gather_nd(tree.parents, node_index), 0)
    action = tf.maximum(tf.gather_nd(tree.action_from_parent, node_index), 0)
    parent_index = _node_index(parent)
    edge = _edge_index(parent, action)
    new_value = (tf.gather_nd(tree.children_rewards, edge) +
                 tf.gather_nd(tree.children_discounts, edge) * value)
    count = tf.gather_nd(tree.node_visits, parent_index)
    parent_value = tf.gather_nd(tree.node_values, parent_index)
    child_visits = tf.gather_nd(tree.children_visits, edge)
    child_value = tf.gather_nd(tree.children_values, edge)
    keep = lambda new, old: tf.where(active, new, old)
    tree = tree._replace(
        node_values=_update(tree.node_values, parent_index, keep(
            (parent_value * count + new_value) / (count + 1.0),
            parent_value)),
        node_visits=_update(tree.node_visits, parent_index,
                            keep(count + 1.0, count)),
        children_values=_update(tree.children_values, edge, keep(
            tf.gather_nd(tree.node_values, node_index), child_value)),
        children_visits=_update(tree.children_visits, edge,
                                keep(child_visits + 1.0, child_visits)))
    return tree, keep(parent, index), keep(new_value, value)

  tree, _, _ = tf.while_loop(
      lambda tree, index, value: tf.reduce_any(index != 0), body,
      (tree, index, value),
      maximum_iterations=tree.raw_values.shape[0])
  return tree


def gumbel_search(root_observation: Any, model, network_fn: NetworkFn,
                  config: config_lib.GumbelConfig, seed: tf.Tensor,
                  add_noise: bool = True) -> GumbelOutput:
  """Runs Gumbel MuZero's search from a batch of root observations.

  Args:
    root_observation: nest of [B, ...] observations of the model (a
      `PlanningObservation` for models that carry their state).
    model: an `environments.EnvironmentModel` (discrete or continuous
      actions).
    network_fn: maps network inputs [M, ...] to a `NetworkOutput`.
    config: static `GumbelConfig`.
    seed: stateless seed, int tensor of shape [2].
    add_noise: Python bool: Gumbel noise of scale `config.gumbel_scale` at
      the root (collect); without it the search is deterministic.

  Returns:
    A `GumbelOutput`.
  """
  action_space = action_spaces.for_spec(model.action_spec())
  num_nodes = config.num_simulations + 1
  # int32 seeds: TFP's samplers take no others.
  seeds = tf.random.experimental.stateless_split(
      tf.cast(seed, tf.int32), num=config.num_simulations + 2, alg='philox')
  root = network_fn(model_lib.network_input(root_observation))
  batch = tf.shape(root.value)[0]
  logits, root_atoms = node_actions(root.policy, action_space, config,
                                    seeds[1])
  num_edges = logits.shape[-1]
  gumbel = tf.zeros_like(logits)
  if add_noise and config.gumbel_scale > 0:
    # Integers on (0, 2^24] scaled into (0, 1]: compiled and uncompiled
    # float draws differ for the same seed in TF 2.15, integer ones agree.
    ticks = tf.random.stateless_uniform(
        tf.shape(logits), seeds[0], minval=1,
        maxval=2**24 + 1, dtype=tf.int32, alg='philox')
    uniform = tf.cast(ticks, tf.float32) * 2.0**-24
    gumbel = -config.gumbel_scale * tf.math.log(-tf.math.log(uniform))

  def nodes(x):
    return tf.zeros(tf.concat([[num_nodes], tf.shape(x)], 0), x.dtype)

  root_state = model_lib.planning_state(model, root_observation)
  edges = tf.zeros([num_nodes, batch, num_edges])
  tile = lambda x: tf.tile(x[None], [num_nodes] + [1] * x.shape.rank)
  tree = _Tree(
      states=tf.nest.map_structure(tile, root_state),
      atoms=tile(root_atoms),
      logits=_update(nodes(logits), [[0]], logits[None]),
      raw_values=_update(nodes(root.value), [[0]], root.value[None]),
      node_values=_update(nodes(root.value), [[0]], root.value[None]),
      node_visits=_update(nodes(root.value), [[0]], tf.ones([1, batch])),
      parents=tf.fill([num_nodes, batch], _UNEXPANDED),
      action_from_parent=tf.fill([num_nodes, batch], _UNEXPANDED),
      children_index=tf.fill([num_nodes, batch, num_edges], _UNEXPANDED),
      children_visits=edges, children_values=edges, children_rewards=edges,
      children_discounts=edges)
  considered, phase_start = (tf.constant(x) for x in sequential_halving(
      min(config.max_num_considered_actions, num_edges),
      config.num_simulations))

  def simulate(simulation, tree, ranking):
    root_action, ranking = _root_action(
        tree, gumbel, considered[simulation], phase_start[simulation],
        ranking, config)
    parent, action = _descend(tree, root_action, config)
    tree = _expand(tree, simulation + 1, parent, action, model, network_fn,
                   action_space, config, seeds[simulation + 2])
    return simulation + 1, _backup(tree, simulation + 1), ranking

  _, tree, _ = tf.while_loop(
      lambda simulation, *_: simulation < config.num_simulations, simulate,
      (tf.constant(0), tree, tf.zeros_like(logits)))

  root_node = tf.zeros([batch], tf.int32)
  completed, sigma_q, visits, _ = _sigma_at(tree, root_node, config)
  most_visited = tf.reduce_max(visits, axis=-1)
  action = tf.argmax(
      score_considered(most_visited, gumbel, logits, sigma_q, visits),
      axis=-1, output_type=tf.int32)
  return GumbelOutput(
      action=action,
      atoms=root_atoms,
      action_weights=tf.nn.softmax(logits + sigma_q),
      visit_counts=visits,
      completed_q=completed,
      value=tree.node_values[0],
      root_value=root.value,
      prior=logits,
      gumbel=gumbel)
