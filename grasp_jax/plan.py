"""Drivers: :func:`plan` (one problem) and :func:`plan_batch` (many, one program).

``plan`` is a thin ``lax.scan`` (fixed budget) or ``lax.while_loop`` (tolerance) around a
planner's ``init``/``step`` (:func:`grasp_jax.planners.base.run`). The returned plan is
the best candidate (by true rollout cost under the world model) that the planner proposed,
the initial plan included, so a world model that emits NaN/Inf mid-optimisation cannot
poison the answer; such events are flagged in ``result.nonfinite`` and per iteration in
``result.trace.nonfinite``.
"""


import functools
import math
import time
import warnings
from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from grasp_jax.planners.base import Planner, check_int, run
from grasp_jax.problem import Problem, check_key, rollout, trajectory_cost, validate_inputs

__all__ = ["PlanResult", "plan", "plan_batch", "compile_plan_batch", "CompiledPlanBatch"]


class PlanResult(NamedTuple):
    """Result of :func:`plan` (``plan_batch`` adds a leading ``[B]`` to every field).

    Attributes:
      actions: ``[H, A]`` the plan, inside the action box.
      states: ``[H+1, S]`` the *real* rollout of ``actions`` through the world model from
        ``init_state`` (never GRASP's virtual states).
      cost: ``[]`` the problem cost of that rollout (``+inf`` if it is non-finite).
      trace: a :class:`~grasp_jax.planners.base.Trace`: per iteration the best cost so
        far, the candidate's cost, non-finite flags and the planner's own ``info``; every
        leaf has a leading ``[iterations]`` axis (iterations not run under a tolerance are
        NaN / False).
      nonfinite: ``[]`` bool, the world model produced NaN/Inf during planning (the plan
        returned is then the best finite one seen).
      iterations: ``[]`` int, iterations run (the budget unless a tolerance stopped early).
      final_state: the planner's final state (its own iterate; ``planner.shift`` turns it
        into the next plan's ``warm`` start).
    """

    actions: jax.Array
    states: jax.Array
    cost: jax.Array
    trace: Any
    nonfinite: jax.Array
    iterations: jax.Array
    final_state: Any


def _plan_impl(planner: Planner, problem: Problem, iterations: int, use_tolerance: bool,
               params, init_state, goal, key, init_actions, warm, tolerance) -> PlanResult:
    out = run(planner, problem, params, init_state, goal, key, init_actions, warm,
              iterations=iterations, tolerance=tolerance if use_tolerance else None)
    states = rollout(problem, params, init_state, out.best.actions)
    cost = trajectory_cost(problem, states, out.best.actions, goal)
    nonfinite = jnp.any(out.trace.nonfinite) | ~jnp.isfinite(cost)
    return PlanResult(out.best.actions, states, cost, out.trace, nonfinite, out.iterations, out.state)


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


def _check_iterations(planner: Planner, iterations) -> int:
    if iterations is None:
        return planner.iterations
    check_int("iterations", iterations)
    return int(iterations)


def _check_warm(planner: Planner, problem: Problem, params, init_state, goal, warm, batch: Optional[int] = None):
    """``warm`` must have the structure, shapes and dtypes of this planner's ``shift`` output."""
    if warm is None:
        return
    strip = (lambda x: x) if batch is None else (lambda t: jax.tree_util.tree_map(lambda y: y[0], t))
    try:
        state = jax.eval_shape(lambda: planner.init(problem, params, init_state, goal, jax.random.key(0), None, None))
        expected = jax.eval_shape(lambda s: planner.shift(problem, s, 1), state)
    except Exception:  # noqa: BLE001 - the plan itself reports real failures
        return
    got = jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), strip(warm))
    describe = lambda t: jax.tree_util.tree_map(lambda x: f"{x.dtype}{list(x.shape)}", t)  # noqa: E731
    if expected is None or jax.tree_util.tree_structure(got) != jax.tree_util.tree_structure(expected) or any(
        a.shape != b.shape or a.dtype != b.dtype
        for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(expected))
    ):
        what = "None (this planner restarts from init_actions)" if expected is None else describe(expected)
        raise ValueError(
            f"warm must be a state from planner.shift(problem, result.final_state, k) of the same planner "
            f"({planner.name}) and problem{' with a leading batch axis' if batch else ''}; expected {what}, "
            f"got {describe(got)}."
        )


