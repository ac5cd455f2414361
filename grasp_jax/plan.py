"""Drivers: :func:`plan` (one problem) and :func:`plan_batch` (many, one program).

``plan`` is a thin ``lax.scan`` (fixed budget) or ``lax.while_loop`` (tolerance) around a
planner's ``init``/``step``. The returned plan is the better (by true rollout cost under
the world model) of the planner's final plan and the best finite plan it evaluated, so
a world model that emits NaN/Inf mid-optimisation cannot poison the answer; such events
are flagged in ``result.nonfinite`` and per iteration in ``result.trace.nonfinite``.
"""


import functools
import math
from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from grasp_jax.planners.base import Planner
from grasp_jax.problem import Problem, check_key, rollout, trajectory_cost, validate_inputs

__all__ = ["PlanResult", "plan", "plan_batch"]


class PlanResult(NamedTuple):
    """Result of :func:`plan` (``plan_batch`` adds a leading ``[B]`` to every field).

    Attributes:
      actions: ``[H, A]`` the plan, inside the action box.
      states: ``[H+1, S]`` the *real* rollout of ``actions`` through the world model from
        ``init_state`` (never GRASP's virtual states).
      cost: ``[]`` the problem cost of that rollout (``+inf`` if it is non-finite).
      trace: the planner's per-iteration info, stacked: every leaf has a leading
        ``[iterations]`` axis (iterations not run under a tolerance are NaN / False).
      nonfinite: ``[]`` bool, the world model produced NaN/Inf during planning (the plan
        returned is then the best finite one seen).
      iterations: ``[]`` int, iterations run (the budget unless a tolerance stopped early).
      final_state: the planner's final state (e.g. GRASP's virtual states, for warm starts).
    """

    actions: jax.Array
    states: jax.Array
    cost: jax.Array
    trace: Any
    nonfinite: jax.Array
    iterations: jax.Array
    final_state: Any


def _empty_trace(info_shape, iterations: int):
    def empty(leaf):
        shape = (iterations,) + tuple(leaf.shape)
        if jnp.issubdtype(leaf.dtype, jnp.floating):
            return jnp.full(shape, jnp.nan, leaf.dtype)
        return jnp.zeros(shape, leaf.dtype)

    return jax.tree_util.tree_map(empty, info_shape)


def _plan_impl(
    planner: Planner,
    problem: Problem,
    use_tolerance: bool,
    params,
    init_state,
    goal,
    key,
    init_actions,
    init_states,
    tolerance,
) -> PlanResult:
    init_key, run_key = jax.random.split(key)
    state = planner.init(problem, params, init_state, goal, init_key, init_actions, init_states)
    keys = jax.random.split(run_key, planner.iterations)
    iterations = jnp.arange(planner.iterations, dtype=jnp.int32)

    def body(state, xs):
        step_key, i = xs
        return planner.step(problem, params, state, step_key, i)

    if not use_tolerance:
        state, trace = jax.lax.scan(body, state, (keys, iterations))
        num_run = jnp.asarray(planner.iterations, jnp.int32)
    else:
        info_shape = jax.eval_shape(lambda s: body(s, (keys[0], iterations[0]))[1], state)
        trace0 = _empty_trace(info_shape, planner.iterations)

        def cond(carry):
            i, state, _ = carry
            return (i < planner.iterations) & (state.best_cost > tolerance)

        def loop(carry):
            i, state, trace = carry
            state, info = body(state, (keys[i], i))
            trace = jax.tree_util.tree_map(lambda t, x: t.at[i].set(x), trace, info)
            return i + 1, state, trace

        num_run, state, trace = jax.lax.while_loop(cond, loop, (jnp.asarray(0, jnp.int32), state, trace0))

    final_actions = state.actions
    final_states = rollout(problem, params, init_state, final_actions)
    final_cost = trajectory_cost(problem, final_states, final_actions, goal)
    use_best = state.best_cost < final_cost
    actions = jnp.where(use_best, state.best_actions, final_actions)
    states = jax.lax.cond(
        use_best, lambda: rollout(problem, params, init_state, state.best_actions), lambda: final_states
    )
    cost = jnp.minimum(final_cost, state.best_cost)
    nonfinite = jnp.any(trace.nonfinite) | ~jnp.isfinite(final_cost)
    return PlanResult(actions, states, cost, trace, nonfinite, num_run, state)


