"""Multi-start: any planner from several starts in one program, best by true cost.

``gj.multistart(gj.bptt(), 16)`` runs 16 copies of BPTT side by side (``vmap`` over the
starts: one batched model call where one copy makes one), and each iteration proposes the
best of the copies' candidates, so the driver keeps the best plan of all starts by true
rollout cost. Start 0 is the warm start (``init_actions``, or the box centre); the others
are drawn uniformly in the action box (``spread=1``) or around start 0 (``spread < 1``).
The equal-budget baseline for GRASP, whose particles are starts of the same kind.
"""


import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from grasp_jax.planners import base
from grasp_jax.problem import Problem

__all__ = ["multistart", "MultistartConfig", "MultistartInfo", "spread_starts"]


@dataclasses.dataclass(frozen=True)
class MultistartConfig:
    planner: base.Planner
    num_starts: int
    spread: float


class MultistartInfo(NamedTuple):
    """``starts``: the inner planner's info with a leading ``[num_starts]`` axis."""

    nonfinite: jax.Array
    starts: Any


def spread_starts(key, first: jax.Array, num_starts: int, spread: float) -> jax.Array:
    """``[num_starts, H, A]`` plans in ``[-1, 1]`` coordinates: ``first`` and
    ``num_starts - 1`` draws ``(1 - spread) * first + spread * U(-1, 1)``."""
    if num_starts == 1:
        return first[None]
    uniform = jax.random.uniform(key, (num_starts - 1,) + first.shape, first.dtype, -1.0, 1.0)
    return jnp.concatenate([first[None], (1.0 - spread) * first + spread * uniform], axis=0)


def _build(config: MultistartConfig) -> base.Planner:
    inner, n = config.planner, config.num_starts

    def init(problem: Problem, params, init_state, goal, key, init_actions=None, warm=None):
        start_key, init_key = jax.random.split(key)
        keys = jax.random.split(init_key, n)
        if warm is not None:  # each copy continues its own shifted iterate
            one = lambda k, w: inner.init(problem, params, init_state, goal, k, None, w)  # noqa: E731
            return jax.vmap(one)(keys, warm)
        first = base.initial_unit_actions(problem, init_actions, init_state.dtype)
        starts = base.unit_to_box(problem, spread_starts(start_key, first, n, config.spread))
        one = lambda k, a: inner.init(problem, params, init_state, goal, k, a, None)  # noqa: E731
        return jax.vmap(one)(keys, starts)

    def step(problem: Problem, params, init_state, goal, state, key, iteration, num_iterations):
        def one(s, k):
            return inner.step(problem, params, init_state, goal, s, k, iteration, num_iterations)

        state, candidates, infos = jax.vmap(one)(state, jax.random.split(key, n))
        info = MultistartInfo(nonfinite=jnp.any(infos.nonfinite), starts=infos)
        return state, base.best_of(candidates.actions, candidates.cost), info

    def shift(problem: Problem, state, k: int):
        return jax.vmap(lambda s: inner.shift(problem, s, k))(state)

    def iteration_cost(horizon: int, iterations: int) -> base.IterationCost:
        per = inner.iteration_cost(horizon, iterations)
        return base.IterationCost(model_calls=n * per.model_calls, depth=per.depth)

    return base.Planner(
        init=init,
        step=step,
        iterations=inner.iterations,
        name=f"{inner.name} x{n}",
        config=config,
        shift=shift,
        iteration_cost=iteration_cost if inner.iteration_cost is not None else None,
        differentiates=inner.differentiates,
    )


_build_cached = base.cached_factory(_build)


def multistart(planner: base.Planner, num_starts: int, *, spread: float = 1.0) -> base.Planner:
    """Runs ``planner`` from ``num_starts`` starts in one program; best start by true cost.

    Args:
      planner: any :class:`~grasp_jax.Planner`; its ``iterations`` stays the default budget.
      num_starts: number of starts (1 = the planner itself, through the same code).
      spread: ``1`` draws starts 1.. uniformly in the action box; ``s < 1`` draws
        ``(1 - s) * start0 + s * U(box)``; ``0`` repeats start 0 (copies then differ only
        by their random keys).

    Returns:
      A :class:`~grasp_jax.Planner`; its state holds the copies' states with a leading
      ``[num_starts]`` axis.
    """
    if not isinstance(planner, base.Planner):
        raise TypeError(f"planner must be a grasp_jax.Planner (e.g. gj.bptt()); got {type(planner).__name__}.")
    base.check_int("num_starts", num_starts)
    if isinstance(spread, bool) or not isinstance(spread, (int, float)) or not 0 <= spread <= 1:
        raise ValueError(f"spread must be a number in [0, 1]; got {spread!r}.")
    return _build_cached(MultistartConfig(planner, num_starts, float(spread)))
