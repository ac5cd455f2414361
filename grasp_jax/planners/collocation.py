"""Lifted collocation with Levenberg-Marquardt steps: GRASP's lifted trajectory, second order.

The trajectory is lifted as in :func:`~grasp_jax.planners.grasp.grasp`: the virtual states
``s_1..s_H`` are optimisation variables next to the actions ``a_0..a_{H-1}``, tied to the
world model by the consistency residuals ``r_t = F(s_t, a_t) - s_{t+1}``. The loss is

    L(s, a) = penalty * sum_t ||r_t + m_t||^2  +  cost(s, a, goal)  +  action_reg * ||a||^2

(states in units of the problem's state scale, actions in ``[-1, 1]`` box coordinates; the
cost is the problem's own: ``||s_H - g||^2`` for goal reaching; ``m_t`` are optional
augmented-Lagrangian multipliers over ``2 * penalty``, updated ``m_t += r_t`` every
``multiplier_every`` steps, zero by default). Each iteration is one damped Gauss-Newton
(Levenberg-Marquardt) step on it:

1. one batched call of the model's Jacobians at every ``(s_t, a_t)`` of every particle (all
   ``H`` steps at once, as GRASP's one batched model call, but with forward- or
   reverse-mode tangents);
2. the normal equations are block tridiagonal in time (``r_t`` couples step ``t``'s
   action and next state with the state before it), solved exactly by a block Cholesky
   sweep (``lax.scan`` over the horizon; small dense blocks, no model calls);
3. the step is tried with one more batched model call and kept only if the loss falls
   (the damping shrinks 3x on success and grows 4x on failure): a step never makes a
   particle worse, and a non-finite model output only raises the damping.

Unlike GRASP's default there is **no stop-gradient** on the model's state input: the
Jacobian ``dF/ds`` is what carries the goal backwards through the lifted states in one
step instead of one time step per iteration (with the stop-gradient, Gauss-Newton solves
nothing: the states only follow the model forward). Nothing is backpropagated through a
rollout either: every model call in an iteration is independent of the others, so the
sequential depth of an iteration is about 3 model calls, against ``2H`` for a BPTT step.

``P`` particles start from the straight line in state space from ``s_0`` to the goal (when
the goal is a state; otherwise from the rollout of the initial plan), particles 1..P-1 on
smooth random detours of amplitude ``init_noise`` (GRASP's proposals in state space).
Every ``eval_every`` iterations and at the last one, each particle's actions are rolled
out through the model and the best plan by true cost is proposed.

The cost's Hessian enters the normal equations through its blocks on and next to the
diagonal in time (recovered with ``3 (A + S)`` Hessian-vector products); that is exact for
costs that couple at most neighbouring steps (final-state distance, per-step sums, action
smoothness) and an approximation otherwise (the acceptance test still never lets a step
increase the loss).
"""

import dataclasses
import functools
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp

from grasp_jax.planners import base
from grasp_jax.problem import Problem, rollout, trajectory_cost

__all__ = [
    "collocation",
    "CollocationConfig",
    "CollocationState",
    "CollocationWarm",
    "CollocationInfo",
    "lifted_loss",
    "gauss_newton_system",
    "block_tridiagonal_solve",
]

_SHRINK, _GROW = 1.0 / 3.0, 4.0
# A Jacobian call costs about as many model calls as it has tangents (S + A forward, or
# about 2S reverse), which the cost model cannot see (it knows no dimensions): 20 is
# Push-T's (8-d state, 10-d action: 8 cotangents in reverse mode). Benchmarks compare
# wall time and depth, which are measured or exact; model calls are a rough guide.
JACOBIAN_CALLS = 20.0
_MIN_DAMPING, _MAX_DAMPING = 1e-6, 1e8


def _full_float32(fn):
    """Traces ``fn`` with every matrix product at full float32 precision.

    On GPUs with tensor cores (A100, H100) JAX's default float32 product runs in TF32 (a
    10-bit mantissa): fine for a model's forward pass, not for a Gauss-Newton system and its
    block Cholesky sweep, where the rounding of ``J^T J`` and of the chained block inverses
    wrecks the steps (measured on an H100: Push-T at H = 80, 64% of tasks solved at the default
    budget against 99% at full precision, which is what a CPU gives). The Jacobians, the
    system and the solve run at ``"highest"``; the trial calls keep the caller's precision.
    A model whose layers name their own ``precision=`` keeps it (only the default is raised).
    """

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        with jax.default_matmul_precision("highest"):
            return fn(*args, **kwargs)

    return wrapped