def _check_planner(planner):
    if not isinstance(planner, Planner):
        raise TypeError(
            f"planner must be a grasp_jax.Planner (e.g. gj.grasp(), gj.cem()); got {type(planner).__name__}."
        )


def _check_tolerance(tolerance):
    if tolerance is None:
        return False, jnp.asarray(-jnp.inf, jnp.float32)
    if isinstance(tolerance, (int, float)) and not tolerance >= 0:
        raise ValueError(f"tolerance must be None or a cost >= 0; got {tolerance!r}.")
    return True, jnp.asarray(tolerance, jnp.float32)


_plan_jit = jax.jit(_plan_impl, static_argnums=(0, 1, 2))


def plan(
    planner: Planner,
    problem: Problem,
    params,
    init_state: jax.Array,
    goal,
    key: jax.Array,
    init_actions: Optional[jax.Array] = None,
    *,
    init_states: Optional[jax.Array] = None,
    tolerance: Optional[float] = None,
) -> PlanResult:
    """Plans one trajectory from ``init_state`` towards ``goal``.

    Works eagerly, under ``jax.jit`` and under ``jax.vmap``; repeated calls with the same
    planner, problem and shapes reuse one compiled program.

    Args:
      planner: a :class:`~grasp_jax.Planner` (``gj.grasp()``, ``gj.cem()``, ...).
      problem: the :class:`~grasp_jax.Problem`.
      params: world-model parameters (any pytree, or ``None``).
      init_state: ``[S]`` current state ``s_0``.
      goal: ``[S]`` goal state (or whatever ``problem.cost`` takes).
      key: PRNG key.
      init_actions: optional ``[H, A]`` warm start.
      init_states: optional ``[H-1, S]`` virtual-state warm start (GRASP).
      tolerance: optional world-model cost at which to stop early (``lax.while_loop``);
        checked against the best true-rollout cost the planner has evaluated. Never a
        simulator.

    Returns:
      A :class:`PlanResult`.
    """
    _check_planner(planner)
    validate_inputs(problem, params, init_state, goal, init_actions, init_states)
    check_key(key)
    use_tolerance, tol = _check_tolerance(tolerance)
    return _plan_jit(planner, problem, use_tolerance, params, init_state, goal, key, init_actions, init_states, tol)


# ----------------------------------------------------------------------------- batch


def _pad_leading(x, total: int):
    """Pads the leading axis to ``total`` by repeating the last item."""
    b = x.shape[0]
    if b == total:
        return x
    pad = jnp.broadcast_to(x[-1:], (total - b,) + x.shape[1:])
    return jnp.concatenate([x, pad], axis=0)


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3, 4, 5))
def _plan_batch_jit(
    planner, problem, use_tolerance, chunk_size, mesh, axis_name, params, init_states, goals, keys, init_actions, virtual, tol
):
    batch = init_states.shape[0]
    n_dev = mesh.devices.size if mesh is not None else 1
    chunk = min(chunk_size or batch, batch)
    chunk = int(math.ceil(chunk / n_dev) * n_dev)
    n_chunks = int(math.ceil(batch / chunk))
    total = n_chunks * chunk

    def prep(x):
        if x is None:
            return None
        x = _pad_leading(x, total).reshape((n_chunks, chunk) + x.shape[1:])
        if mesh is not None:
            spec = PartitionSpec(None, axis_name, *([None] * (x.ndim - 2)))
            x = jax.lax.with_sharding_constraint(x, NamedSharding(mesh, spec))
        return x

    xs = tuple(prep(x) for x in (init_states, goals, keys, init_actions, virtual))
    item = functools.partial(_plan_impl, planner, problem, use_tolerance)

    def run_chunk(chunk_xs):
        s0, g, k, a0, v0 = chunk_xs
        in_axes = (None, 0, 0, 0, None if a0 is None else 0, None if v0 is None else 0, None)
        return jax.vmap(item, in_axes=in_axes)(params, s0, g, k, a0, v0, tol)

    if n_chunks == 1:
        out = jax.tree_util.tree_map(lambda y: y[None], run_chunk(tuple(None if x is None else x[0] for x in xs)))
    else:
        out = jax.lax.map(run_chunk, xs)  # sequential over chunks: bounded memory
    return jax.tree_util.tree_map(lambda y: y.reshape((total,) + y.shape[2:])[:batch], out)


