"""The planner protocol, shared by every planner.

A planner is a :class:`Planner`: pure ``init`` / ``step`` / ``shift`` functions, a default
iteration budget and a per-iteration cost model, in the style of optax's
``GradientTransformation`` and blackjax's ``SamplingAlgorithm``. Factories
(``gj.grasp(...)``, ``gj.cem(...)``) capture the hyper-parameters in a frozen, hashable
config; equal configs return the *same* ``Planner`` object, so ``jax.jit`` caches keyed on
the planner are reused.

Division of labour:

* A planner's **state holds only its own iterate** (GRASP: virtual states, actions and
  optimiser moments; CEM: mean and std; ...). The problem data (``init_state``, ``goal``)
  is passed to every call by the driver.
* Each ``step`` reports a :class:`Candidate`: a plan ``[H, A]`` and its *true* rollout cost
  (``+inf`` when it evaluated none, or when the cost was non-finite).
* The **driver** (:mod:`grasp_jax.plan`) keeps the best candidate seen, runs the loop
  (``lax.scan`` or, with a tolerance, ``lax.while_loop``) for the budget, and rolls the
  returned plan out once at the end.
* Warm starts are the planner's own business: ``shift(problem, state, k)`` turns a final
  state into the next plan's ``warm`` state after ``k`` planned steps were executed
  (``k = 0``: continue where it stopped); ``init(..., init_actions, warm)`` continues from
  it: ``warm`` carries the planner's memory (optimiser moments, virtual states), and
  ``init_actions``, when given, is the plan to continue from. Planners with no memory
  beyond the plan return ``None`` and restart from ``init_actions``.

A new planner is one module that builds a :class:`Planner`, plus its export; nothing
elsewhere dispatches on its name.
"""


import functools
from typing import Any, Callable, NamedTuple, Optional, Protocol

import jax
import jax.numpy as jnp
import optax

from grasp_jax.problem import Problem, rollout, trajectory_cost

__all__ = [
    "Planner",
    "Candidate",
    "IterationCost",
    "InitFn",
    "StepFn",
    "ShiftFn",
    "no_shift",
    "cached_factory",
    "estimate_state_scale",
    "initial_unit_actions",
    "unit_to_box",
    "rollout_cost",
    "batched_rollout_cost",
    "shooting_loss",
    "gaussian_candidates",
    "sampling_info_stats",
    "best_of",
    "tree_all_finite",
    "check_int",
    "check_float",
    "sampling_cost",
    "shift_rows",
    "smooth_detours",
]


class Candidate(NamedTuple):
    """A plan a step proposes, with its true cost.

    Attributes:
      actions: ``[H, A]`` inside the action box.
      cost: ``[]`` the problem cost of its rollout through the world model; ``+inf`` if
        the step evaluated no rollout or the cost was non-finite.
    """

    actions: jax.Array
    cost: jax.Array


class IterationCost(NamedTuple):
    """What one iteration costs, averaged over a run of a given budget (for equal-budget
    comparisons; counts are per plan, for horizon ``H``).

    Attributes:
      model_calls: world-model evaluations (forward; a backward pass counts as 2).
      depth: model calls on the critical path (sequential depth), the proxy for GPU wall
        time when the batch fits the device: a rollout costs ``H``, a batched call 1.
    """

    model_calls: float
    depth: float


class InitFn(Protocol):
    def __call__(
        self,
        problem: Problem,
        params: Any,
        init_state: jax.Array,
        goal: Any,
        key: jax.Array,
        init_actions: Optional[jax.Array],
        warm: Any,
    ) -> Any:
        """The initial planner state. ``init_actions [H, A]`` (box units) and ``warm`` (a
        state from this planner's ``shift``) may be ``None``."""


class StepFn(Protocol):
    def __call__(
        self,
        problem: Problem,
        params: Any,
        init_state: jax.Array,
        goal: Any,
        state: Any,
        key: jax.Array,
        iteration: jax.Array,
        num_iterations: int,
    ) -> tuple[Any, Candidate, NamedTuple]:
        """One iteration: ``(state, candidate, info)``. ``iteration`` is the 0-based index
        (an unbatched int32 scalar, so schedules stay cheap under ``vmap``) of
        ``num_iterations`` (static: the budget of this run). ``info`` is a NamedTuple of
        diagnostics with at least ``nonfinite`` (the world model produced NaN/Inf)."""


class ShiftFn(Protocol):
    def __call__(self, problem: Problem, state: Any, k: int) -> Any:
        """The warm state for the next plan after ``k`` planned steps were executed, or
        ``None`` when the shifted plan (``init_actions``) is all the planner needs.
        ``problem`` is the *next* plan's problem: its horizon may be shorter (a task with a
        deadline), and the shifted iterate is cut or padded to it."""


