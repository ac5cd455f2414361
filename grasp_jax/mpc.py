"""Receding-horizon control (MPC) with warm starts.

Plan ``H`` steps, execute the first ``execute`` of them in the real environment, observe,
shift the unexecuted tail of the plan (and, through ``planner.shift``, the planner's own
iterate, e.g. GRASP's virtual states) into the warm start of the next plan, and re-plan with the same fixed per-call budget (the planner's
``iterations``). Two drivers:

* :func:`mpc`: the whole loop in JAX (``lax.scan`` over re-plans) for environments whose
  step is a JAX function (e.g. :mod:`grasp_jax.envs.wall`): jittable, and ``vmap`` runs many
  episodes at once in one program.

      out = gj.mpc.mpc(planner, problem, params, env_step, observe, env_state, goal, key,
                       replans=10, execute=4)                    # receding horizon
      out = gj.mpc.mpc(planner, problem, params, env_step, observe, env_state, goal, key,
                       execute=10, deadline=True)                # arrive at step H

* :func:`mpc_host`: the loop on the host for host simulators (Push-T, PointMaze); each
  re-plan is one call of the compiled :func:`grasp_jax.plan`: two programs in all (the
  cold first plan and the warm-started ones; with ``deadline=True`` one per horizon), each
  compiled once and reused by every episode.

      start, goal_obs = env.sample_task(seed)
      out = gj.mpc.mpc_host(planner, wm.problem(H), wm.params, env, start, goal_obs, key,
                            execute=2, deadline=True, encode=wm.encode, to_env=wm.env_actions)
"""


import dataclasses
import functools
import time
from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from grasp_jax.plan import PlanResult, _check_iterations, _check_planner, plan, plan_batch
from grasp_jax.planners.base import Planner, check_int
from grasp_jax.problem import Problem, check_key, rollout

__all__ = ["MPCResult", "HostMPCResult", "warm_start", "mpc", "mpc_host", "mpc_host_batch"]


class MPCResult(NamedTuple):
    """Result of :func:`mpc` (``vmap`` adds a leading episode axis).

    Attributes:
      env_states: the environment state after every executed action, with the initial
        state first: every leaf ``[T + 1, ...]``, ``T = replans * execute`` (with
        ``deadline=True``: ``T = horizon``).
      actions: ``[T, A]`` the executed actions.
      plan_costs: ``[replans]`` each plan's cost under the world model.
      nonfinite: ``[replans]`` whether the world model produced NaN/Inf in that plan.
      plans: ``[replans, H, A]`` each re-plan's whole planned actions, executed or not
        (``H = problem.horizon``). With ``deadline=True`` re-plan ``r`` plans
        ``H - r * execute`` steps and its row is NaN after them (nothing was planned there).
      plan_states: ``[replans, S]`` the model state each plan started from (``observe``'s,
        or ``track``'s estimate).
    """

    env_states: Any
    actions: jax.Array
    plan_costs: jax.Array
    nonfinite: jax.Array
    plans: Optional[jax.Array] = None
    plan_states: Optional[jax.Array] = None


class HostMPCResult(NamedTuple):
    """Result of :func:`mpc_host` (numpy arrays).

    Attributes:
      observations: ``[T + 1, obs_dim]`` observations, the initial one first.
      actions: ``[T, A_env]`` environment actions executed.
      success: whether ``env.is_success(obs, goal_obs)`` held at any observation.
      success_step: first environment step at which it held (``-1`` if never).
      plan_costs: ``[replans]`` each plan's world-model cost.
      plan_seconds: ``[replans]`` wall time of each plan call (the first includes compiling).
      final_success: whether it held at the last observation (the end of the episode: what
        a fixed-duration task is judged by).
      plans: each re-plan's whole planned model actions ``[h_r, A]`` (``h_r`` shrinks with
        ``deadline``), executed or not.
    """

    observations: np.ndarray
    actions: np.ndarray
    success: bool
    success_step: int
    plan_costs: np.ndarray
    plan_seconds: np.ndarray
    final_success: bool = False
    plans: tuple = ()


