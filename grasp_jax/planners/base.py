"""Base types shared by every planner.

A planner is a :class:`Planner`: a pair of pure functions ``init`` / ``step`` plus the
iteration budget, in the style of optax's ``GradientTransformation`` and blackjax's
``SamplingAlgorithm``. Factories (``gj.grasp(...)``, ``gj.cem(...)``) capture the
hyper-parameters in a frozen, hashable config; equal configs return the *same*
``Planner`` object, so ``jax.jit`` caches keyed on the planner are reused.

Every planner state is a NamedTuple with at least these fields, which the drivers in
:mod:`grasp_jax.plan` read:

* ``actions [H, A]``: the planner's current plan (inside the action box);
* ``best_actions [H, A]`` / ``best_cost []``: the lowest-cost finite plan whose true
  rollout the planner has evaluated so far (``+inf`` if none).

Every per-iteration ``info`` NamedTuple has at least ``best_cost`` and ``nonfinite``
(whether the world model produced NaN/Inf in that iteration).
"""


import functools
from typing import Any, Callable, NamedTuple, Optional, Protocol

import jax
import jax.numpy as jnp

from grasp_jax.problem import Problem, rollout, trajectory_cost

__all__ = [
    "Planner",
    "InitFn",
    "StepFn",
    "estimate_state_scale",
    "initial_unit_actions",
    "rollout_cost",
    "batched_rollout_cost",
    "update_best",
    "tree_all_finite",
    "tree_where",
    "cached_factory",
    "unit_to_box",
    "gaussian_candidates",
    "sampling_info_stats",
    "shooting_loss",
    "best_of",
    "check_int",
    "check_float",
    "check_choice",
]


class InitFn(Protocol):
    def __call__(
        self,
        problem: Problem,
        params: Any,
        init_state: jax.Array,
        goal: Any,
        key: jax.Array,
        init_actions: Optional[jax.Array],
        init_states: Optional[jax.Array],
    ) -> NamedTuple:
        """Returns the initial planner state. ``init_actions [H, A]`` and
        ``init_states [H-1, S]`` (virtual-state warm start, GRASP only) may be ``None``."""


class StepFn(Protocol):
    def __call__(
        self, problem: Problem, params: Any, state: NamedTuple, key: jax.Array, iteration: jax.Array
    ) -> tuple[NamedTuple, NamedTuple]:
        """One planner iteration: ``(state, info)``. ``iteration`` is the 0-based index of
        this iteration (an unbatched int32 scalar, so schedules stay ``lax.cond``s under
        ``vmap``)."""


class Planner(NamedTuple):
    """A planner: pure ``init`` and ``step`` functions and an iteration budget.

    Attributes:
      init: see :class:`InitFn`.
      step: see :class:`StepFn`.
      iterations: fixed iteration budget used by :func:`grasp_jax.plan`.
      name: short name for tables and error messages.
      config: the frozen hyper-parameter config the planner was built from.
    """

    init: InitFn
    step: StepFn
    iterations: int
    name: str
    config: Any = None


def cached_factory(build: Callable[[Any], Planner]) -> Callable[[Any], Planner]:
    """Memoises ``build(config)`` so equal (hashable) configs give the identical Planner."""
    return functools.lru_cache(maxsize=256)(build)


def tree_where(pred: jax.Array, new, old):
    """Leaf-wise ``where(pred, new, old)``: keeps the old iterate when ``pred`` is False
    (how planners skip a step whose gradients or losses were non-finite)."""
    return jax.tree_util.tree_map(lambda n, o: jnp.where(pred, n, o), new, old)


def tree_all_finite(tree) -> jax.Array:
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree_util.tree_leaves(tree)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)


def estimate_state_scale(problem: Problem, params, init_state, goal, key, num_probes: int = 8) -> jax.Array:
    """A scalar length scale of the problem's state space.

    ``sqrt(mean((goal - s0)^2) + mean((F(s0, a) - s0)^2))`` over ``num_probes`` random
    actions ``a`` in the box: the distance to travel combined with the size of one model
    step. Learning rates and noise of state iterates are expressed in this unit, so one
    default works for latents of size 1e-2 and 1e3. Falls back to ``max(rms(s0), 1)``
    when both terms vanish.
    """
    probes = jax.random.uniform(
        key, (num_probes, problem.action_dim), minval=problem.low, maxval=problem.high
    )
    steps = jax.vmap(problem.dynamics, in_axes=(None, None, 0))(params, init_state, probes)
    step_ms = jnp.mean((steps - init_state) ** 2)
    step_ms = jnp.where(jnp.isfinite(step_ms), step_ms, 0.0)
    if problem.cost is None:
        goal_ms = jnp.mean((goal - init_state) ** 2)
    else:
        goal_ms = jnp.zeros(())
    scale = jnp.sqrt(goal_ms + step_ms)
    fallback = jnp.maximum(jnp.sqrt(jnp.mean(init_state**2)), 1.0)
    tiny = 1e-12 * fallback
    return jnp.where(scale > tiny, scale, fallback).astype(init_state.dtype)


