"""BPTT: gradient descent on the actions through the ``lax.scan`` rollout.

The classic gradient-based planner ("GD" in the GRASP and DINO-WM papers): an optax
optimiser on the actions (in ``[-1, 1]`` box coordinates, projected back onto the box
after each step) against the true shooting loss ``cost(rollout(s_0, a))``. Its gradient
is a product of ``H`` state Jacobians, which is what GRASP avoids.
"""


import dataclasses
from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax

from grasp_jax.planners import base
from grasp_jax.problem import Problem

__all__ = ["bptt", "BpttConfig", "BpttState", "BpttWarm", "BpttInfo"]


@dataclasses.dataclass(frozen=True)
class BpttConfig:
    iterations: int
    learning_rate: float
    optimizer: Optional[optax.GradientTransformation]


class BpttState(NamedTuple):
    """BPTT iterate: ``unit_actions [H, A]`` (box coordinates), the optax state, and the
    problem's state scale (the loss is divided by its square; fixed at ``init``)."""

    unit_actions: jax.Array
    opt_state: Any
    state_scale: jax.Array


class BpttWarm(NamedTuple):
    """BPTT's warm start: the shifted plan, the optimiser state shifted with it, and the
    loss's state scale (kept, so the moments stay in the units they were built in)."""

    unit_actions: jax.Array
    opt_state: Any
    state_scale: jax.Array


class BpttInfo(NamedTuple):
    cost: jax.Array
    grad_norm: jax.Array
    nonfinite: jax.Array


def _build(config: BpttConfig) -> base.Planner:
    # A non-finite gradient leaves the iterate and the moments as they were.
    opt = optax.apply_if_finite(config.optimizer or optax.adam(config.learning_rate), max_consecutive_errors=2**30)
    grad_fn = jax.value_and_grad(base.shooting_loss, argnums=5)

    def init(problem: Problem, params, init_state, goal, key, init_actions=None, warm=None) -> BpttState:
        if warm is None:
            u = base.initial_unit_actions(problem, init_actions, init_state.dtype)
            scale = base.estimate_state_scale(problem, params, init_state, goal, key)
            return BpttState(unit_actions=u, opt_state=opt.init(u), state_scale=scale)
        # Continue the optimiser's memory (Adam's moments): a restarted Adam takes full-size
        # steps even from a near-optimal plan and cannot converge.
        u = warm.unit_actions if init_actions is None else base.initial_unit_actions(problem, init_actions, init_state.dtype)
        return BpttState(unit_actions=u, opt_state=warm.opt_state, state_scale=warm.state_scale)

    def shift(problem: Problem, state: BpttState, k: int) -> BpttWarm:
        u = state.unit_actions

        def move(x):  # per-action leaves (the plan, Adam's moments) move with the plan
            return base.shift_rows(x, k, problem.horizon, jnp.zeros((), x.dtype)) if x.shape == u.shape else x

        return BpttWarm(move(u), jax.tree_util.tree_map(move, state.opt_state), state.state_scale)

    def step(problem: Problem, params, init_state, goal, state: BpttState, key, iteration, num_iterations):
        del key, iteration, num_iterations
        loss, grad = grad_fn(problem, params, init_state, goal, state.state_scale, state.unit_actions)
        finite = jnp.isfinite(loss) & base.tree_all_finite(grad)
        # The loss is the cost of the *current* iterate: the candidate costs nothing extra.
        candidate = base.Candidate(
            base.unit_to_box(problem, state.unit_actions), jnp.where(finite, loss * jnp.square(state.state_scale), jnp.inf)
        )
        updates, opt_state = opt.update(grad, state.opt_state, state.unit_actions)
        u = optax.projections.projection_box(optax.apply_updates(state.unit_actions, updates), -1.0, 1.0)
        info = BpttInfo(cost=candidate.cost, grad_norm=optax.tree.norm(grad), nonfinite=~finite)
        return state._replace(unit_actions=u, opt_state=opt_state), candidate, info

    def iteration_cost(horizon: int, iterations: int) -> base.IterationCost:
        del iterations
        return base.IterationCost(model_calls=3.0 * horizon, depth=2.0 * horizon)

    return base.Planner(init=init, step=step, iterations=config.iterations, name="bptt", config=config,
                        shift=shift, iteration_cost=iteration_cost, differentiates=True)


_build_cached = base.cached_factory(_build)


def bptt(
    *, iterations: int = 300, learning_rate: float = 0.05, optimizer: Optional[optax.GradientTransformation] = None
) -> base.Planner:
    """Builds the BPTT planner (gradient descent through the rollout).

    Args:
      iterations: gradient steps.
      learning_rate: Adam learning rate in units of the action box half-width.
      optimizer: optax transformation replacing ``optax.adam(learning_rate)`` (e.g. with a
        schedule).
    """
    base.check_int("iterations", iterations)
    base.check_float("learning_rate", learning_rate, strict=True)
    if optimizer is not None and not isinstance(optimizer, optax.GradientTransformation):
        raise TypeError(f"optimizer must be None or an optax.GradientTransformation; got {type(optimizer).__name__}.")
    return _build_cached(BpttConfig(iterations=iterations, learning_rate=learning_rate, optimizer=optimizer))