def warm_start(
    planner: Planner, problem: Problem, result: PlanResult, shift: int, next_problem: Optional[Problem] = None
) -> tuple[jax.Array, Any]:
    """The next plan's warm start after executing ``shift`` planned steps.

    Args:
      planner, problem: those of ``result``.
      result: the last plan.
      shift: planned steps executed since.
      next_problem: the next plan's problem when its horizon differs (a task with a
        deadline: the horizon shrinks to the steps left); default ``problem``.

    Returns:
      ``(init_actions, warm)``: ``result.actions[shift:]`` padded with the action box's
      centre (or cut) to the next horizon, and ``planner.shift(next_problem,
      result.final_state, shift)`` (the planner's own shifted iterate, e.g. GRASP's
      virtual states; ``None`` for planners whose iterate is just a plan). Pass them as
      ``gj.plan(..., init_actions, warm=warm)``.
    """
    nxt = problem if next_problem is None else next_problem
    centre = jnp.asarray((np.asarray(nxt.action_low) + np.asarray(nxt.action_high)) / 2, result.actions.dtype)
    kept = result.actions[shift:][: nxt.horizon]
    pad = jnp.broadcast_to(centre, (nxt.horizon - kept.shape[0],) + result.actions.shape[1:])
    return jnp.concatenate([kept, pad], 0), planner.shift(nxt, result.final_state, shift)


def _check_execute(problem: Problem, replans, execute, deadline: bool = False) -> int:
    check_int("execute", execute, maximum=problem.horizon)
    if deadline:
        needed = len(deadline_horizons(problem.horizon, execute))
        if replans is not None and replans != needed:
            raise ValueError(
                f"replans must be ceil(horizon / execute) = {needed} with deadline=True "
                f"(horizon {problem.horizon}, execute {execute}); got {replans}."
            )
        return needed
    if replans is None:
        raise ValueError("replans must be given (an int >= 1) without deadline=True; got None.")
    check_int("replans", replans)
    return replans


def mpc(
    planner: Planner,
    problem: Problem,
    params,
    env_step: Callable[[Any, jax.Array], Any],
    observe: Callable[[Any], jax.Array],
    env_state,
    goal,
    key: jax.Array,
    *,
    replans: Optional[int] = None,
    execute: int = 1,
    iterations: Optional[int] = None,
    deadline: bool = False,
    track: Optional[Callable] = None,
) -> MPCResult:
    """Receding-horizon control with the whole loop in JAX.

    Two kinds of task:

    * no deadline (default): every plan looks ``problem.horizon`` steps ahead (a receding
      horizon); use a stage cost (e.g. "reach early and stay") so plans make progress;
    * ``deadline=True``: the task lasts ``problem.horizon`` steps and the goal must be
      reached at its end; each re-plan's horizon shrinks to the steps left (a fixed
      receding horizon keeps the goal a whole horizon away and never arrives). The
      plans of all lengths are one compiled program.

    Args:
      planner, problem, params: as for :func:`grasp_jax.plan`.
      env_step: ``env_step(env_state, action) -> env_state``, the *real* environment's
        step for one model action (a JAX function; apply any frame-skip inside it).
      observe: ``observe(env_state) -> [S]`` the model state to plan from (e.g. an encoder).
      env_state: initial environment state (any pytree of arrays).
      goal: the goal in model space.
      key: PRNG key (split once per re-plan).
      replans: number of plans (static); with ``deadline`` it defaults to (and must be)
        ``ceil(horizon / execute)``.
      execute: planned actions executed per plan (static, ``1 <= execute <= horizon``).
      iterations: per-plan budget overriding the planner's default.
      deadline: the task ends after ``problem.horizon`` steps (see above).
      track: ``track(observed [S], predicted [S]) -> [S]`` (static: pass the same function
        each call), a state estimate, as in :func:`mpc_host`: from the second re-plan on
        the plan starts from ``track(observe(env_state), predicted)``, ``predicted`` being
        the world model's rollout of the previous plan's start state through the actions
        executed since (e.g. ``wm.track`` for what an observation cannot show). Default:
        every plan starts from ``observe(env_state)``.

    Returns:
      :class:`MPCResult`. Works under ``jit`` and ``vmap`` (many episodes at once).
    """
    _check_planner(planner)
    replans = _check_execute(problem, replans, execute, deadline)
    check_key(key)
    n = _check_iterations(planner, iterations)
    _check_track(track)
    run = _deadline_mpc_jit if deadline else _mpc_jit
    return run(planner, problem, env_step, observe, track, replans, execute, n, params, env_state, goal, key)


def deadline_horizons(horizon: int, execute: int) -> list[int]:
    """The plan horizons of a task of ``horizon`` steps re-planned every ``execute`` steps."""
    return list(range(horizon, 0, -execute))


