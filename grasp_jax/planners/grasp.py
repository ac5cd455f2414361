"""GRASP: Gradient RelAxed Stochastic Planner (Psenka et al., arXiv 2602.00475).

The trajectory is *lifted*: virtual states ``s_1..s_{H-1}`` are optimised together with
the actions ``a_0..a_{H-1}`` (``s_0`` is the current state, ``s_H`` is pinned to the
goal). The relaxed loss is

    L(s, a) = sum_t ||F(sg(s_t), a_t) - s_{t+1}||^2  +  gamma * sum_t ||F(sg(s_t), a_t) - g||^2

with ``sg`` a stop-gradient on the world model's *state input only*: actions get
gradients through the action input, states only as regression targets, never through
``dF/ds``. All ``H`` model calls in one iteration are independent, so they are one
``vmap``ped call over the horizon. Gaussian noise is added to the virtual states after
each step (annealed), and every ``sync_every`` iterations a short *sync* phase (BPTT on
the actions against the true rollout, or a short CEM whose per-step variance follows the
relaxed-vs-rollout mismatch) pulls the actions back to the real dynamics.

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
from grasp_jax.problem import Problem, rollout

__all__ = ["grasp", "GraspConfig", "GraspState", "GraspInfo", "relaxed_loss", "PAPER_RECIPE"]

# The published recipe (le-wm-grasp settings), for ablations: ``gj.grasp(**PAPER_RECIPE)``.
PAPER_RECIPE = dict(
    goal_weight=1.0,
    num_particles=1,
    init_noise=0.0,
    sync_steps=10,
    sync_lr=0.05,
    sync_states="keep",
)

_NOISE_SCHEDULES = ("phase", "global", "constant")
_GOAL_SCHEDULES = ("constant", "phase", "global")
_SYNC_KINDS = ("bptt", "cem", "none")
_STATE_INITS = ("line", "rollout")
_SYNC_STATES = ("keep", "rollout")


@dataclasses.dataclass(frozen=True)
class GraspConfig:
    """Hyper-parameters of :func:`grasp` (defaults and meaning: its docstring)."""

    iterations: int
    state_lr: float
    action_lr: float
    goal_weight: float
    goal_schedule: str
    stop_gradient: bool
    num_particles: int
    noise_scale: float
    noise_schedule: str
    sync: str
    sync_every: int
    sync_steps: int
    sync_lr: float
    cem_sync_samples: int
    cem_sync_elites: int
    cem_sync_iterations: int
    cem_sync_var_scale: float
    sync_states: str
    reset_optimizer_on_sync: bool
    select_best: bool
    state_init: str
    init_noise: float
    state_scale: Optional[float]
    state_optimizer: Optional[optax.GradientTransformation]
    action_optimizer: Optional[optax.GradientTransformation]


class GraspState(NamedTuple):
    """GRASP iterate for ``P`` particles (independent lifted trajectories).

    Attributes:
      virtual_states: ``[P, N, S]`` virtual states ``s_1..s_N`` in *scaled* coordinates
        ``(s - s_0) / state_scale``; ``N = H - 1`` when goal reaching (``s_H`` pinned to
        the goal), ``N = H`` with a custom cost.
      unit_actions: ``[P, H, A]`` actions in ``[-1, 1]`` box coordinates.
      state_opt_state / action_opt_state: optax states.
      particle_actions: ``[P, H, A]`` each particle's plan after its last sync (box
        coordinates ``[-1, 1]``); the next sync starts from it if the relaxed phase
        has not found a better one by true rollout cost.
      particle_costs: ``[P]`` true rollout cost of ``particle_actions``.
      init_state: ``[S]`` ``s_0``.
      goal: the goal.
      state_scale: scalar state length scale.
      actions: ``[H, A]`` current plan: the actions of the particle with the lowest
        ``particle_costs``.
      best_actions / best_cost: lowest true-rollout cost seen (at sync phases).
    """

    virtual_states: jax.Array
    unit_actions: jax.Array
    state_opt_state: Any
    action_opt_state: Any
    particle_actions: jax.Array
    particle_costs: jax.Array
    init_state: jax.Array
    goal: Any
    state_scale: jax.Array
    actions: jax.Array
    best_actions: jax.Array
    best_cost: jax.Array

    def states(self) -> jax.Array:
        """Virtual states ``[P, N, S]`` in the problem's own units."""
        return self.init_state + self.state_scale * self.virtual_states


class GraspInfo(NamedTuple):
    loss: jax.Array
    consistency: jax.Array
    goal_term: jax.Array
    noise_std: jax.Array
    goal_weight: jax.Array
    synced: jax.Array
    best_cost: jax.Array
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