def no_shift(problem: Problem, state, k: int):
    """``shift`` of planners whose iterate is a plan: the driver's shifted plan suffices."""
    del problem, state, k
    return None


class Planner(NamedTuple):
    """A planner: pure functions, a default budget and a cost model.

    Attributes:
      init: see :class:`InitFn`.
      step: see :class:`StepFn`.
      iterations: default budget (``gj.plan(..., iterations=n)`` overrides it).
      name: short name for tables and error messages (never dispatched on).
      config: the frozen hyper-parameter config the planner was built from.
      shift: see :class:`ShiftFn`.
      iteration_cost: ``iteration_cost(horizon, iterations) -> IterationCost``: the cost of
        one iteration, averaged over a run of ``iterations`` iterations.
      differentiates: it follows gradients through the world model's action input (the
        drivers then check once per problem that those gradients are not all zero).
    """

    init: InitFn
    step: StepFn
    iterations: int
    name: str
    config: Any = None
    shift: ShiftFn = no_shift
    iteration_cost: Optional[Callable[[int, int], IterationCost]] = None
    differentiates: bool = False


def cached_factory(build: Callable[[Any], Planner]) -> Callable[[Any], Planner]:
    """Memoises ``build(config)`` so equal (hashable) configs give the identical Planner."""
    return functools.lru_cache(maxsize=256)(build)


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
    probes = jax.random.uniform(key, (num_probes, problem.action_dim), minval=problem.low, maxval=problem.high)
    steps = jax.vmap(problem.dynamics, in_axes=(None, None, 0))(params, init_state, probes.astype(init_state.dtype))
    step_ms = jnp.mean((steps - init_state) ** 2)
    step_ms = jnp.where(jnp.isfinite(step_ms), step_ms, 0.0)
    goal_ms = jnp.mean((goal - init_state) ** 2) if problem.cost is None else jnp.zeros(())
    scale = jnp.sqrt(goal_ms + step_ms)
    fallback = jnp.maximum(jnp.sqrt(jnp.mean(init_state**2)), 1.0)
    return jnp.where(scale > 1e-12 * fallback, scale, fallback).astype(init_state.dtype)


def initial_unit_actions(problem: Problem, init_actions, dtype=jnp.float32) -> jax.Array:
    """Warm start in ``[-1, 1]`` coordinates: ``init_actions`` if given, else the box centre."""
    if init_actions is None:
        return jnp.zeros((problem.horizon, problem.action_dim), dtype)
    return jnp.clip(problem.to_unit(jnp.asarray(init_actions, dtype)), -1.0, 1.0).astype(dtype)


def unit_to_box(problem: Problem, unit_actions: jax.Array) -> jax.Array:
    """``[-1, 1]`` -> box without clipping (differentiable everywhere; callers project)."""
    return (problem.action_center + problem.action_half_width * unit_actions).astype(unit_actions.dtype)


def rollout_cost(problem: Problem, params, init_state, goal, actions) -> jax.Array:
    """True cost of ``actions [H, A]``: rollout through the model, then the problem cost
    (``+inf`` if non-finite)."""
    return trajectory_cost(problem, rollout(problem, params, init_state, actions), actions, goal)


def batched_rollout_cost(problem: Problem, params, init_state, goal, actions) -> jax.Array:
    """Costs ``[N]`` of ``N`` candidate plans ``actions [N, H, A]`` (one vmapped rollout)."""
    return jax.vmap(rollout_cost, in_axes=(None, None, None, None, 0))(problem, params, init_state, goal, actions)


def shooting_loss(problem: Problem, params, init_state, goal, scale, unit_actions) -> jax.Array:
    """The true (shooting) cost of ``unit_actions [H, A]`` (``[-1, 1]`` coordinates)
    divided by ``scale**2``: the loss gradient planners descend."""
    return rollout_cost(problem, params, init_state, goal, unit_to_box(problem, unit_actions)) / jnp.square(scale)


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


def sampling_cost(num_samples: int):
    """``iteration_cost`` of a planner that rolls out ``num_samples`` plans per iteration."""

    def iteration_cost(horizon: int, iterations: int) -> IterationCost:
        del iterations
        return IterationCost(model_calls=float(num_samples * horizon), depth=float(horizon))

    return iteration_cost


def smooth_detours(key, num_particles: int, num_virtual: int, horizon: int, state_dim: int, dtype, num_modes: int = 3):
    """``[P, N, S]`` smooth random curves through the virtual states ``s_1..s_N`` that vanish
    at ``t = 0`` and ``t = H`` (a few sine modes with ``1/k`` decaying amplitudes); particle 0
    gets none. The lifted planners' proposals in state space (GRASP, collocation)."""
    t = jnp.arange(1, num_virtual + 1, dtype=dtype) / horizon  # [N]
    k = jnp.arange(1, num_modes + 1, dtype=dtype)  # [M]
    basis = jnp.sin(jnp.pi * t[:, None] * k[None, :]) / k  # [N, M]
    coeffs = jax.random.normal(key, (num_particles, num_modes, state_dim), dtype)
    return jnp.einsum("nm,pms->pns", basis, coeffs).at[0].set(0.0)