def _plan_start(problem, params, observe, track, es, start, actions):
    """The next plan's start state: ``observe(es)``, or with ``track`` its fusion with the
    model's rollout of the previous plan's ``start`` through the executed ``actions``."""
    observed = observe(es)
    if track is None or start is None:
        return observed
    return jnp.asarray(track(observed, rollout(problem, params, start, actions)[-1]), observed.dtype)


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3, 4, 5, 6, 7))
def _deadline_mpc_jit(planner, problem, env_step, observe, track, replans, execute, iterations, params, env_state, goal,
                      key):
    def act(es, a):
        nxt = env_step(es, a)
        return nxt, nxt

    horizons = deadline_horizons(problem.horizon, execute)
    keys = jax.random.split(key, replans)
    es, warm_actions, warm, outs, start, executed = env_state, None, None, [], None, None
    # Re-plans are unrolled (their horizons differ); ``replans`` is small and static.
    for r, h in enumerate(horizons):
        prob = dataclasses.replace(problem, horizon=h)
        start = _plan_start(problem, params, observe, track, es, start, executed)
        result = plan(planner, prob, params, start, goal, keys[r], warm_actions, warm=warm, iterations=iterations)
        k = min(execute, h)
        executed = result.actions[:k]
        es, visited = jax.lax.scan(act, es, executed)
        pad = jnp.full((problem.horizon - h,) + result.actions.shape[1:], jnp.nan, result.actions.dtype)
        outs.append((visited, executed, result.cost, result.nonfinite, jnp.concatenate([result.actions, pad]), start))
        if h > k:
            warm_actions, warm = warm_start(planner, prob, result, k, dataclasses.replace(problem, horizon=h - k))
    visited = jax.tree_util.tree_map(lambda *v: jnp.concatenate(v, 0), *[o[0] for o in outs])
    env_states = jax.tree_util.tree_map(lambda e0, v: jnp.concatenate([e0[None], v], 0), env_state, visited)
    actions = jnp.concatenate([o[1] for o in outs], 0)
    stack = lambda i: jnp.stack([o[i] for o in outs])  # noqa: E731
    return MPCResult(env_states, actions, stack(2), stack(3), stack(4), stack(5))


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3, 4, 5, 6, 7))
def _mpc_jit(planner, problem, env_step, observe, track, replans, execute, iterations, params, env_state, goal, key):
    def act(es, a):
        nxt = env_step(es, a)
        return nxt, nxt

    def run(es, start, result):
        """Executes the plan's first ``execute`` actions; returns the next warm start too."""
        es, visited = jax.lax.scan(act, es, result.actions[:execute])
        warm = warm_start(planner, problem, result, execute)
        out = (visited, result.actions[:execute], result.cost, result.nonfinite, result.actions, start)
        return es, warm, out

    def one_plan(carry, k):
        es, (warm_actions, warm), (start, executed) = carry
        start = _plan_start(problem, params, observe, track, es, start, executed)
        result = plan(planner, problem, params, start, goal, k, warm_actions, warm=warm, iterations=iterations)
        es, warm, out = run(es, start, result)
        return (es, warm, (start, result.actions[:execute])), out

    keys = jax.random.split(key, replans)
    # The first plan starts cold (the planner's own initialisation); the others warm.
    start = observe(env_state)
    result = plan(planner, problem, params, start, goal, keys[0], iterations=iterations)
    es, warm, first = run(env_state, start, result)
    _, rest = jax.lax.scan(one_plan, (es, warm, (start, result.actions[:execute])), keys[1:])
    visited, actions, costs, nonfinite, plans, starts = jax.tree_util.tree_map(
        lambda a, b: jnp.concatenate([a[None], b], 0), first, rest
    )
    flat = lambda x: x.reshape((-1,) + x.shape[2:])  # noqa: E731
    env_states = jax.tree_util.tree_map(
        lambda e0, v: jnp.concatenate([e0[None], flat(v)], 0), env_state, visited
    )
    return MPCResult(env_states, flat(actions), costs, nonfinite, plans, starts)