def _optimizers(config: GraspConfig):
    state_opt = config.state_optimizer or optax.adam(config.state_lr)
    action_opt = config.action_optimizer or optax.adam(config.action_lr)
    return state_opt, action_opt


def _anneal(schedule: str, config: GraspConfig, iteration: jax.Array) -> jax.Array:
    """Multiplier in ``[0, 1]``: constant, linear to 0 within each sync phase, or globally."""
    i = iteration.astype(jnp.float32)
    if schedule == "constant":
        return jnp.ones(())
    if schedule == "global":
        return 1.0 - i / config.iterations
    period = config.sync_every if config.sync_every > 0 and config.sync != "none" else config.iterations
    return 1.0 - jnp.mod(i, period) / period


def _smooth_detours(key, num_particles: int, num_virtual: int, horizon: int, state_dim: int, dtype, num_modes: int = 3):
    """``[P, N, S]`` smooth random curves that vanish at ``t = 0`` and ``t = H``
    (a few sine modes with ``1/k`` decaying amplitudes); particle 0 gets none."""
    t = jnp.arange(1, num_virtual + 1, dtype=dtype) / horizon  # [N]
    k = jnp.arange(1, num_modes + 1, dtype=dtype)  # [M]
    basis = jnp.sin(jnp.pi * t[:, None] * k[None, :]) / k  # [N, M]
    coeffs = jax.random.normal(key, (num_particles, num_modes, state_dim), dtype)
    detours = jnp.einsum("nm,pms->pns", basis, coeffs)
    return detours.at[0].set(0.0)


def _bptt_sync(config, problem, params, state: GraspState, key):
    """J Adam steps on the actions against the true rollout; returns the best iterate."""
    del key
    # Decaying step within the sync: coarse moves first, then a precise landing.
    opt = optax.adam(optax.cosine_decay_schedule(config.sync_lr, config.sync_steps, alpha=0.05))
    grad_fn = jax.value_and_grad(base.shooting_loss, argnums=5)
    scale2 = jnp.square(state.state_scale)

    def body(carry, _):
        u, opt_state, best_u, best_loss = carry
        loss, grad = grad_fn(problem, params, state.init_state, state.goal, state.state_scale, u)
        ok = jnp.isfinite(loss) & base.tree_all_finite(grad)
        loss = jnp.where(ok, loss, jnp.inf)
        best_u, best_loss = base.update_best(best_u, best_loss, u, loss)
        updates, new_opt_state = opt.update(grad, opt_state, u)
        new_u = jnp.clip(optax.apply_updates(u, updates), -1.0, 1.0)
        u, opt_state = base.tree_where(ok, (new_u, new_opt_state), (u, opt_state))
        return (u, opt_state, best_u, best_loss), ok

    u0 = state.unit_actions
    init = (u0, opt.init(u0), u0, jnp.asarray(jnp.inf, u0.dtype))
    (u, _, best_u, best_loss), oks = jax.lax.scan(body, init, None, length=config.sync_steps)
    final_loss = base.shooting_loss(problem, params, state.init_state, state.goal, state.state_scale, u)
    final_loss = jnp.where(jnp.isfinite(final_loss), final_loss, jnp.inf)
    best_u, best_loss = base.update_best(best_u, best_loss, u, final_loss)
    # The sync hands its best iterate back to the relaxed optimisation.
    return best_u, best_loss * scale2, ~jnp.all(oks)


def _cem_sync(config, problem, params, state: GraspState, key):
    """Short CEM around the current actions; per-step variance follows the mismatch
    between the real rollout and the virtual states (explore where they disagree)."""
    actions = base.unit_to_box(problem, state.unit_actions)
    real = rollout(problem, params, state.init_state, actions)[1:]
    virtual = state.states()
    if problem.cost is None:
        virtual = jnp.concatenate([virtual, state.goal[None]], axis=0)
    mismatch = jnp.mean(((real - virtual) / state.state_scale) ** 2, axis=-1)  # [H]
    mismatch = jnp.where(jnp.isfinite(mismatch), mismatch, 1.0)
    std = jnp.sqrt(config.cem_sync_var_scale * mismatch + 0.01)[:, None] * jnp.ones_like(state.unit_actions)
    n, k = config.cem_sync_samples, config.cem_sync_elites

    def body(carry, key):
        mean, std, best_u, best_cost = carry
        eps = jax.random.normal(key, (n - 1,) + mean.shape, mean.dtype)
        samples = jnp.clip(mean + std * eps, -1.0, 1.0)
        samples = jnp.concatenate([mean[None], samples], axis=0)  # the mean is a candidate
        costs = base.batched_rollout_cost(
            problem, params, state.init_state, state.goal, base.unit_to_box(problem, samples)
        )
        cand_u, cand_cost = base.best_of(samples, costs)
        best_u, best_cost = base.update_best(best_u, best_cost, cand_u, cand_cost)
        elites = samples[jnp.argsort(costs)[:k]]
        return (jnp.mean(elites, 0), jnp.maximum(jnp.std(elites, 0), 1e-3), best_u, best_cost), ~jnp.all(jnp.isfinite(costs))

    u0 = state.unit_actions
    init = (u0, std, u0, jnp.asarray(jnp.inf, u0.dtype))
    (_, _, best_u, best_cost), bad = jax.lax.scan(body, init, jax.random.split(key, config.cem_sync_iterations))
    return best_u, best_cost, jnp.any(bad)