def plan_batch(
    planner: Planner,
    problem: Problem,
    params,
    init_states: jax.Array,
    goals,
    key: jax.Array,
    init_actions: Optional[jax.Array] = None,
    *,
    init_virtual_states: Optional[jax.Array] = None,
    tolerance: Optional[float] = None,
    chunk_size: Optional[int] = None,
    mesh: Optional[Mesh] | str = "auto",
    axis_name: str = "batch",
) -> PlanResult:
    """Plans ``B`` problems in one compiled program (``vmap`` of :func:`plan`).

    Item ``i`` uses ``jax.random.split(key, B)[i]``, so results equal per-item
    :func:`plan` calls with those keys.

    Args:
      planner, problem, params: as in :func:`plan` (``params`` shared by all items).
      init_states: ``[B, S]``.
      goals: ``[B, S]`` (or a batch of whatever ``problem.cost`` takes, leading ``[B]``).
      key: one PRNG key.
      init_actions: optional ``[B, H, A]`` warm starts.
      init_virtual_states: optional ``[B, H-1, S]`` GRASP virtual-state warm starts.
      tolerance: optional early-stop cost, as in :func:`plan` (per item).
      chunk_size: plan at most this many items at a time (``lax.map`` over chunks) to
        bound memory; ``None`` plans all at once.
      mesh: ``"auto"`` shards the batch over all devices when there are several,
        ``None`` never shards, or a :class:`jax.sharding.Mesh` with axis ``axis_name``.
      axis_name: the mesh axis the batch is split over.

    Returns:
      A :class:`PlanResult` whose fields have a leading ``[B]``.
    """
    _check_planner(planner)
    if not hasattr(init_states, "shape") or len(init_states.shape) != 2:
        raise ValueError(
            f"init_states must have shape [B, S]; got {getattr(init_states, 'shape', type(init_states).__name__)}."
        )
    batch = init_states.shape[0]
    if batch < 1:
        raise ValueError(f"init_states must hold at least one state; got shape {tuple(init_states.shape)}.")
    for name, x in (("goals", goals), ("init_actions", init_actions), ("init_virtual_states", init_virtual_states)):
        for leaf in jax.tree_util.tree_leaves(x):
            if not hasattr(leaf, "shape") or leaf.ndim < 1 or leaf.shape[0] != batch:
                raise ValueError(
                    f"{name} must have a leading batch dimension B={batch} (from init_states); "
                    f"got shape {getattr(leaf, 'shape', None)}."
                )
    first = lambda x: None if x is None else jax.tree_util.tree_map(lambda y: y[0], x)  # noqa: E731
    validate_inputs(problem, params, init_states[0], first(goals), first(init_actions), first(init_virtual_states))
    for name, x in (("init_states", init_states), ("goals", goals if problem.cost is None else None)):
        if x is None or isinstance(x, jax.core.Tracer):
            continue
        item_finite = np.all(np.isfinite(np.asarray(x)).reshape(batch, -1), axis=1)
        if not np.all(item_finite):
            bad = np.where(~item_finite)[0]
            raise ValueError(f"{name} must be finite; items {bad[:10].tolist()} contain NaN or Inf.")
    check_key(key)
    if chunk_size is not None:
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
            raise ValueError(f"chunk_size must be None or an int >= 1; got {chunk_size!r}.")
    if isinstance(mesh, str):
        if mesh != "auto":
            raise ValueError(f"mesh must be 'auto', None or a jax.sharding.Mesh; got {mesh!r}.")
        mesh = Mesh(np.array(jax.devices()), (axis_name,)) if jax.device_count() > 1 else None
    elif mesh is not None:
        if not isinstance(mesh, Mesh):
            raise TypeError(f"mesh must be 'auto', None or a jax.sharding.Mesh; got {type(mesh).__name__}.")
        if axis_name not in mesh.axis_names:
            raise ValueError(f"axis_name {axis_name!r} is not an axis of mesh (axes {mesh.axis_names}).")
    use_tolerance, tol = _check_tolerance(tolerance)
    keys = jax.random.split(key, batch)
    return _plan_batch_jit(
        planner, problem, use_tolerance, chunk_size, mesh, axis_name,
        params, init_states, goals, keys, init_actions, init_virtual_states, tol,
    )  # fmt: skip
