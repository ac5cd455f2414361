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
    """Random shooting keeps no iterate: the driver keeps the best sample."""


class ShootingInfo(NamedTuple):
    mean_cost: jax.Array
    nonfinite: jax.Array


def _build(config: ShootingConfig) -> base.Planner:
    def init(problem: Problem, params, init_state, goal, key, init_actions=None, warm=None) -> ShootingState:
        del problem, params, init_state, goal, key, init_actions, warm
        return ShootingState()

    def step(problem: Problem, params, init_state, goal, state: ShootingState, key, iteration, num_iterations):
        del iteration, num_iterations
        shape = (config.num_samples, problem.horizon, problem.action_dim)
        samples = jax.random.uniform(key, shape, init_state.dtype, problem.low, problem.high)
        costs = base.batched_rollout_cost(problem, params, init_state, goal, samples)
        mean_cost, nonfinite = base.sampling_info_stats(costs)
        return state, base.best_of(samples, costs), ShootingInfo(mean_cost=mean_cost, nonfinite=nonfinite)

    return base.Planner(init=init, step=step, iterations=config.iterations, name="random_shooting", config=config,
                        iteration_cost=base.sampling_cost(config.num_samples))


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