def _build(config: GraspConfig) -> base.Planner:
    state_opt, action_opt = _optimizers(config)
    num_particles = config.num_particles

    def init(problem: Problem, params, init_state, goal, key, init_actions=None, init_states=None) -> GraspState:
        dtype = init_state.dtype
        scale_key, noise_key = jax.random.split(key)
        if config.state_scale is None:
            scale = base.estimate_state_scale(problem, params, init_state, goal, scale_key)
        else:
            scale = jnp.asarray(config.state_scale, dtype)
        unit_actions = base.initial_unit_actions(problem, init_actions, dtype)
        horizon = problem.horizon
        num_virtual = horizon - 1 if problem.cost is None else horizon
        if init_states is not None:
            states = jnp.asarray(init_states, dtype)
            if problem.cost is not None:  # warm start gives s_1..s_{H-1}; s_H repeats the last
                states = jnp.concatenate([states, states[-1:]], axis=0)
        elif config.state_init == "rollout" or (init_actions is not None and problem.cost is not None):
            states = rollout(problem, params, init_state, base.unit_to_box(problem, unit_actions))[1 : num_virtual + 1]
        elif problem.cost is None:
            frac = (jnp.arange(1, horizon, dtype=dtype) / horizon)[:, None]
            states = init_state + frac * (goal - init_state)
        else:
            states = jnp.broadcast_to(init_state, (num_virtual,) + init_state.shape)
        z = jnp.broadcast_to((states - init_state) / scale, (num_particles,) + states.shape)
        if config.init_noise > 0:
            z = z + config.init_noise * _smooth_detours(
                noise_key, num_particles, num_virtual, horizon, init_state.shape[0], dtype
            )
        u = jnp.broadcast_to(unit_actions, (num_particles,) + unit_actions.shape)
        actions = base.unit_to_box(problem, unit_actions)
        return GraspState(
            virtual_states=z,
            unit_actions=u,
            state_opt_state=state_opt.init(z),
            action_opt_state=action_opt.init(u),
            particle_actions=u,
            particle_costs=jnp.full((num_particles,), jnp.inf, dtype),
            init_state=init_state,
            goal=goal,
            state_scale=scale,
            actions=actions,
            best_actions=actions,
            # The warm start competes too: the plan returned is never worse than it.
            best_cost=base.rollout_cost(problem, params, init_state, goal, actions),
        )

    def total_loss(z, u, problem, params, state: GraspState, goal_weight):
        """Sum over particles of the relaxed loss (particles are independent)."""

        def one(z, u):
            return relaxed_loss(
                problem,
                params,
                state.init_state + state.state_scale * z,
                base.unit_to_box(problem, u),
                state.init_state,
                state.goal,
                goal_weight=goal_weight,
                stop_gradient=config.stop_gradient,
                state_scale=state.state_scale,
            )

        losses, (consistency, goal_term) = jax.vmap(one)(z, u)
        return jnp.sum(losses), (jnp.mean(losses), jnp.mean(consistency), jnp.mean(goal_term))

    grad_fn = jax.value_and_grad(total_loss, argnums=(0, 1), has_aux=True)

    def sync(problem, params, state: GraspState, key):
        sync_fn = _bptt_sync if config.sync == "bptt" else _cem_sync
        keys = jax.random.split(key, num_particles)

        def one(z, u, k):
            return sync_fn(config, problem, params, state._replace(virtual_states=z, unit_actions=u), k)

        relaxed_costs = jax.vmap(lambda u: base.rollout_cost(
            problem, params, state.init_state, state.goal, base.unit_to_box(problem, u)))(state.unit_actions)
        # Start from the better of the relaxed plan and the particle's last synced plan:
        # the relaxed phase has no backward signal and may have drifted from it.
        relaxed_better = (relaxed_costs <= state.particle_costs)[:, None, None]
        start_u = jnp.where(relaxed_better, state.unit_actions, state.particle_actions)
        synced_u, costs, bad = jax.vmap(one)(state.virtual_states, start_u, keys)
        synced_actions = base.unit_to_box(problem, synced_u)
        best_actions, best_cost = state.best_actions, state.best_cost
        if config.select_best:
            best_actions, best_cost = base.update_best(best_actions, best_cost, *base.best_of(synced_actions, costs))
        z = state.virtual_states
        if config.sync_states == "rollout":
            real = jax.vmap(rollout, in_axes=(None, None, None, 0))(problem, params, state.init_state, synced_actions)
            real = real[:, 1 : z.shape[1] + 1]
            ok = jnp.all(jnp.isfinite(real), axis=(1, 2))[:, None, None]
            z = jnp.where(ok, (real - state.init_state) / state.state_scale, z)
        state_opt_state, action_opt_state = state.state_opt_state, state.action_opt_state
        if config.reset_optimizer_on_sync:
            state_opt_state, action_opt_state = state_opt.init(z), action_opt.init(synced_u)
        new = state._replace(
            virtual_states=z,
            unit_actions=synced_u,
            state_opt_state=state_opt_state,
            action_opt_state=action_opt_state,
            particle_actions=synced_u,
            particle_costs=costs,
            best_actions=best_actions,
            best_cost=best_cost,
        )
        return new, jnp.any(bad)

    def step(problem: Problem, params, state: GraspState, key, iteration):
        noise_key, sync_key = jax.random.split(key)
        goal_weight = config.goal_weight * _anneal(config.goal_schedule, config, iteration)
        (_, (loss, consistency, goal_term)), (gz, gu) = grad_fn(
            state.virtual_states, state.unit_actions, problem, params, state, goal_weight
        )
        finite = jnp.isfinite(loss) & base.tree_all_finite((gz, gu))
        z_updates, state_opt_state = state_opt.update(gz, state.state_opt_state, state.virtual_states)
        u_updates, action_opt_state = action_opt.update(gu, state.action_opt_state, state.unit_actions)
        z = optax.apply_updates(state.virtual_states, z_updates)
        u = jnp.clip(optax.apply_updates(state.unit_actions, u_updates), -1.0, 1.0)
        # A non-finite model output skips the update instead of poisoning the iterates.
        z, u, state_opt_state, action_opt_state = base.tree_where(
            finite,
            (z, u, state_opt_state, action_opt_state),
            (state.virtual_states, state.unit_actions, state.state_opt_state, state.action_opt_state),
        )

        noise_std = config.noise_scale * _anneal(config.noise_schedule, config, iteration)
        if config.noise_scale > 0:
            z = z + noise_std * jax.random.normal(noise_key, z.shape, z.dtype)
        state = state._replace(
            virtual_states=z, unit_actions=u, state_opt_state=state_opt_state, action_opt_state=action_opt_state
        )

        sync_nonfinite = jnp.asarray(False)
        is_sync = jnp.asarray(False)
        if config.sync != "none" and config.sync_every > 0:
            is_sync = jnp.mod(iteration + 1, config.sync_every) == 0
            no_sync = lambda s: (s, jnp.asarray(False))  # noqa: E731
            state, sync_nonfinite = jax.lax.cond(is_sync, lambda s: sync(problem, params, s, sync_key), no_sync, state)

        lead = jnp.argmin(state.particle_costs)
        state = state._replace(actions=base.unit_to_box(problem, state.unit_actions[lead]))
        info = GraspInfo(
            loss=loss,
            consistency=consistency,
            goal_term=goal_term,
            noise_std=jnp.asarray(noise_std, jnp.float32),
            goal_weight=jnp.asarray(goal_weight, jnp.float32),
            synced=is_sync,
            best_cost=state.best_cost,
            nonfinite=~finite | sync_nonfinite,
        )
        return state, info

    return base.Planner(init=init, step=step, iterations=config.iterations, name="grasp", config=config)