_CHECKED_ACTION_GRADIENTS: set = set()


def _warn_if_actions_detached(planner: Planner, problem: Problem, params, init_state) -> None:
    """Once per problem, for planners that follow gradients: warns when the world model's
    output does not depend on the action *in its gradient* at the first step (e.g. a JAX
    simulator that applies ``stop_gradient`` to its transitions). Such a model makes BPTT
    and GRASP silently return their initial plans."""
    leaves = jax.tree_util.tree_leaves((params, init_state))
    if not planner.differentiates or any(isinstance(x, jax.core.Tracer) for x in leaves):
        return  # under a user's jit/vmap: nothing concrete to check
    try:
        if problem in _CHECKED_ACTION_GRADIENTS:
            return
    except TypeError:  # an unhashable dynamics: checking every call is too costly, skip
        return
    # Concrete leaves can still be inside a user's jit (a closure over constants): evaluate
    # eagerly there, and skip when the model itself closes over traced values.
    with jax.ensure_compile_time_eval():
        state = jnp.asarray(init_state)
        centre = jnp.asarray(problem.action_center, state.dtype)
        detached = jnp.all(jax.jacfwd(lambda a: problem.dynamics(params, state, a))(centre) == 0)
    if isinstance(detached, jax.core.Tracer):
        return
    _CHECKED_ACTION_GRADIENTS.add(problem)
    if bool(detached):
        warnings.warn(
            f"the world model's next state has an all-zero gradient with respect to the action "
            f"(d next_state / d action == 0 at init_state and the box centre), so the gradient-based "
            f"planner {planner.name!r} cannot move its actions. If the model or simulator applies "
            f"jax.lax.stop_gradient to its transitions, make it differentiable (many JAX simulators have "
            f"an option for it), or use a sampling planner (gj.cem(), gj.mppi()).",
            RuntimeWarning,
            stacklevel=3,
        )


_plan_jit = jax.jit(_plan_impl, static_argnums=(0, 1, 2, 3))


def plan(
    planner: Planner,
    problem: Problem,
    params,
    init_state: jax.Array,
    goal,
    key: jax.Array,
    init_actions: Optional[jax.Array] = None,
    *,
    warm: Any = None,
    iterations: Optional[int] = None,
    tolerance: Optional[float] = None,
) -> PlanResult:
    """Plans one trajectory from ``init_state`` towards ``goal``.

    Works eagerly, under ``jax.jit`` and under ``jax.vmap``; repeated calls with the same
    planner, problem, budget and shapes reuse one compiled program.

    Args:
      planner: a :class:`~grasp_jax.Planner` (``gj.grasp()``, ``gj.cem()``, ...).
      problem: the :class:`~grasp_jax.Problem`.
      params: world-model parameters (any pytree, or ``None``).
      init_state: ``[S]`` current state ``s_0``.
      goal: ``[S]`` goal state (or whatever ``problem.cost`` takes).
      key: PRNG key.
      init_actions: optional ``[H, A]`` warm start (it is also the first candidate, so the
        result is never worse than it).
      warm: optional planner state from ``planner.shift(problem, result.final_state, k)``
        (e.g. GRASP's shifted virtual states; see :func:`grasp_jax.mpc.warm_start`).
      iterations: overrides the planner's default budget (static: one program per value).
      tolerance: optional world-model cost at which to stop early (``lax.while_loop``);
        checked against the best true-rollout cost seen. Never a simulator.

    Returns:
      A :class:`PlanResult`.
    """
    _check_planner(planner)
    validate_inputs(problem, params, init_state, goal, init_actions)
    check_key(key)
    n = _check_iterations(planner, iterations)
    use_tolerance, tol = _check_tolerance(tolerance)
    _check_warm(planner, problem, params, init_state, goal, warm)
    _warn_if_actions_detached(planner, problem, params, init_state)
    return _plan_jit(planner, problem, n, use_tolerance, params, init_state, goal, key, init_actions, warm, tol)


