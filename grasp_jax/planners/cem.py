"""CEM: the cross-entropy method over action sequences (the DINO-WM planner).

Sample plans from a diagonal Gaussian (clipped to the box), refit mean and std to the
top-``num_elites``, with an optional momentum and a floor on the std.
"""


import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from grasp_jax.planners import base
from grasp_jax.problem import Problem

__all__ = ["cem", "CemConfig", "CemState", "CemInfo"]


@dataclasses.dataclass(frozen=True)
class CemConfig:
    iterations: int
    num_samples: int
    num_elites: int
    init_std: float
    min_std: float
    momentum: float


class CemState(NamedTuple):
    """``mean``/``std``: ``[H, A]`` sampling distribution in ``[-1, 1]`` box coordinates."""

    mean: jax.Array
    std: jax.Array


class CemInfo(NamedTuple):
    mean_cost: jax.Array
    elite_cost: jax.Array
    mean_std: jax.Array
    nonfinite: jax.Array


def _build(config: CemConfig) -> base.Planner:
    def init(problem: Problem, params, init_state, goal, key, init_actions=None, warm=None) -> CemState:
        del params, goal, key, warm
        mean = base.initial_unit_actions(problem, init_actions, init_state.dtype)
        return CemState(mean, jnp.full_like(mean, config.init_std))

    def step(problem: Problem, params, init_state, goal, state: CemState, key, iteration, num_iterations):
        del iteration, num_iterations
        samples = base.gaussian_candidates(key, state.mean, state.std, config.num_samples)
        plans = base.unit_to_box(problem, samples)
        costs = base.batched_rollout_cost(problem, params, init_state, goal, plans)
        elite_idx = jnp.argsort(costs)[: config.num_elites]
        elites = samples[elite_idx]
        m = config.momentum
        mean = m * state.mean + (1 - m) * jnp.mean(elites, axis=0)
        std = jnp.maximum(m * state.std + (1 - m) * jnp.std(elites, axis=0), config.min_std)
        # If every sample was non-finite the elites are garbage: keep the distribution.
        new = optax.tree.where(jnp.any(jnp.isfinite(costs)), CemState(mean, std), state)
        mean_cost, nonfinite = base.sampling_info_stats(costs)
        info = CemInfo(mean_cost, jnp.mean(costs[elite_idx]), jnp.mean(new.std), nonfinite)
        return new, base.best_of(plans, costs), info

    return base.Planner(init=init, step=step, iterations=config.iterations, name="cem", config=config,
                        iteration_cost=base.sampling_cost(config.num_samples))


_build_cached = base.cached_factory(_build)


def cem(
    *,
    iterations: int = 30,
    num_samples: int = 256,
    num_elites: int = 32,
    init_std: float = 0.5,
    min_std: float = 0.05,
    momentum: float = 0.0,
) -> base.Planner:
    """Builds the CEM planner.

    Args:
      iterations: CEM iterations.
      num_samples: plans sampled per iteration (the current mean is one of them).
      num_elites: top plans the distribution is refit to.
      init_std: initial std, in units of the box half-width.
      min_std: floor on the std (box half-width units), keeps exploring.
      momentum: ``new = momentum * old + (1 - momentum) * elite_fit``.
    """
    base.check_int("iterations", iterations)
    base.check_int("num_samples", num_samples, minimum=2)
    base.check_int("num_elites", num_elites, maximum=num_samples)
    base.check_float("init_std", init_std, strict=True)
    base.check_float("min_std", min_std)
    base.check_float("momentum", momentum)
    if momentum >= 1:
        raise ValueError(f"momentum must be in [0, 1); got {momentum!r}.")
    return _build_cached(CemConfig(iterations, num_samples, num_elites, init_std, min_std, momentum))