@dataclasses.dataclass(frozen=True)
class CollocationConfig:
    """Hyper-parameters of :func:`collocation` (defaults and meaning: its docstring)."""

    iterations: int
    num_particles: int
    penalty: float
    damping: float
    init_noise: float
    action_reg: float
    eval_every: int
    multiplier_every: int
    multiplier_start: float
    state_scale: Optional[float]


class CollocationState(NamedTuple):
    """The iterate of ``P`` particles.

    Attributes:
      virtual_states: ``[P, H, S]`` virtual states ``s_1..s_H`` divided by ``state_scale``.
      unit_actions: ``[P, H, A]`` actions in ``[-1, 1]`` box coordinates.
      damping: ``[P]`` each particle's Levenberg-Marquardt damping.
      loss: ``[P]`` each particle's current lifted loss.
      multipliers: ``[P, H, S]`` the augmented-Lagrangian shifts of the consistency
        residuals (the multipliers divided by ``2 * penalty``; zeros without them).
      state_scale: ``[]`` the state length scale (fixed at ``init``).
    """

    virtual_states: jax.Array
    unit_actions: jax.Array
    damping: jax.Array
    loss: jax.Array
    multipliers: jax.Array
    state_scale: jax.Array

    def states(self) -> jax.Array:
        """Virtual states ``[P, H, S]`` in the problem's own units."""
        return self.state_scale * self.virtual_states


class CollocationWarm(NamedTuple):
    """What ``shift`` hands to the next plan: the particles' shifted virtual states
    (``[P, H, S]``, units of ``state_scale``) and actions (``[P, H, A]``)."""

    virtual_states: jax.Array
    unit_actions: jax.Array
    state_scale: jax.Array


class CollocationInfo(NamedTuple):
    loss: jax.Array
    consistency: jax.Array
    damping: jax.Array
    accepted: jax.Array
    nonfinite: jax.Array


@_full_float32
def block_tridiagonal_solve(diag: jax.Array, lower: jax.Array, rhs: jax.Array) -> jax.Array:
    """Solves ``M x = rhs`` for a symmetric positive definite block-tridiagonal ``M``.

    Args:
      diag: ``[T, n, n]`` the diagonal blocks ``M[t, t]``.
      lower: ``[T, n, n]`` the blocks below the diagonal, ``lower[t] = M[t, t-1]``
        (``lower[0]`` is ignored); the blocks above are their transposes.
      rhs: ``[T, n]``.

    Returns:
      ``x [T, n]``. A block Cholesky (Thomas) sweep forward and back, ``O(T n^3)``.
    """
    n = diag.shape[-1]
    eye = jnp.eye(n, dtype=diag.dtype)

    def forward(carry, inputs):
        d_prev_inv, w_prev = carry
        m_tt, m_low, g = inputs
        link = m_low @ d_prev_inv  # L_t = M[t, t-1] D_{t-1}^{-1}
        d = m_tt - link @ m_low.T
        w = g - link @ w_prev
        d_inv = jnp.linalg.solve(d, eye)
        return (d_inv, w), (d_inv, w)

    first_inv = jnp.linalg.solve(diag[0], eye)
    _, (d_inv, w) = jax.lax.scan(forward, (first_inv, rhs[0]), (diag[1:], lower[1:], rhs[1:]))
    d_inv = jnp.concatenate([first_inv[None], d_inv], axis=0)
    w = jnp.concatenate([rhs[:1], w], axis=0)

    def backward(x_next, inputs):
        d_inv_t, w_t, m_up = inputs  # m_up = M[t+1, t]
        x = d_inv_t @ (w_t - m_up.T @ x_next)
        return x, x

    x_last = d_inv[-1] @ w[-1]
    _, xs = jax.lax.scan(backward, x_last, (d_inv[:-1], w[:-1], lower[1:]), reverse=True)
    return jnp.concatenate([xs, x_last[None]], axis=0)