# ----------------------------------------------------------------------------- batch


def _pad_leading(x, total: int):
    """Pads the leading axis to ``total`` by repeating the last item."""
    b = x.shape[0]
    if b == total:
        return x
    pad = jnp.broadcast_to(x[-1:], (total - b,) + x.shape[1:])
    return jnp.concatenate([x, pad], axis=0)


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3, 4, 5, 6))
def _plan_batch_jit(
    planner, problem, iterations, use_tolerance, chunk_size, mesh, axis_name,
    params, init_states, goals, keys, init_actions, warm, tol,
):  # fmt: skip
    batch = init_states.shape[0]
    n_dev = mesh.devices.size if mesh is not None else 1
    chunk = min(chunk_size or batch, batch)
    chunk = int(math.ceil(chunk / n_dev) * n_dev)
    n_chunks = int(math.ceil(batch / chunk))
    total = n_chunks * chunk

    def prep(x):
        x = _pad_leading(x, total).reshape((n_chunks, chunk) + x.shape[1:])
        if mesh is not None:
            spec = PartitionSpec(None, axis_name, *([None] * (x.ndim - 2)))
            x = jax.lax.with_sharding_constraint(x, NamedSharding(mesh, spec))
        return x

    xs = jax.tree_util.tree_map(prep, (init_states, goals, keys, init_actions, warm))
    item = functools.partial(_plan_impl, planner, problem, iterations, use_tolerance)

    def run_chunk(chunk_xs):
        s0, g, k, a0, w = chunk_xs
        in_axes = (None, 0, 0, 0, None if a0 is None else 0, None if w is None else 0, None)
        return jax.vmap(item, in_axes=in_axes)(params, s0, g, k, a0, w, tol)

    if n_chunks == 1:
        out = jax.tree_util.tree_map(lambda y: y[None], run_chunk(jax.tree_util.tree_map(lambda x: x[0], xs)))
    else:
        out = jax.lax.map(run_chunk, xs)  # sequential over chunks: bounded memory
    return jax.tree_util.tree_map(lambda y: y.reshape((total,) + y.shape[2:])[:batch], out)


def _batch_arguments(planner, problem, params, init_states, goals, key, init_actions, warm, iterations,
                     tolerance, chunk_size, mesh, axis_name):
    """Checks ``plan_batch``'s arguments; returns the static and dynamic arguments of
    ``_plan_batch_jit``."""
    _check_planner(planner)
    if not hasattr(init_states, "shape") or len(init_states.shape) != 2:
        raise ValueError(
            f"init_states must have shape [B, S]; got {getattr(init_states, 'shape', type(init_states).__name__)}."
        )
    batch = init_states.shape[0]
    if batch < 1:
        raise ValueError(f"init_states must hold at least one state; got shape {tuple(init_states.shape)}.")
    for name, x in (("goals", goals), ("init_actions", init_actions), ("warm", warm)):
        for leaf in jax.tree_util.tree_leaves(x):
            if not hasattr(leaf, "shape") or leaf.ndim < 1 or leaf.shape[0] != batch:
                raise ValueError(
                    f"{name} must have a leading batch dimension B={batch} (from init_states); "
                    f"got shape {getattr(leaf, 'shape', None)}."
                )
    first = lambda x: None if x is None else jax.tree_util.tree_map(lambda y: y[0], x)  # noqa: E731
    validate_inputs(problem, params, init_states[0], first(goals), first(init_actions))
    for name, x in (("init_states", init_states), ("goals", goals if problem.cost is None else None)):
        if x is None or isinstance(x, jax.core.Tracer):
            continue
        item_finite = np.all(np.isfinite(np.asarray(x)).reshape(batch, -1), axis=1)
        if not np.all(item_finite):
            bad = np.where(~item_finite)[0]
            raise ValueError(f"{name} must be finite; items {bad[:10].tolist()} contain NaN or Inf.")
    check_key(key)
    n = _check_iterations(planner, iterations)
    _check_warm(planner, problem, params, init_states[0], first(goals), warm, batch=batch)
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
    _warn_if_actions_detached(planner, problem, params, init_states[0])
    keys = jax.random.split(key, batch)
    static = (planner, problem, n, use_tolerance, chunk_size, mesh, axis_name)
    return static, (params, init_states, goals, keys, init_actions, warm, tol)