def initial_unit_actions(problem: Problem, init_actions, dtype=jnp.float32) -> jax.Array:
    """Warm start in ``[-1, 1]`` coordinates: ``init_actions`` if given, else the box centre."""
    if init_actions is None:
        return jnp.zeros((problem.horizon, problem.action_dim), dtype)
    return jnp.clip(problem.to_unit(jnp.asarray(init_actions, dtype)), -1.0, 1.0)


def unit_to_box(problem: Problem, unit_actions: jax.Array) -> jax.Array:
    """``[-1, 1]`` -> box without clipping (differentiable everywhere; callers project)."""
    return problem.action_center + problem.action_half_width * unit_actions


def rollout_cost(problem: Problem, params, init_state, goal, actions) -> jax.Array:
    """True cost of ``actions [H, A]``: rollout through the model, then the problem cost."""
    states = rollout(problem, params, init_state, actions)
    return trajectory_cost(problem, states, actions, goal)


def shooting_loss(problem: Problem, params, init_state, goal, scale, unit_actions) -> jax.Array:
    """The true (shooting) cost of ``unit_actions [H, A]`` (``[-1, 1]`` coordinates)
    divided by ``scale**2``: the loss BPTT and GRASP's sync descend."""
    actions = unit_to_box(problem, unit_actions)
    states = rollout(problem, params, init_state, actions)
    return trajectory_cost(problem, states, actions, goal) / jnp.square(scale)


def batched_rollout_cost(problem: Problem, params, init_state, goal, actions) -> jax.Array:
    """Costs ``[N]`` of ``N`` candidate plans ``actions [N, H, A]`` (one vmapped rollout)."""
    return jax.vmap(rollout_cost, in_axes=(None, None, None, None, 0))(problem, params, init_state, goal, actions)


def gaussian_candidates(key, mean: jax.Array, std: jax.Array, num_samples: int) -> jax.Array:
    """``num_samples`` plans ``[N, H, A]`` in ``[-1, 1]`` coordinates: the mean itself
    (so a good warm start is never lost) and ``N - 1`` Gaussian samples around it,
    clipped to the box (clipping, not resampling, so asymmetric boxes are respected)."""
    eps = jax.random.normal(key, (num_samples - 1,) + mean.shape, mean.dtype)
    samples = jnp.clip(mean + std * eps, -1.0, 1.0)
    return jnp.concatenate([mean[None], samples], axis=0)


def sampling_info_stats(costs: jax.Array):
    """``(mean finite cost, any non-finite)`` of sampled costs ``[N]`` (inf = non-finite)."""
    finite = jnp.isfinite(costs)
    mean = jnp.sum(jnp.where(finite, costs, 0.0)) / jnp.maximum(jnp.sum(finite), 1)
    return mean, ~jnp.all(finite)


def update_best(best_actions, best_cost, actions, cost):
    """Keeps the lower-cost plan; ``cost`` must already map non-finite values to ``+inf``."""
    better = cost < best_cost
    return jnp.where(better, actions, best_actions), jnp.where(better, cost, best_cost)


def best_of(actions: jax.Array, costs: jax.Array):
    """The lowest-cost plan among ``actions [N, H, A]`` with ``costs [N]``."""
    i = jnp.argmin(costs)
    return actions[i], costs[i]


# ------------------------------------------------------------ hyper-parameter checks


def check_int(name: str, value, minimum: int = 1, maximum: int | None = None) -> None:
    """Raises ValueError unless ``value`` is an int in ``[minimum, maximum]``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an int; got {value!r} ({type(value).__name__}).")
    if value < minimum or (maximum is not None and value > maximum):
        bound = f">= {minimum}" + (f" and <= {maximum}" if maximum is not None else "")
        raise ValueError(f"{name} must be {bound}; got {value}.")


def check_float(name: str, value, strict: bool = False) -> None:
    """Raises ValueError unless ``value`` is a finite number ``> 0`` (strict) or ``>= 0``."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number; got {value!r}.") from None
    ok = v > 0 if strict else v >= 0
    if not ok or v != v or v == float("inf"):
        raise ValueError(f"{name} must be a finite number {'> 0' if strict else '>= 0'}; got {value!r}.")


def check_choice(name: str, value, allowed: tuple) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}; got {value!r}.")