def lifted_loss(problem: Problem, params, init_state, goal, scale, z, u, shift, *, penalty: float, action_reg: float):
    """The lifted loss of one particle and its consistency: ``(loss, sum_t ||r_t||^2)``.

    ``loss = penalty * sum_t ||r_t + shift_t||^2 + cost / scale^2 + action_reg * ||u||^2``
    with ``r_t = (F(s_t, a_t) - s_{t+1}) / scale``; ``z [H, S]`` are the virtual states
    ``s_1..s_H`` over ``scale``, ``u [H, A]`` the actions in box coordinates and ``shift``
    the augmented-Lagrangian multipliers over ``2 * penalty`` (zeros: a pure penalty).
    """
    states = scale * z
    actions = base.unit_to_box(problem, u)
    inputs = jnp.concatenate([init_state[None], states[:-1]], axis=0)
    predictions = jax.vmap(problem.dynamics, in_axes=(None, 0, 0))(params, inputs, actions)
    residual = (predictions - states) / scale
    cost = _scaled_cost(problem, init_state, goal, scale, z, u)
    loss = penalty * jnp.sum((residual + shift) ** 2) + cost + action_reg * jnp.sum(u**2)
    return loss, jnp.sum(residual**2)


def _scaled_cost(problem, init_state, goal, scale, z, u):
    trajectory = jnp.concatenate([init_state[None], scale * z], axis=0)
    return trajectory_cost(problem, trajectory, base.unit_to_box(problem, u), goal) / jnp.square(scale)


@_full_float32
def gauss_newton_system(
    problem: Problem, params, init_state, goal, scale, z, u, shift, *, penalty: float, action_reg: float
):
    """The Gauss-Newton system of :func:`lifted_loss` in the per-step variables ``y_t = (u_t, z_{t+1})``.

    Returns ``(diag [H, n, n], lower [H, n, n], grad [H, n], residual [H, S])`` with
    ``n = A + S``: the blocks of ``2 penalty J^T J + nabla^2 (cost + regulariser)`` on the
    diagonal and below it (``lower[t]`` couples ``y_t`` with ``y_{t-1}``; ``lower[0] = 0``),
    the exact gradient of the loss, and the consistency residuals ``r_t``. ``J`` is the
    residuals' Jacobian (the model's Jacobians at every step, one batched call); the
    cost's Hessian blocks come from ``3 n`` Hessian-vector products (exact when the cost
    couples at most neighbouring steps).
    """
    horizon, action_dim = problem.horizon, problem.action_dim
    state_dim = init_state.shape[0]
    nb = action_dim + state_dim
    states = scale * z
    inputs = jnp.concatenate([init_state[None], states[:-1]], axis=0)
    actions = base.unit_to_box(problem, u)

    def model(s, a):
        return problem.dynamics(params, s, a)

    # Reverse mode needs S cotangents (about 2 model calls each), forward mode S + A tangents.
    reverse = 2 * state_dim < state_dim + action_dim
    jac = (jax.jacrev if reverse else jax.jacfwd)(model, argnums=(0, 1))
    predictions = jax.vmap(model)(inputs, actions)
    js, ja = jax.vmap(jac)(inputs, actions)  # [H, S, S], [H, S, A]
    residual = (predictions - states) / scale  # [H, S]
    shifted = residual + shift  # the augmented Lagrangian's residuals
    ja = ja * (problem.action_half_width / scale)  # d r_t / d u_t
    minus_eye = jnp.broadcast_to(-jnp.eye(state_dim, dtype=z.dtype), (horizon, state_dim, state_dim))
    b = jnp.concatenate([ja, minus_eye], axis=-1)  # d r_t / d y_t        [H, S, nb]
    c = jnp.concatenate([jnp.zeros_like(ja), js], axis=-1)  # d r_t / d y_{t-1} [H, S, nb] (c[0] unused)
    c = c.at[0].set(0.0)
    bt_b = jnp.einsum("tsi,tsj->tij", b, b)
    ct_c = jnp.einsum("tsi,tsj->tij", c, c)
    diag = bt_b + jnp.concatenate([ct_c[1:], jnp.zeros_like(ct_c[:1])], axis=0)
    lower = jnp.einsum("tsi,tsj->tij", b, c)  # M[t, t-1] = B_t^T C_t
    bt_r = jnp.einsum("tsi,ts->ti", b, shifted)
    ct_r = jnp.einsum("tsi,ts->ti", c, shifted)
    grad = bt_r + jnp.concatenate([ct_r[1:], jnp.zeros_like(ct_r[:1])], axis=0)
    two_rho = 2.0 * penalty
    diag, lower, grad = two_rho * diag, two_rho * lower, two_rho * grad

    # The cost's gradient and its Hessian's diagonal and sub-diagonal blocks in time:
    # 3 (A + S) Hessian-vector products, each with one unit tangent in every third step.
    def cost_y(y):
        u, z = y[:, :action_dim], y[:, action_dim:]
        return _scaled_cost(problem, init_state, goal, scale, z, u) + action_reg * jnp.sum(u**2)

    y = jnp.concatenate([u, z], axis=-1)
    cost_grad = jax.grad(cost_y)
    steps = jnp.arange(horizon)
    in_colour = (jnp.mod(steps, 3)[None, :] == jnp.arange(3)[:, None]).astype(y.dtype)  # [3, H]
    tangents = in_colour[:, None, :, None] * jnp.eye(nb, dtype=y.dtype)[None, :, None, :]  # [3, nb (k), H, nb]
    hvps = jax.vmap(lambda v: jax.jvp(cost_grad, (y,), (v,))[1])(tangents.reshape(3 * nb, horizon, nb))
    # hvps[m, k, t, i] = sum over steps t' = m (mod 3) of Hessian[(t, i), (t', k)]; with at most
    # neighbouring steps coupled, only t' = t (colour t) or t' = t - 1 (colour t - 1) is left.
    hvps = hvps.reshape(3, nb, horizon, nb)
    colour = jnp.mod(steps, 3)
    h_diag = jnp.swapaxes(hvps[colour, :, steps, :], 1, 2)  # [H, nb(row), nb(col k)]
    prev_colour = jnp.mod(steps - 1, 3)
    h_low = jnp.swapaxes(hvps[prev_colour, :, steps, :], 1, 2)  # H[(t, :), (t-1, k)]
    h_low = h_low.at[0].set(0.0)
    diag = diag + 0.5 * (h_diag + jnp.swapaxes(h_diag, 1, 2))
    lower = lower + h_low
    grad = grad + cost_grad(y)
    return diag, lower, grad, residual


