"""GRASP: Gradient RelAxed Stochastic Planner (Psenka et al., arXiv 2602.00475).

The trajectory is *lifted*: virtual states ``s_1..s_{H-1}`` are optimised together with
the actions ``a_0..a_{H-1}`` (``s_0`` is the current state, ``s_H`` is pinned to the
goal). The relaxed loss is

    L(s, a) = sum_t ||F(sg(s_t), a_t) - s_{t+1}||^2  +  gamma * sum_t ||F(sg(s_t), a_t) - g||^2

with ``sg`` a stop-gradient on the world model's *state input only*: actions get
gradients through the action input, states only as regression targets, never through
``dF/ds``. All ``H`` model calls in one iteration are independent, so they are one
``vmap``ped call over the horizon. Gaussian noise is added to the virtual states after
each step (annealed to 0 within each sync period), and every ``sync_every`` iterations
(and at the last one) a *sync* pulls each particle's actions back to the real dynamics by
running another planner of this library from them (by default a short BPTT,
``gj.bptt(iterations=25, ...)``); the virtual states restart from the rollout of the
synced plan.

``P`` particles (independent lifted trajectories; particle 0 starts on the straight line
from ``s_0`` to the goal, the others on smooth random detours) run side by side in the same
batched model call; each sync proposes the best particle's plan by true rollout cost.

State learning rate and noise are in units of the problem's state scale
(:func:`~grasp_jax.planners.base.estimate_state_scale`), action learning rates in units of
the box half-width, and the relaxed loss is computed on residuals divided by that scale:
one set of defaults serves latents of size 1e-2 and 1e3 alike.

Deviations from the published recipe are listed in ``docs/grasp.md``.
"""


import dataclasses
from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax

from grasp_jax.planners import base
from grasp_jax.planners.bptt import bptt
from grasp_jax.problem import Problem, rollout

__all__ = ["grasp", "GraspConfig", "GraspState", "GraspWarm", "GraspInfo", "relaxed_loss", "DEFAULT_SYNC", "PAPER_RECIPE"]

# The default sync: 25 Adam steps through the rollout. GRASP keeps each particle's Adam
# moments from one sync to the next (``GraspState.sync_memory``), so the syncs add up to one
# converging optimisation rather than restarts that each kick a good plan away.
DEFAULT_SYNC = bptt(iterations=25, learning_rate=0.1)

# The published recipe (le-wm-grasp settings), for ablations: ``gj.grasp(**PAPER_RECIPE)``.
PAPER_RECIPE = dict(
    goal_weight=1.0,
    num_particles=1,
    init_noise=0.0,
    sync=bptt(iterations=10, learning_rate=0.05),
)


@dataclasses.dataclass(frozen=True)
class GraspConfig:
    """Hyper-parameters of :func:`grasp` (defaults and meaning: its docstring)."""

    iterations: int
    state_lr: float
    action_lr: float
    goal_weight: float
    stop_gradient: bool
    num_particles: int
    noise_scale: float
    init_noise: float
    sync: Optional[base.Planner]
    sync_every: int
    state_scale: Optional[float]


class GraspState(NamedTuple):
    """GRASP iterate for ``P`` particles (independent lifted trajectories).

    Attributes:
      virtual_states: ``[P, N, S]`` virtual states ``s_1..s_N`` divided by
        ``state_scale``; ``N = H - 1`` when goal reaching (``s_H`` pinned to the goal),
        ``N = H`` with a custom cost.
      unit_actions: ``[P, H, A]`` actions in ``[-1, 1]`` box coordinates.
      state_opt_state / action_opt_state: optax states.
      synced_actions: ``[P, H, A]`` each particle's plan after its last sync (box
        coordinates); the next sync starts from it if the relaxed phase has not found a
        better one by true rollout cost.
      synced_costs: ``[P]`` true rollout cost of ``synced_actions`` (``inf`` before any).
      sync_memory: per particle (leading ``[P]``), the sync planner's memory between syncs
        (``sync.shift(problem, state, 0)``: e.g. BPTT's Adam moments), so successive syncs
        continue one optimisation instead of restarting it; ``None`` if it keeps none.
      state_scale: ``[]`` the state length scale (fixed at ``init``).
    """

    virtual_states: jax.Array
    unit_actions: jax.Array
    state_opt_state: Any
    action_opt_state: Any
    synced_actions: jax.Array
    synced_costs: jax.Array
    sync_memory: Any
    state_scale: jax.Array

    def states(self) -> jax.Array:
        """Virtual states ``[P, N, S]`` in the problem's own units."""
        return self.state_scale * self.virtual_states