def shift_rows(x: jax.Array, k: int, length: int, pad: jax.Array, axis: int = 0) -> jax.Array:
    """``x`` without its first ``k`` entries along ``axis``, cut or padded (with ``pad``,
    broadcast) to ``length`` entries: how a plan-shaped iterate moves after ``k`` executed steps."""
    kept = jax.lax.slice_in_dim(x, min(k, x.shape[axis]), x.shape[axis], axis=axis)
    kept = jax.lax.slice_in_dim(kept, 0, min(length, kept.shape[axis]), axis=axis)
    fill_shape = list(x.shape)
    fill_shape[axis] = length - kept.shape[axis]
    return jnp.concatenate([kept, jnp.broadcast_to(pad, fill_shape).astype(x.dtype)], axis=axis)


def best_of(actions: jax.Array, costs: jax.Array) -> Candidate:
    """The lowest-cost plan among ``actions [N, H, A]`` with ``costs [N]``."""
    i = jnp.argmin(costs)
    return Candidate(actions[i], costs[i])


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



# ------------------------------------------------------------------- the planning loop


class Trace(NamedTuple):
    """Per-iteration record of a run; every leaf has a leading ``[iterations]`` axis
    (iterations not run under a tolerance are NaN / False).

    Attributes:
      best_cost: best true cost seen after each iteration (anytime curve).
      candidate_cost: the cost of the candidate each iteration proposed (``inf``: none).
      nonfinite: the world model produced NaN/Inf in that iteration.
      info: the planner's own diagnostics (its ``info`` NamedTuple).
    """

    best_cost: jax.Array
    candidate_cost: jax.Array
    nonfinite: jax.Array
    info: Any


class RunOutput(NamedTuple):
    """What :func:`run` returns: the planner's final ``state``, the ``best`` candidate
    seen (the initial plan included), the ``trace`` and the ``iterations`` run."""

    state: Any
    best: Candidate
    trace: Trace
    iterations: jax.Array


def run(
    planner: Planner,
    problem: Problem,
    params,
    init_state: jax.Array,
    goal,
    key: jax.Array,
    init_actions: Optional[jax.Array] = None,
    warm: Any = None,
    *,
    iterations: Optional[int] = None,
    tolerance: Optional[jax.Array] = None,
) -> RunOutput:
    """Runs ``planner`` on one problem and keeps the best candidate (unchecked inputs).

    The loop behind :func:`grasp_jax.plan`, reused by planners that compose others (GRASP's
    sync, :func:`grasp_jax.multistart`). ``iterations`` (static) overrides the planner's
    budget; with ``tolerance`` (a scalar array) a ``lax.while_loop`` stops once the best
    cost is ``<= tolerance``. The initial plan (``init_actions`` or the box centre) is the
    first candidate, so the result is never worse than the warm start.
    """
    n = planner.iterations if iterations is None else int(iterations)
    init_key, run_key = jax.random.split(key)
    state = planner.init(problem, params, init_state, goal, init_key, init_actions, warm)
    start = unit_to_box(problem, initial_unit_actions(problem, init_actions, init_state.dtype))
    best = Candidate(start, rollout_cost(problem, params, init_state, goal, start))
    keys = jax.random.split(run_key, n)

    def body(carry, i):
        state, best = carry
        state, candidate, info = planner.step(problem, params, init_state, goal, state, keys[i], i, n)
        best = optax.tree.where(candidate.cost < best.cost, candidate, best)
        return (state, best), Trace(best.cost, candidate.cost, jnp.asarray(info.nonfinite), info)

    steps = jnp.arange(n, dtype=jnp.int32)
    if tolerance is None:
        (state, best), trace = jax.lax.scan(body, (state, best), steps)
        return RunOutput(state, best, trace, jnp.asarray(n, jnp.int32))

    shapes = jax.eval_shape(lambda c: body(c, steps[0])[1], (state, best))
    empty = lambda x: jnp.full((n,) + x.shape, jnp.nan if jnp.issubdtype(x.dtype, jnp.floating) else 0, x.dtype)  # noqa: E731
    trace = jax.tree_util.tree_map(empty, shapes)

    def cond(carry):
        i, _, best, _ = carry
        return (i < n) & (best.cost > tolerance)

    def loop(carry):
        i, state, best, trace = carry
        (state, best), record = body((state, best), i)
        return i + 1, state, best, jax.tree_util.tree_map(lambda t, x: t.at[i].set(x), trace, record)

    num_run, state, best, trace = jax.lax.while_loop(cond, loop, (jnp.asarray(0, jnp.int32), state, best, trace))
    return RunOutput(state, best, trace, num_run)