def _build(config: CollocationConfig) -> base.Planner:
    num_particles = config.num_particles
    weights = dict(penalty=config.penalty, action_reg=config.action_reg)
    particle_loss = functools.partial(lifted_loss, **weights)

    def init(problem: Problem, params, init_state, goal, key, init_actions=None, warm=None) -> CollocationState:
        dtype = init_state.dtype
        scale_key, noise_key = jax.random.split(key)
        if config.state_scale is None:
            scale = base.estimate_state_scale(problem, params, init_state, goal, scale_key)
        else:
            scale = jnp.asarray(config.state_scale, dtype)
        unit_actions = base.initial_unit_actions(problem, init_actions, dtype)
        horizon = problem.horizon
        if warm is not None:
            z = warm.virtual_states * (warm.state_scale / scale)
            u = warm.unit_actions
            if init_actions is not None:  # the driver's best plan (shifted) leads
                u = u.at[0].set(unit_actions)
        else:
            goal_is_state = hasattr(goal, "shape") and tuple(goal.shape) == tuple(init_state.shape)
            if goal_is_state:  # proposals in state space: the straight line to the goal
                frac = (jnp.arange(1, horizon + 1, dtype=dtype) / horizon)[:, None]
                states = init_state + frac * (goal.astype(dtype) - init_state)
            else:
                states = rollout(problem, params, init_state, base.unit_to_box(problem, unit_actions))[1:]
            z = jnp.broadcast_to(states / scale, (num_particles, horizon) + init_state.shape)
            if config.init_noise > 0:
                detours = base.smooth_detours(noise_key, num_particles, horizon, horizon, init_state.shape[0], dtype)
                z = z + config.init_noise * detours
            u = jnp.broadcast_to(unit_actions, (num_particles,) + unit_actions.shape)
        shift = jnp.zeros_like(z)
        losses = jax.vmap(lambda z, u: particle_loss(problem, params, init_state, goal, scale, z, u, shift[0])[0])
        loss = losses(z, u)
        # A particle proposed where the model gives NaN/Inf could never take a step (every
        # Jacobian there is non-finite): it restarts on the rollout of its actions instead.
        plans = base.unit_to_box(problem, u)
        rolled = jax.vmap(rollout, in_axes=(None, None, None, 0))(problem, params, init_state, plans)[:, 1:] / scale
        stuck = ~jnp.isfinite(loss) & jnp.all(jnp.isfinite(rolled), axis=(1, 2))
        z = jnp.where(stuck[:, None, None], rolled, z)
        loss = jnp.where(stuck, losses(z, u), loss)
        loss = jnp.where(jnp.isfinite(loss), loss, jnp.inf)
        return CollocationState(z, u, jnp.full((num_particles,), config.damping, dtype), loss, shift, scale)

    def step(problem: Problem, params, init_state, goal, state: CollocationState, key, iteration, num_iterations):
        del key
        scale = state.state_scale
        action_dim = problem.action_dim

        def one(z, u, damping, loss, shift):
            diag, lower, grad, residual = gauss_newton_system(
                problem, params, init_state, goal, scale, z, u, shift, **weights
            )
            nb = diag.shape[-1]
            damped = diag + damping * jnp.eye(nb, dtype=diag.dtype)
            dy = -block_tridiagonal_solve(damped, lower, grad)
            new_u = jnp.clip(u + dy[:, :action_dim], -1.0, 1.0)
            new_z = z + dy[:, action_dim:]
            new_loss, consistency = particle_loss(problem, params, init_state, goal, scale, new_z, new_u, shift)
            finite = jnp.isfinite(new_loss) & jnp.all(jnp.isfinite(dy))
            accept = finite & (new_loss < loss)
            z = jnp.where(accept, new_z, z)
            u = jnp.where(accept, new_u, u)
            damping = jnp.clip(jnp.where(accept, damping * _SHRINK, damping * _GROW), _MIN_DAMPING, _MAX_DAMPING)
            consistency = jnp.where(accept, consistency, jnp.sum(residual**2))
            return z, u, damping, jnp.where(accept, new_loss, loss), consistency, accept, ~finite

        z, u, damping, loss, consistency, accepted, bad = jax.vmap(one)(
            state.virtual_states, state.unit_actions, state.damping, state.loss, state.multipliers
        )
        shift = state.multipliers
        if config.multiplier_every:
            # Augmented Lagrangian: every `multiplier_every` steps the multipliers take the
            # residuals left over, so the penalty's compromise between consistency and cost
            # moves towards a trajectory the model can follow (the loss is re-evaluated).
            def update(shift):
                def one_update(z, u, m):
                    states = scale * z
                    inputs = jnp.concatenate([init_state[None], states[:-1]], axis=0)
                    actions = base.unit_to_box(problem, u)
                    predictions = jax.vmap(problem.dynamics, in_axes=(None, 0, 0))(params, inputs, actions)
                    m = m + (predictions - states) / scale
                    m = jnp.where(jnp.all(jnp.isfinite(m)), m, jnp.zeros_like(m))
                    return m, particle_loss(problem, params, init_state, goal, scale, z, u, m)[0]

                return jax.vmap(one_update)(z, u, shift)

            started = iteration >= int(config.multiplier_start * num_iterations)
            is_update = started & (jnp.mod(iteration + 1, config.multiplier_every) == 0)
            shift, loss = jax.lax.cond(is_update, update, lambda m: (m, loss), shift)
            loss = jnp.where(jnp.isfinite(loss), loss, jnp.inf)
        state = state._replace(virtual_states=z, unit_actions=u, damping=damping, loss=loss, multipliers=shift)

        def evaluate(u):
            plans = base.unit_to_box(problem, u)
            return base.best_of(plans, base.batched_rollout_cost(problem, params, init_state, goal, plans))

        def skip(u):
            return base.Candidate(base.unit_to_box(problem, u[0]), jnp.asarray(jnp.inf, loss.dtype))

        is_eval = (jnp.mod(iteration + 1, config.eval_every) == 0) | (iteration == num_iterations - 1)
        candidate = jax.lax.cond(is_eval, evaluate, skip, u)
        info = CollocationInfo(
            loss=jnp.mean(jnp.where(jnp.isfinite(loss), loss, 0.0)),
            consistency=jnp.mean(consistency),
            damping=jnp.mean(damping),
            accepted=jnp.mean(accepted.astype(loss.dtype)),
            nonfinite=jnp.any(bad),
        )
        return state, candidate, info

    def shift(problem: Problem, state: CollocationState, k: int) -> CollocationWarm:
        z = state.virtual_states
        z = base.shift_rows(z, k, problem.horizon, z[:, -1:], axis=1)  # the multipliers restart at 0
        u = base.shift_rows(state.unit_actions, k, problem.horizon, jnp.zeros((), state.unit_actions.dtype), axis=1)
        return CollocationWarm(virtual_states=z, unit_actions=u, state_scale=state.state_scale)

    def iteration_cost(horizon: int, iterations: int) -> base.IterationCost:
        # The depth (the GPU proxy): the batched Jacobian call (a forward and a backward
        # pass; forward mode needs only one), the trial call, a rollout of H at every
        # evaluation and one call at every multiplier update. Model calls: see JACOBIAN_CALLS.
        evaluations = -(-iterations // config.eval_every)
        start = int(config.multiplier_start * iterations)
        every = config.multiplier_every
        updates = sum((i + 1) % every == 0 for i in range(start, iterations)) if every else 0
        per_step = num_particles * horizon * (JACOBIAN_CALLS + 1.0)
        extra = num_particles * horizon * (evaluations + updates) / iterations
        return base.IterationCost(per_step + extra, 3.0 + (horizon * evaluations + updates) / iterations)

    return base.Planner(
        init=init, step=step, iterations=config.iterations, name="collocation", config=config, shift=shift,
        iteration_cost=iteration_cost, differentiates=True,
    )  # fmt: skip


_build_cached = base.cached_factory(_build)


def collocation(
    *,
    iterations: int = 45,
    num_particles: int = 16,
    penalty: float = 100.0,
    damping: float = 1.0,
    init_noise: float = 6.0,
    action_reg: float = 1e-3,
    eval_every: int = 10,
    multiplier_every: int = 0,
    multiplier_start: float = 0.0,
    state_scale: Optional[float] = None,
) -> base.Planner:
    """Builds the lifted Levenberg-Marquardt collocation planner (module docstring).

    Args:
      iterations: Levenberg-Marquardt steps (each one batched Jacobian call, one block
        solve and one batched trial call).
      num_particles: independent lifted trajectories, side by side in the same calls.
      penalty: weight of the consistency residuals (state-scale units).
      damping: initial Levenberg-Marquardt damping.
      init_noise: amplitude of particles 1..P-1's smooth detours in state space at the
        start (state-scale units).
      action_reg: weight of ``||a||^2`` in box coordinates (keeps the system regular where
        an action has no effect).
      eval_every: iterations between true rollouts of every particle's plan (the last
        iteration always evaluates).
      multiplier_every: iterations between augmented-Lagrangian multiplier updates
        (``0``: a pure penalty, no multipliers).
      multiplier_start: the fraction of the budget after which the multipliers update
        (before it, the penalty alone pulls the particles towards the goal).
      state_scale: fixed state scale; ``None`` estimates it per problem.

    Returns:
      A :class:`~grasp_jax.planners.base.Planner`; ``shift`` keeps the particles' virtual
      states for warm starts.
    """
    config = CollocationConfig(**{k: v for k, v in locals().items()})
    base.check_int("iterations", config.iterations)
    base.check_int("num_particles", config.num_particles)
    base.check_int("eval_every", config.eval_every)
    base.check_int("multiplier_every", config.multiplier_every, minimum=0)
    base.check_float("penalty", config.penalty, strict=True)
    base.check_float("damping", config.damping, strict=True)
    for name in ("init_noise", "action_reg"):
        base.check_float(name, getattr(config, name))
    base.check_float("multiplier_start", config.multiplier_start)
    if config.multiplier_start > 1:
        raise ValueError(
            f"multiplier_start must be in [0, 1] (a fraction of the budget); got {config.multiplier_start}."
        )
    if config.state_scale is not None:
        base.check_float("state_scale", config.state_scale, strict=True)
    return _build_cached(config)