def plan_batch(
    planner: Planner,
    problem: Problem,
    params,
    init_states: jax.Array,
    goals,
    key: jax.Array,
    init_actions: Optional[jax.Array] = None,
    *,
    warm: Any = None,
    iterations: Optional[int] = None,
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
      init_states: ``[B, S]`` start states.
      goals: ``[B, S]`` (or a batch of whatever ``problem.cost`` takes, leading ``[B]``).
      key: one PRNG key.
      init_actions: optional ``[B, H, A]`` warm starts.
      warm: optional batch (leading ``[B]``) of planner states from ``planner.shift``.
      iterations: overrides the planner's default budget.
      tolerance: optional early-stop cost, as in :func:`plan` (per item).
      chunk_size: plan at most this many items at a time (``lax.map`` over chunks) to
        bound memory; ``None`` plans all at once.
      mesh: ``"auto"`` shards the batch over all devices when there are several,
        ``None`` never shards, or a :class:`jax.sharding.Mesh` with axis ``axis_name``.
      axis_name: the mesh axis the batch is split over.

    Returns:
      A :class:`PlanResult` whose fields have a leading ``[B]``.
    """
    static, dynamic = _batch_arguments(planner, problem, params, init_states, goals, key, init_actions, warm,
                                       iterations, tolerance, chunk_size, mesh, axis_name)
    return _plan_batch_jit(*static, *dynamic)


def compile_plan_batch(
    planner: Planner,
    problem: Problem,
    params,
    init_states: jax.Array,
    goals,
    key: jax.Array,
    init_actions: Optional[jax.Array] = None,
    **kwargs,
) -> "CompiledPlanBatch":
    """Compiles ``plan_batch(planner, problem, params, init_states, goals, key, ...)`` ahead
    of time (``lower().compile()``), for benchmarks that time compiling and running apart.

    Takes :func:`plan_batch`'s arguments (keywords too) and checks them the same way.

    Returns:
      A :class:`CompiledPlanBatch` ``(run, compile_seconds, executable)``: ``run()``
      executes the compiled program on those arguments and returns exactly what
      ``plan_batch`` returns (not yet blocked on); ``executable`` is the compiled XLA program
      (e.g. for ``executable.memory_analysis()``).
    """
    names = ("warm", "iterations", "tolerance", "chunk_size", "mesh", "axis_name")
    unknown = sorted(set(kwargs) - set(names))
    if unknown:
        raise TypeError(f"compile_plan_batch got unexpected keyword arguments {unknown}; expected some of {names}.")
    options = dict(warm=None, iterations=None, tolerance=None, chunk_size=None, mesh="auto", axis_name="batch")
    options.update(kwargs)
    static, dynamic = _batch_arguments(planner, problem, params, init_states, goals, key, init_actions,
                                       *(options[n] for n in names))
    t0 = time.perf_counter()
    compiled = _plan_batch_jit.lower(*static, *dynamic).compile()
    seconds = time.perf_counter() - t0
    return CompiledPlanBatch(lambda: compiled(*dynamic), seconds, compiled)


class CompiledPlanBatch(NamedTuple):
    """What :func:`compile_plan_batch` returns."""

    run: Callable[[], PlanResult]
    compile_seconds: float
    executable: Any