_build_cached = base.cached_factory(_build)


def grasp(
    *,
    iterations: int = 300,
    state_lr: float = 0.05,
    action_lr: float = 0.05,
    goal_weight: float = 0.0,
    goal_schedule: str = "constant",
    stop_gradient: bool = True,
    num_particles: int = 16,
    noise_scale: float = 0.05,
    noise_schedule: str = "phase",
    sync: str = "bptt",
    sync_every: int = 50,
    sync_steps: int = 25,
    sync_lr: float = 0.1,
    cem_sync_samples: int = 64,
    cem_sync_elites: int = 8,
    cem_sync_iterations: int = 5,
    cem_sync_var_scale: float = 1.0,
    sync_states: str = "rollout",
    reset_optimizer_on_sync: bool = True,
    select_best: bool = True,
    state_init: str = "line",
    init_noise: float = 3.0,
    state_scale: Optional[float] = None,
    state_optimizer: Optional[optax.GradientTransformation] = None,
    action_optimizer: Optional[optax.GradientTransformation] = None,
) -> base.Planner:
    """Builds the GRASP planner.

    Every part of the published recipe can be switched off for ablation:
    ``stop_gradient=False`` (full gradients through the model's state input),
    ``goal_weight=0`` (no dense goal shaping), ``noise_scale=0`` (no state noise),
    ``sync="none"`` (no sync), ``sync="cem"`` (CEM sync instead of BPTT sync).

    Args:
      iterations: total GRASP iterations (relaxed steps; sync steps come on top).
      state_lr: Adam learning rate of the virtual states, in units of the state scale.
      action_lr: Adam learning rate of the actions, in units of the box half-width.
      goal_weight: ``gamma``, weight of the dense goal-shaping term.
      stop_gradient: stop-gradient on the world model's state input (the reshaping).
      noise_scale: std of the Gaussian noise added to the virtual states after each
        step, in units of the state scale.
      noise_schedule: ``"phase"`` (linear anneal to 0 within each sync phase),
        ``"global"`` (linear anneal over the whole run) or ``"constant"``.
      sync: ``"bptt"``, ``"cem"`` or ``"none"``.
      sync_every: ``K``, iterations between syncs (0 disables).
      sync_steps: ``J``, Adam steps on the true rollout loss per BPTT sync.
      sync_lr: Adam learning rate of the BPTT sync (box half-width units).
      cem_sync_samples / cem_sync_elites / cem_sync_iterations / cem_sync_var_scale:
        the CEM sync: per-step variance ``var_scale * mismatch_t + 0.01`` in box
        half-width units, ``mismatch_t`` the mean squared scaled gap between the real
        rollout and the virtual state at step ``t``.
      sync_states: after a sync, ``"keep"`` the virtual states or reset them to the
        ``"rollout"`` of the synced actions.
      reset_optimizer_on_sync: re-initialise the Adam moments after each sync.
      select_best: remember the best synced plan by true rollout cost; the driver
        returns the better of it and the final plan.
      state_init: ``"line"`` (straight line ``s_0 -> g``) or ``"rollout"`` (rollout of
        the initial actions).
      init_noise: std of noise added to the initial virtual states (state-scale units).
      state_scale: fixed state scale; ``None`` estimates it per problem.
      state_optimizer / action_optimizer: optax transformations replacing the default
        ``optax.adam(state_lr)`` / ``optax.adam(action_lr)``.

    Returns:
      A :class:`~grasp_jax.planners.base.Planner`.
    """
    config = GraspConfig(**{k: v for k, v in locals().items()})
    _check_config(config)
    return _build_cached(config)


