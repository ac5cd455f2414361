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

__all__ = ["bptt", "BpttConfig", "BpttState", "BpttInfo"]


@dataclasses.dataclass(frozen=True)
class BpttConfig:
    iterations: int
    learning_rate: float
    optimizer: Optional[optax.GradientTransformation]


class BpttState(NamedTuple):
    """BPTT iterate: ``unit_actions [H, A]`` in box coordinates and the optax state."""

    unit_actions: jax.Array
    opt_state: Any
    init_state: jax.Array
    goal: Any
    state_scale: jax.Array
    actions: jax.Array
    best_actions: jax.Array
    best_cost: jax.Array


class BpttInfo(NamedTuple):
    cost: jax.Array
    grad_norm: jax.Array
    best_cost: jax.Array
    nonfinite: jax.Array


def _build(config: BpttConfig) -> base.Planner:
    opt = config.optimizer or optax.adam(config.learning_rate)
    grad_fn = jax.value_and_grad(base.shooting_loss, argnums=5)

    def init(problem: Problem, params, init_state, goal, key, init_actions=None, init_states=None) -> BpttState:
        del init_states
        u = base.initial_unit_actions(problem, init_actions, init_state.dtype)
        actions = base.unit_to_box(problem, u)
        return BpttState(
            unit_actions=u,
            opt_state=opt.init(u),
            init_state=init_state,
            goal=goal,
            state_scale=base.estimate_state_scale(problem, params, init_state, goal, key),
            actions=actions,
            best_actions=actions,
            best_cost=jnp.asarray(jnp.inf, init_state.dtype),
        )

    def step(problem: Problem, params, state: BpttState, key, iteration):
        del key, iteration
        scale2 = jnp.square(state.state_scale)
        loss, grad = grad_fn(problem, params, state.init_state, state.goal, state.state_scale, state.unit_actions)
        finite = jnp.isfinite(loss) & base.tree_all_finite(grad)
        cost = jnp.where(finite, loss * scale2, jnp.inf)
        # loss is the cost of the *current* iterate, so tracking the best costs nothing.
        best_actions, best_cost = base.update_best(state.best_actions, state.best_cost, state.actions, cost)
        updates, opt_state = opt.update(grad, state.opt_state, state.unit_actions)
        u = jnp.clip(optax.apply_updates(state.unit_actions, updates), -1.0, 1.0)
        u, opt_state = base.tree_where(finite, (u, opt_state), (state.unit_actions, state.opt_state))
        state = state._replace(
            unit_actions=u,
            opt_state=opt_state,
            actions=base.unit_to_box(problem, u),
            best_actions=best_actions,
            best_cost=best_cost,
        )
        info = BpttInfo(cost=cost, grad_norm=optax.tree.norm(grad), best_cost=best_cost, nonfinite=~finite)
        return state, info

    return base.Planner(init=init, step=step, iterations=config.iterations, name="bptt", config=config)


_build_cached = base.cached_factory(_build)


def bptt(
    *, iterations: int = 300, learning_rate: float = 0.05, optimizer: Optional[optax.GradientTransformation] = None
) -> base.Planner:
    """Builds the BPTT planner (gradient descent through the rollout).

    Args:
      iterations: gradient steps.
      learning_rate: Adam learning rate in units of the action box half-width.
      optimizer: optax transformation replacing ``optax.adam(learning_rate)``.
    """
    base.check_int("iterations", iterations)
    base.check_float("learning_rate", learning_rate, strict=True)
    return _build_cached(BpttConfig(iterations=iterations, learning_rate=learning_rate, optimizer=optimizer))