class GraspWarm(NamedTuple):
    """What :func:`grasp`'s ``shift`` hands to the next plan: the particles' shifted
    virtual states (``[P, N, S]``, in units of ``state_scale``) and actions (``[P, H, A]``,
    box coordinates)."""

    virtual_states: jax.Array
    unit_actions: jax.Array
    state_scale: jax.Array


class GraspInfo(NamedTuple):
    loss: jax.Array
    consistency: jax.Array
    goal_term: jax.Array
    noise_std: jax.Array
    synced: jax.Array
    nonfinite: jax.Array


def relaxed_loss(
    problem: Problem,
    params,
    virtual_states: jax.Array,
    actions: jax.Array,
    init_state: jax.Array,
    goal,
    *,
    goal_weight: float = 1.0,
    stop_gradient: bool = True,
    state_scale: jax.Array | float = 1.0,
):
    """The lifted GRASP loss, in the problem's own units.

    Args:
      problem: the problem (dynamics, horizon, optional cost).
      params: world-model parameters.
      virtual_states: ``[H-1, S]`` (goal reaching; ``s_H`` is the goal) or ``[H, S]``
        (custom cost; ``s_H`` is free).
      actions: ``[H, A]``.
      init_state: ``[S]``.
      goal: ``[S]`` for goal reaching; passed to ``problem.cost`` otherwise.
      goal_weight: ``gamma``, weight of the dense goal term (goal reaching) or of the
        task cost on the virtual trajectory (custom cost).
      stop_gradient: pass the model's state input through ``lax.stop_gradient``.
      state_scale: residuals are divided by it (scale invariance).

    Returns:
      ``(loss, (consistency, goal_term))``, all scalars.
    """
    inputs = jnp.concatenate([init_state[None], virtual_states[: problem.horizon - 1]], axis=0)
    if problem.cost is None:
        targets = jnp.concatenate([virtual_states, goal[None]], axis=0)
    else:
        targets = virtual_states
    model_inputs = jax.lax.stop_gradient(inputs) if stop_gradient else inputs
    predictions = jax.vmap(problem.dynamics, in_axes=(None, 0, 0))(params, model_inputs, actions)
    inv_scale2 = 1.0 / jnp.square(state_scale)
    consistency = jnp.sum((predictions - targets) ** 2) * inv_scale2
    if problem.cost is None:
        goal_term = jnp.sum((predictions - goal) ** 2) * inv_scale2
    else:
        trajectory = jnp.concatenate([init_state[None], virtual_states], axis=0)
        goal_term = jnp.asarray(problem.cost(trajectory, actions, goal)) * inv_scale2
    return consistency + goal_weight * goal_term, (consistency, goal_term)