def _check_config(c: GraspConfig):
    base.check_int("iterations", c.iterations)
    base.check_int("sync_every", c.sync_every, minimum=0)
    base.check_int("sync_steps", c.sync_steps)
    base.check_int("cem_sync_samples", c.cem_sync_samples)
    base.check_int("cem_sync_iterations", c.cem_sync_iterations)
    base.check_int("cem_sync_elites", c.cem_sync_elites, maximum=c.cem_sync_samples)
    for name in ("state_lr", "action_lr", "sync_lr"):
        base.check_float(name, getattr(c, name), strict=True)
    for name in ("goal_weight", "noise_scale", "init_noise", "cem_sync_var_scale"):
        base.check_float(name, getattr(c, name))
    base.check_int("num_particles", c.num_particles)
    base.check_choice("noise_schedule", c.noise_schedule, _NOISE_SCHEDULES)
    base.check_choice("goal_schedule", c.goal_schedule, _GOAL_SCHEDULES)
    base.check_choice("sync", c.sync, _SYNC_KINDS)
    base.check_choice("state_init", c.state_init, _STATE_INITS)
    base.check_choice("sync_states", c.sync_states, _SYNC_STATES)
    if c.state_scale is not None:
        base.check_float("state_scale", c.state_scale, strict=True)
