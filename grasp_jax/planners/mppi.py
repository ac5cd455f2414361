"""MPPI: model-predictive path integral control over action sequences.

Perturb the current mean plan with Gaussian noise (clipped to the box), weight each
sample by ``exp(-(cost - min_cost) / (temperature * spread))`` and move the mean to the
weighted average. ``spread`` is the std of the sampled costs, so ``temperature`` is
dimensionless and one default works across cost scales.
"""


import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp

from grasp_jax.planners import base
from grasp_jax.problem import Problem

__all__ = ["mppi", "MppiConfig", "MppiState", "MppiInfo"]


@dataclasses.dataclass(frozen=True)
class MppiConfig:
    iterations: int
    num_samples: int
    noise_std: float
    temperature: float
    momentum: float


class MppiState(NamedTuple):
    """``mean``: ``[H, A]`` nominal plan in ``[-1, 1]`` box coordinates."""

    mean: jax.Array


class MppiInfo(NamedTuple):
    mean_cost: jax.Array
    effective_samples: jax.Array
    nonfinite: jax.Array


def _build(config: MppiConfig) -> base.Planner:
    def init(problem: Problem, params, init_state, goal, key, init_actions=None, warm=None) -> MppiState:
        del params, goal, key, warm
        return MppiState(base.initial_unit_actions(problem, init_actions, init_state.dtype))

    def step(problem: Problem, params, init_state, goal, state: MppiState, key, iteration, num_iterations):
        del iteration, num_iterations
        std = jnp.full_like(state.mean, config.noise_std)
        samples = base.gaussian_candidates(key, state.mean, std, config.num_samples)
        plans = base.unit_to_box(problem, samples)
        costs = base.batched_rollout_cost(problem, params, init_state, goal, plans)
        finite = jnp.isfinite(costs)
        min_cost = jnp.min(costs)
        safe = jnp.where(finite, costs, min_cost)
        spread = jnp.std(safe) + 1e-12 * (1.0 + jnp.abs(min_cost))
        logits = jnp.where(finite, -(safe - min_cost) / (config.temperature * spread), -jnp.inf)
        weights = jax.nn.softmax(logits)
        new_mean = jnp.einsum("n,nha->ha", weights, samples)
        new_mean = config.momentum * state.mean + (1 - config.momentum) * new_mean
        mean = jnp.where(jnp.any(finite), new_mean, state.mean)
        mean_cost, nonfinite = base.sampling_info_stats(costs)
        ess = 1.0 / jnp.sum(jnp.square(weights))
        return MppiState(mean), base.best_of(plans, costs), MppiInfo(mean_cost, ess, nonfinite)

    return base.Planner(init=init, step=step, iterations=config.iterations, name="mppi", config=config,
                        iteration_cost=base.sampling_cost(config.num_samples))


_build_cached = base.cached_factory(_build)


def mppi(
    *,
    iterations: int = 30,
    num_samples: int = 256,
    noise_std: float = 0.3,
    temperature: float = 0.3,
    momentum: float = 0.0,
) -> base.Planner:
    """Builds the MPPI planner.

    Args:
      iterations: MPPI updates.
      num_samples: perturbed plans per update (the current mean is one of them).
      noise_std: perturbation std in units of the box half-width.
      temperature: softmax temperature relative to the std of the sampled costs.
      momentum: ``new = momentum * old + (1 - momentum) * weighted_mean``.
    """
    base.check_int("iterations", iterations)
    base.check_int("num_samples", num_samples, minimum=2)
    base.check_float("noise_std", noise_std, strict=True)
    base.check_float("temperature", temperature, strict=True)
    base.check_float("momentum", momentum)
    if momentum >= 1:
        raise ValueError(f"momentum must be in [0, 1); got {momentum!r}.")
    return _build_cached(MppiConfig(iterations, num_samples, noise_std, temperature, momentum))