def mpc_host(
    planner: Planner,
    problem: Problem,
    params,
    env,
    start_obs,
    goal_obs,
    key: jax.Array,
    *,
    replans: Optional[int] = None,
    execute: int = 1,
    encode: Optional[Callable] = None,
    to_env: Optional[Callable] = None,
    goal: Any = None,
    iterations: Optional[int] = None,
    deadline: bool = False,
    track: Optional[Callable] = None,
    stop_on_success: bool = False,
    progress: bool = False,
) -> HostMPCResult:
    """Receding-horizon control of a host environment (``grasp_jax.envs`` interface).

    The environment must already be at ``start_obs`` (as ``env.reset(seed)`` and
    ``env.sample_task(seed)`` leave it). Each re-plan encodes the current observation, calls
    :func:`grasp_jax.plan` with the shifted warm start, and executes the first ``execute``
    planned model actions (``to_env`` turns them into environment actions, e.g.
    ``wm.env_actions`` for frame-skip models).

    Args:
      env: the environment (``step``, ``is_success``; ``render`` for pixel models).
      start_obs: the environment's current observation.
      goal_obs: goal observation (for ``env.is_success``).
      encode: observation -> model state (default: identity). Pixel models: pass
        ``lambda obs: wm.encode(env.render(wm.image_size))``.
      to_env: ``[n, A_model] -> [m, A_env]`` (default: identity).
      goal: goal in model space (default: ``encode(goal_obs)``).
      iterations: per-plan budget overriding the planner's default.
      deadline: the task lasts ``problem.horizon`` model steps and is judged at its end:
        each re-plan's horizon shrinks to the steps left (one compiled program per horizon,
        each reused by every episode); see :func:`mpc`.
      track: ``track(observed [S], predicted [S]) -> [S]``, a state estimate (default:
        none, every re-plan starts from ``encode(obs)``). From the second re-plan on,
        ``predicted`` is the world model's prediction of the current state (the state the
        previous re-plan started from, rolled through the model actions executed since)
        and ``observed`` is ``encode(obs)``; the plan starts from what ``track`` returns.
        For what an observation cannot show, e.g. the agent velocity a Push-T frame
        lacks: pass ``wm.track`` (:meth:`grasp_jax.models.WorldModel.track`).
      stop_on_success: stop once the real environment reaches the goal (off by default:
        benchmarks never peek at the simulator).
      progress: show a progress bar over re-plans.
    """
    encode = encode if encode is not None else _as_state
    _check_track(track)

    def first(tree):  # the one episode of a batch of one
        return None if tree is None else jax.tree.map(lambda x: x[0], tree)

    def plan_one(prob, states, goals, k, warm_actions, warm, iterations):
        result = plan(planner, prob, params, states[0], first(goals), k, first(warm_actions), warm=first(warm),
                      iterations=iterations)
        return jax.tree.map(lambda x: x[None], result)

    (out,) = _host_episodes(
        planner, problem, [env], np.asarray(start_obs)[None], np.asarray(goal_obs)[None], key, plan_one,
        encode=lambda obs: jnp.asarray(encode(obs[0]))[None], params=params,
        track=None if track is None else lambda z, p: jnp.asarray(track(z[0], p[0]))[None],
        goals=None if goal is None else jax.tree.map(lambda x: jnp.asarray(x)[None], goal), replans=replans,
        execute=execute, iterations=iterations, to_env=to_env, deadline=deadline, stop_on_success=stop_on_success,
        progress=progress,
    )  # fmt: skip
    return out


def mpc_host_batch(
    planner: Planner,
    problem: Problem,
    params,
    envs,
    start_obs,
    goal_obs,
    key: jax.Array,
    *,
    replans: Optional[int] = None,
    execute: int = 1,
    encode: Optional[Callable] = None,
    to_env: Optional[Callable] = None,
    goals: Any = None,
    iterations: Optional[int] = None,
    deadline: bool = False,
    track: Optional[Callable] = None,
    stop_on_success: bool = False,
    progress: bool = False,
) -> list:
    """:func:`mpc_host` for ``N`` episodes at once: one host environment per episode, every
    re-plan one :func:`grasp_jax.plan_batch` call over all of them (item ``i`` of re-plan
    ``r`` uses ``jax.random.split(jax.random.fold_in(key, r), N)[i]``).

    Args:
      envs: ``N`` environments, each already at its ``start_obs[i]`` (``env.reset(seed)``).
      start_obs, goal_obs: ``[N, obs_dim]``.
      encode: a batch of observations ``[N, obs_dim]`` -> model states ``[N, S]`` (default:
        identity). Pixel models: ``lambda obs: wm.encode(np.stack([e.render(wm.image_size) for e in envs]))``.
      to_env: one episode's ``[n, A_model] -> [m, A_env]`` (default: identity).
      goals: ``[N, ...]`` goals in model space (default: ``encode(goal_obs)``).
      track: ``track(observed [N, S], predicted [N, S]) -> [N, S]`` (e.g. ``wm.track``).
      The rest as in :func:`mpc_host`; ``stop_on_success`` stops once every episode reached
      its goal.

    Returns:
      one :class:`HostMPCResult` per episode (``plan_seconds``: the whole batch's).
    """
    envs = list(envs)
    start_obs, goal_obs = np.asarray(start_obs), np.asarray(goal_obs)
    if start_obs.shape[:1] != (len(envs),) or goal_obs.shape[:1] != (len(envs),):
        raise ValueError(
            f"start_obs and goal_obs must have a leading axis of len(envs) = {len(envs)}; "
            f"got {start_obs.shape} and {goal_obs.shape}."
        )
    encode = encode if encode is not None else _as_state
    _check_track(track)

    def plan_all(prob, states, goals, k, warm_actions, warm, iterations):
        return plan_batch(planner, prob, params, states, goals, k, warm_actions, warm=warm, iterations=iterations)

    return _host_episodes(
        planner, problem, envs, start_obs, goal_obs, key, plan_all, encode=lambda obs: jnp.asarray(encode(obs)),
        params=params, track=None if track is None else lambda z, p: jnp.asarray(track(z, p)), goals=goals,
        replans=replans, execute=execute, iterations=iterations, to_env=to_env, deadline=deadline,
        stop_on_success=stop_on_success, progress=progress,
    )  # fmt: skip


