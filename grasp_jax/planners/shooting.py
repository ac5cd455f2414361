"""Random shooting: sample plans uniformly in the action box, keep the best.

Unlike google/trajax's ``random_shooting``, the returned plan is the best *sampled*
plan and its states are that plan's rollout (the driver re-rolls the returned actions).
"""


import dataclasses
from typing import NamedTuple

import jax

from grasp_jax.planners import base
from grasp_jax.problem import Problem

__all__ = ["random_shooting", "ShootingConfig", "ShootingState", "ShootingInfo"]


@dataclasses.dataclass(frozen=True)
class ShootingConfig:
    iterations: int
    num_samples: int


class ShootingState(NamedTuple):
    init_state: jax.Array
    goal: object
    actions: jax.Array
    best_actions: jax.Array
    best_cost: jax.Array


class ShootingInfo(NamedTuple):
    mean_cost: jax.Array
    best_cost: jax.Array
    nonfinite: jax.Array


def _build(config: ShootingConfig) -> base.Planner:
    def init(problem: Problem, params, init_state, goal, key, init_actions=None, init_states=None) -> ShootingState:
        del key, init_states
        actions = base.unit_to_box(problem, base.initial_unit_actions(problem, init_actions, init_state.dtype))
        cost = base.rollout_cost(problem, params, init_state, goal, actions)  # the warm start competes too
        return ShootingState(init_state, goal, actions, actions, cost)

    def step(problem: Problem, params, state: ShootingState, key, iteration):
        del iteration
        shape = (config.num_samples, problem.horizon, problem.action_dim)
        samples = jax.random.uniform(key, shape, state.init_state.dtype, problem.low, problem.high)
        costs = base.batched_rollout_cost(problem, params, state.init_state, state.goal, samples)
        best_actions, best_cost = base.update_best(state.best_actions, state.best_cost, *base.best_of(samples, costs))
        mean_cost, nonfinite = base.sampling_info_stats(costs)
        state = state._replace(actions=best_actions, best_actions=best_actions, best_cost=best_cost)
        return state, ShootingInfo(mean_cost=mean_cost, best_cost=best_cost, nonfinite=nonfinite)

    return base.Planner(init=init, step=step, iterations=config.iterations, name="random_shooting", config=config)


_build_cached = base.cached_factory(_build)


def random_shooting(*, iterations: int = 10, num_samples: int = 256) -> base.Planner:
    """Builds the random-shooting planner.

    Args:
      iterations: sampling rounds.
      num_samples: plans sampled uniformly in the box per round.
    """
    base.check_int("iterations", iterations)
    base.check_int("num_samples", num_samples)
    return _build_cached(ShootingConfig(iterations=iterations, num_samples=num_samples))