def _build(config: GraspConfig) -> base.Planner:
    # A non-finite gradient (NaN/Inf from the model) skips the step instead of poisoning the iterates.
    state_opt = optax.apply_if_finite(optax.adam(config.state_lr), max_consecutive_errors=2**30)
    action_opt = optax.apply_if_finite(optax.adam(config.action_lr), max_consecutive_errors=2**30)
    num_particles, sync = config.num_particles, config.sync

    def init(problem: Problem, params, init_state, goal, key, init_actions=None, warm=None) -> GraspState:
        dtype = init_state.dtype
        scale_key, noise_key = jax.random.split(key)
        if config.state_scale is None:
            scale = base.estimate_state_scale(problem, params, init_state, goal, scale_key)
        else:
            scale = jnp.asarray(config.state_scale, dtype)
        unit_actions = base.initial_unit_actions(problem, init_actions, dtype)
        horizon = problem.horizon
        num_virtual = horizon - 1 if problem.cost is None else horizon
        if warm is not None:
            z = warm.virtual_states * (warm.state_scale / scale)
            u = warm.unit_actions
            if init_actions is not None:  # the driver's best plan (shifted) leads
                u = u.at[0].set(unit_actions)
        else:
            if problem.cost is None:
                frac = (jnp.arange(1, horizon, dtype=dtype) / horizon)[:, None]
                states = init_state + frac * (goal - init_state)
            else:
                states = rollout(problem, params, init_state, base.unit_to_box(problem, unit_actions))[1:]
            z = jnp.broadcast_to(states / scale, (num_particles, num_virtual) + init_state.shape)
            if config.init_noise > 0:
                z = z + config.init_noise * base.smooth_detours(
                    noise_key, num_particles, num_virtual, horizon, init_state.shape[0], dtype
                )
            u = jnp.broadcast_to(unit_actions, (num_particles,) + unit_actions.shape)
        memory = None
        if sync is not None:
            def fresh(u, k):
                return sync.shift(problem, sync.init(problem, params, init_state, goal, k, base.unit_to_box(problem, u), None), 0)

            memory = jax.vmap(fresh)(u, jax.random.split(scale_key, num_particles))
        return GraspState(
            virtual_states=z,
            unit_actions=u,
            state_opt_state=state_opt.init(z),
            action_opt_state=action_opt.init(u),
            synced_actions=u,
            synced_costs=jnp.full((num_particles,), jnp.inf, dtype),
            sync_memory=memory,
            state_scale=scale,
        )

    def total_loss(z, u, problem, params, init_state, goal, scale):
        """Sum over particles of the relaxed loss (particles are independent)."""

        def one(z, u):
            return relaxed_loss(
                problem, params, scale * z, base.unit_to_box(problem, u), init_state, goal,
                goal_weight=config.goal_weight, stop_gradient=config.stop_gradient, state_scale=scale,
            )  # fmt: skip

        losses, (consistency, goal_term) = jax.vmap(one)(z, u)
        return jnp.sum(losses), (jnp.mean(losses), jnp.mean(consistency), jnp.mean(goal_term))

    grad_fn = jax.value_and_grad(total_loss, argnums=(0, 1), has_aux=True)

    def evaluate(problem, params, init_state, goal, state: GraspState, key):
        """Sync (or, without one, just score) every particle; propose the best."""
        plans = base.unit_to_box(problem, state.unit_actions)
        relaxed_costs = base.batched_rollout_cost(problem, params, init_state, goal, plans)
        # Start from the better of the relaxed plan and the particle's last synced plan:
        # the relaxed phase may have drifted from a good synced plan.
        relaxed_better = relaxed_costs <= state.synced_costs
        start_u = jnp.where(relaxed_better[:, None, None], state.unit_actions, state.synced_actions)
        costs = jnp.where(relaxed_better, relaxed_costs, state.synced_costs)
        bad = ~jnp.all(jnp.isfinite(relaxed_costs))
        memory = state.sync_memory
        if sync is not None:
            def one(u, memory, k):
                out = base.run(sync, problem, params, init_state, goal, k, base.unit_to_box(problem, u), memory)
                memory = sync.shift(problem, out.state, 0)
                return problem.to_unit(out.best.actions), out.best.cost, memory, jnp.any(out.trace.nonfinite)

            start_u, costs, memory, sync_bad = jax.vmap(one)(start_u, memory, jax.random.split(key, num_particles))
            bad = bad | jnp.any(sync_bad)
        synced_plans = base.unit_to_box(problem, start_u)
        real = jax.vmap(rollout, in_axes=(None, None, None, 0))(problem, params, init_state, synced_plans)
        real = real[:, 1 : state.virtual_states.shape[1] + 1] / state.state_scale
        ok = jnp.all(jnp.isfinite(real), axis=(1, 2))[:, None, None]
        z = jnp.where(ok, real, state.virtual_states)  # virtual states restart on the real rollout
        new = state._replace(
            virtual_states=z,
            unit_actions=start_u,
            state_opt_state=state_opt.init(z),
            action_opt_state=action_opt.init(start_u),
            synced_actions=start_u,
            synced_costs=costs,
            sync_memory=memory,
        )
        return new, base.best_of(synced_plans, costs), bad

    def relaxed_only(problem, params, init_state, goal, state: GraspState, key):
        del params, init_state, goal, key
        lead = jnp.argmin(state.synced_costs)
        candidate = base.Candidate(base.unit_to_box(problem, state.unit_actions[lead]), jnp.asarray(jnp.inf, state.synced_costs.dtype))
        return state, candidate, jnp.asarray(False)

    def step(problem: Problem, params, init_state, goal, state: GraspState, key, iteration, num_iterations):
        noise_key, sync_key = jax.random.split(key)
        scale = state.state_scale
        (_, (loss, consistency, goal_term)), (gz, gu) = grad_fn(
            state.virtual_states, state.unit_actions, problem, params, init_state, goal, scale
        )
        finite = jnp.isfinite(loss) & base.tree_all_finite((gz, gu))
        z_updates, state_opt_state = state_opt.update(gz, state.state_opt_state, state.virtual_states)
        u_updates, action_opt_state = action_opt.update(gu, state.action_opt_state, state.unit_actions)
        z = optax.apply_updates(state.virtual_states, z_updates)
        u = optax.projections.projection_box(optax.apply_updates(state.unit_actions, u_updates), -1.0, 1.0)
        period = config.sync_every if sync is not None else num_iterations
        noise_std = config.noise_scale * (1.0 - jnp.mod(iteration, period).astype(z.dtype) / period)
        if config.noise_scale > 0:
            z = z + noise_std * jax.random.normal(noise_key, z.shape, z.dtype)
        state = state._replace(
            virtual_states=z, unit_actions=u, state_opt_state=state_opt_state, action_opt_state=action_opt_state
        )
        # Sync every period and at the last iteration, so every budget ends on a real plan.
        is_sync = (jnp.mod(iteration + 1, period) == 0) | (iteration == num_iterations - 1)
        state, candidate, sync_bad = jax.lax.cond(
            is_sync,
            lambda *a: evaluate(problem, *a),
            lambda *a: relaxed_only(problem, *a),
            params, init_state, goal, state, sync_key,
        )  # fmt: skip
        info = GraspInfo(
            loss=loss,
            consistency=consistency,
            goal_term=goal_term,
            noise_std=jnp.asarray(noise_std, jnp.float32),
            synced=is_sync,
            nonfinite=~finite | sync_bad,
        )
        return state, candidate, info

    def shift(problem: Problem, state: GraspState, k: int) -> GraspWarm:
        z = state.virtual_states
        num_virtual = problem.horizon - 1 if problem.cost is None else problem.horizon
        last = z[:, -1:] if z.shape[1] else jnp.zeros(z.shape[:1] + (1,) + z.shape[2:], z.dtype)
        z = base.shift_rows(z, k, num_virtual, last, axis=1)
        u = base.shift_rows(state.unit_actions, k, problem.horizon, jnp.zeros((), state.unit_actions.dtype), axis=1)
        return GraspWarm(virtual_states=z, unit_actions=u, state_scale=state.state_scale)

    def iteration_cost(horizon: int, iterations: int) -> base.IterationCost:
        period = config.sync_every if sync is not None else iterations
        syncs = -(-iterations // period)  # every period, and always at the last iteration
        relaxed = base.IterationCost(3.0 * horizon * num_particles, 2.0)
        # a sync: score the relaxed plans, run the sync planner, roll the result out.
        calls, depth = 2.0 * horizon, 2.0 * horizon
        if sync is not None:
            inner = sync.iteration_cost(horizon, sync.iterations)
            calls += inner.model_calls * sync.iterations + horizon
            depth += inner.depth * sync.iterations + horizon
        return base.IterationCost(relaxed.model_calls + num_particles * calls * syncs / iterations,
                                  relaxed.depth + depth * syncs / iterations)

    return base.Planner(
        init=init, step=step, iterations=config.iterations, name="grasp", config=config, shift=shift,
        iteration_cost=iteration_cost, differentiates=True,
    )  # fmt: skip


_build_cached = base.cached_factory(_build)


def grasp(
    *,
    iterations: int = 300,
    state_lr: float = 0.05,
    action_lr: float = 0.05,
    goal_weight: float = 0.0,
    stop_gradient: bool = True,
    num_particles: int = 16,
    noise_scale: float = 0.05,
    init_noise: float = 3.0,
    sync: Optional[base.Planner] = DEFAULT_SYNC,
    sync_every: int = 50,
    state_scale: Optional[float] = None,
) -> base.Planner:
    """Builds the GRASP planner.

    Every part of the published recipe can be switched off for ablation:
    ``stop_gradient=False`` (full gradients through the model's state input),
    ``goal_weight=0`` (no dense goal shaping), ``noise_scale=0`` (no state noise),
    ``sync=None`` (no sync: the relaxed plans are only scored at the end), or replaced
    (``sync=gj.cem(iterations=5, num_samples=64)``: any planner of the library).

    Args:
      iterations: GRASP iterations (relaxed steps; the sync's steps come on top).
      state_lr: Adam learning rate of the virtual states, in units of the state scale.
      action_lr: Adam learning rate of the actions, in units of the box half-width.
      goal_weight: ``gamma``, weight of the dense goal-shaping term.
      stop_gradient: stop-gradient on the world model's state input (the reshaping).
      num_particles: independent lifted trajectories, side by side in one batched call.
      noise_scale: std of the Gaussian noise added to the virtual states after each
        step, in units of the state scale, annealed linearly to 0 within each sync period.
      init_noise: amplitude of the smooth random detours of particles 1.. at the start
        (state-scale units).
      sync: the planner run from each particle's actions at every sync (its own default
        budget), or ``None``.
      sync_every: ``K``, iterations between syncs (the last iteration always syncs).
      state_scale: fixed state scale; ``None`` estimates it per problem.

    Returns:
      A :class:`~grasp_jax.planners.base.Planner`; ``shift`` keeps the particles' virtual
      states for warm starts.
    """
    config = GraspConfig(**{k: v for k, v in locals().items()})
    _check_config(config)
    return _build_cached(config)


def _check_config(c: GraspConfig):
    base.check_int("iterations", c.iterations)
    base.check_int("sync_every", c.sync_every)
    base.check_int("num_particles", c.num_particles)
    for name in ("state_lr", "action_lr"):
        base.check_float(name, getattr(c, name), strict=True)
    for name in ("goal_weight", "noise_scale", "init_noise"):
        base.check_float(name, getattr(c, name))
    if c.sync is not None and not isinstance(c.sync, base.Planner):
        raise TypeError(
            f"sync must be None or a grasp_jax.Planner (e.g. gj.bptt(iterations=25)); got {type(c.sync).__name__}."
        )
    if not isinstance(c.stop_gradient, bool):
        raise TypeError(f"stop_gradient must be a bool; got {c.stop_gradient!r}.")
    if c.state_scale is not None:
        base.check_float("state_scale", c.state_scale, strict=True)