def _check_track(track) -> None:
    if track is not None and not callable(track):
        raise TypeError(f"track must be None or callable track(observed, predicted); got {type(track).__name__}.")


def _as_state(obs):
    """The host loops' default ``encode``: the observation is the model state."""
    return jnp.asarray(obs, jnp.float32)


@functools.partial(jax.jit, static_argnums=0)
def _predict(problem: Problem, params, states, actions):
    """The world model's prediction after ``actions [N, k, A]`` from ``states [N, S]``: ``[N, S]``."""
    return jax.vmap(lambda z, a: rollout(problem, params, z, a)[-1])(states, actions)


def _host_episodes(planner, problem, envs, start_obs, goal_obs, key, plan_fn, *, encode, params, track, goals, replans,
                   execute, iterations, to_env, deadline, stop_on_success, progress) -> list:
    """The host MPC loop over a batch of episodes, shared by :func:`mpc_host` and
    :func:`mpc_host_batch`: checks the arguments, then re-plans all episodes at once with
    ``plan_fn(problem, states, goals, key, warm_actions, warm, iterations)``; ``track``
    (or ``None``) fuses each new observation's encoding with the model's prediction."""
    _check_planner(planner)
    replans = _check_execute(problem, replans, execute, deadline)
    check_key(key)
    iterations = _check_iterations(planner, iterations)
    goals = encode(goal_obs) if goals is None else goals
    to_env = to_env if to_env is not None else np.asarray
    n = len(envs)
    obs = np.asarray(start_obs, np.float64)
    observations, actions = [[o] for o in obs], [[] for _ in range(n)]
    costs, seconds, plans = [], [], []
    horizons = deadline_horizons(problem.horizon, execute) if deadline else [problem.horizon] * replans
    warm_actions = warm = predicted = None
    success_step = [0 if e.is_success(o, g) else -1 for e, o, g in zip(envs, obs, goal_obs)]
    iterator = range(replans)
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(iterator, desc="mpc", unit="plan")
    for r in iterator:  # host simulators: one re-plan per environment interaction
        t0 = time.perf_counter()
        prob = dataclasses.replace(problem, horizon=horizons[r])
        states = encode(obs) if predicted is None else track(encode(obs), predicted)
        result = plan_fn(prob, states, goals, jax.random.fold_in(key, r), warm_actions, warm, iterations)
        k = min(execute, horizons[r])
        if track is not None and r + 1 < replans:
            predicted = _predict(problem, params, states, result.actions[:, :k])
        if r + 1 < replans:
            nxt = dataclasses.replace(problem, horizon=horizons[r + 1])
            warm_actions, warm = jax.vmap(lambda one: warm_start(planner, prob, one, k, nxt))(result)
        planned = np.asarray(result.actions)  # waits for the plan
        seconds.append(time.perf_counter() - t0)
        costs.append(np.asarray(result.cost))
        plans.append(planned)
        new_obs = []
        for i, env in enumerate(envs):
            o = obs[i]
            for a in to_env(planned[i, :k]):
                o = np.asarray(env.step(a), np.float64)
                observations[i].append(o)
                actions[i].append(np.asarray(a))
                if success_step[i] < 0 and env.is_success(o, goal_obs[i]):
                    success_step[i] = len(actions[i])
            new_obs.append(o)
        obs = np.stack(new_obs)
        if stop_on_success and min(success_step) >= 0:
            break
    costs, plans = np.stack(costs, axis=1), [tuple(p[i] for p in plans) for i in range(n)]
    return [
        HostMPCResult(
            observations=np.stack(observations[i]),
            actions=np.stack(actions[i]),
            success=success_step[i] >= 0,
            success_step=success_step[i],
            plan_costs=costs[i],
            plan_seconds=np.asarray(seconds),
            final_success=bool(envs[i].is_success(obs[i], goal_obs[i])),
            plans=plans[i],
        )
        for i in range(n)
    ]
