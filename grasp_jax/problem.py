"""The planning problem: world model, horizon, action box, cost; rollout and costs.

Everything here is shared by all planners: one rollout (a ``lax.scan`` over time),
one trajectory cost, one set of input checks.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "Problem",
    "rollout",
    "trajectory_cost",
    "final_distance",
    "validate_inputs",
]

Dynamics = Callable[[Any, jax.Array, jax.Array], jax.Array]
CostFn = Callable[[jax.Array, jax.Array, Any], jax.Array]


def _as_bound(name: str, value, action_dim: int) -> tuple[float, ...]:
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        arr = np.full((action_dim,), float(arr))
    if arr.shape != (action_dim,):
        raise ValueError(
            f"{name} must be a scalar or have shape [action_dim]=({action_dim},); "
            f"got shape {arr.shape}."
        )
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite (planners sample inside the box); got {arr.tolist()}.")
    return tuple(float(x) for x in arr)


@dataclasses.dataclass(frozen=True)
class Problem:
    """A planning problem: reach a goal (or minimise a cost) through a world model.

    Hashable, so it can be a static argument of ``jax.jit``; two problems built from the
    same ``dynamics`` function and numbers are equal and share compiled programs.

    Attributes:
      dynamics: ``dynamics(params, state [S], action [A]) -> next_state [S]``; pure.
      horizon: ``H``, the number of actions planned (>= 1).
      action_dim: ``A``.
      action_low: scalar or ``[A]`` lower bound; stored as a tuple of floats.
      action_high: scalar or ``[A]`` upper bound; must be > ``action_low``.
      cost: optional ``cost(states [H+1, S], actions [H, A], goal) -> scalar``. ``None``
        means goal reaching: ``||states[-1] - goal||^2``.
    """

    dynamics: Dynamics
    horizon: int
    action_dim: int
    action_low: Any = -1.0
    action_high: Any = 1.0
    cost: Optional[CostFn] = None

    def __post_init__(self):
        if not callable(self.dynamics):
            raise TypeError(
                f"dynamics must be callable dynamics(params, state, action); got {type(self.dynamics).__name__}."
            )
        for name in ("horizon", "action_dim"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise TypeError(f"{name} must be an int; got {value!r} ({type(value).__name__}).")
            if value < 1:
                raise ValueError(f"{name} must be >= 1; got {value}.")
        object.__setattr__(self, "horizon", int(self.horizon))
        object.__setattr__(self, "action_dim", int(self.action_dim))
        low = _as_bound("action_low", self.action_low, self.action_dim)
        high = _as_bound("action_high", self.action_high, self.action_dim)
        bad = [i for i, (lo, hi) in enumerate(zip(low, high)) if not lo < hi]
        if bad:
            i = bad[0]
            raise ValueError(
                f"action_low must be < action_high in every dimension; dimension {i} has "
                f"action_low={low[i]} >= action_high={high[i]}."
            )
        object.__setattr__(self, "action_low", low)
        object.__setattr__(self, "action_high", high)
        if self.cost is not None and not callable(self.cost):
            raise TypeError(f"cost must be None or callable; got {type(self.cost).__name__}.")

    @property
    def low(self) -> jax.Array:
        """Lower action bound as an array ``[A]``."""
        return jnp.asarray(self.action_low, dtype=jnp.float32)

    @property
    def high(self) -> jax.Array:
        """Upper action bound as an array ``[A]``."""
        return jnp.asarray(self.action_high, dtype=jnp.float32)

    @property
    def action_center(self) -> jax.Array:
        return 0.5 * (self.low + self.high)

    @property
    def action_half_width(self) -> jax.Array:
        return 0.5 * (self.high - self.low)

    def clip(self, actions: jax.Array) -> jax.Array:
        """Projects actions ``[..., A]`` onto the box."""
        return jnp.clip(actions, self.low, self.high)

    def to_unit(self, actions: jax.Array) -> jax.Array:
        """Box -> ``[-1, 1]^A`` coordinates (planners optimise in these)."""
        return (actions - self.action_center) / self.action_half_width

    def from_unit(self, unit_actions: jax.Array) -> jax.Array:
        """``[-1, 1]^A`` coordinates -> box, clipped so the result is always inside."""
        return self.clip(self.action_center + self.action_half_width * unit_actions)


def rollout(problem: Problem, params, init_state: jax.Array, actions: jax.Array) -> jax.Array:
    """Rolls ``actions [H, A]`` through the world model from ``init_state [S]``.

    Returns:
      states ``[H+1, S]`` with ``states[0] == init_state``.
    """

    def step(state, action):
        next_state = problem.dynamics(params, state, action)
        return next_state, next_state

    _, states = jax.lax.scan(step, init_state, actions)
    return jnp.concatenate([init_state[None], states], axis=0)


def final_distance(states: jax.Array, goal: jax.Array) -> jax.Array:
    """Euclidean distance between the final state of ``states [H+1, S]`` and ``goal [S]``."""
    return jnp.sqrt(jnp.sum((states[-1] - goal) ** 2))


def trajectory_cost(problem: Problem, states: jax.Array, actions: jax.Array, goal) -> jax.Array:
    """The problem's cost of a trajectory (``states [H+1, S]``, ``actions [H, A]``).

    Non-finite costs are mapped to ``+inf`` so that ``argmin`` never picks them.
    """
    if problem.cost is None:
        cost = jnp.sum((states[-1] - goal) ** 2)
    else:
        cost = jnp.asarray(problem.cost(states, actions, goal))
    return jnp.where(jnp.isfinite(cost), cost, jnp.inf)


# --------------------------------------------------------------------------- checks


def _is_concrete(x) -> bool:
    return not isinstance(x, jax.core.Tracer)


def _check_float_array(name: str, x, shape: tuple[int, ...] | None, shape_desc: str):
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        try:
            x = np.asarray(x)
        except Exception as err:  # noqa: BLE001 - re-raised with a clear message
            raise TypeError(f"{name} must be an array; got {type(x).__name__}.") from err
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"{name} must have a floating dtype (e.g. float32); got dtype {x.dtype}.")
    if shape is not None and tuple(x.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {shape_desc}={tuple(shape)}; got shape {tuple(x.shape)}.")
    if _is_concrete(x) and not np.all(np.isfinite(np.asarray(x))):
        raise ValueError(f"{name} must be finite; it contains NaN or Inf.")
    return x


def check_key(key, name: str = "key", batch: int | None = None):
    """Checks ``key`` is a PRNG key (typed, or raw uint32 ``[2]``), optionally with a batch dim."""
    is_typed = hasattr(key, "dtype") and jnp.issubdtype(key.dtype, jax.dtypes.prng_key)
    shape = tuple(getattr(key, "shape", ()))
    ok = is_typed and shape == () or (not is_typed and hasattr(key, "dtype") and key.dtype == jnp.uint32 and shape == (2,))
    if not ok:
        raise TypeError(
            f"{name} must be a single PRNG key (jax.random.key(0) or jax.random.PRNGKey(0)); "
            f"got {type(key).__name__} with shape {shape} and dtype {getattr(key, 'dtype', None)}."
        )


def validate_inputs(problem: Problem, params, init_state, goal, init_actions=None):
    """Checks one problem instance before anything is traced. Raises ValueError/TypeError.

    Args:
      problem: the :class:`Problem`.
      params: world-model parameters (any pytree).
      init_state: ``[S]``.
      goal: ``[S]`` when ``problem.cost is None``, otherwise anything ``cost`` accepts.
      init_actions: optional ``[H, A]``.
    """
    if not isinstance(problem, Problem):
        raise TypeError(f"problem must be a grasp_jax.Problem; got {type(problem).__name__}.")
    init_state = _check_float_array("init_state", init_state, None, "[S]")
    if init_state.ndim != 1:
        raise ValueError(f"init_state must be a 1-D state vector [S]; got shape {tuple(init_state.shape)}.")
    (state_dim,) = init_state.shape
    if problem.cost is None:
        _check_float_array("goal", goal, (state_dim,), "init_state.shape [S]")
    horizon, action_dim = problem.horizon, problem.action_dim
    if init_actions is not None:
        _check_float_array("init_actions", init_actions, (horizon, action_dim), "[horizon, action_dim]")
    action = jax.ShapeDtypeStruct((action_dim,), init_state.dtype)
    try:
        out = jax.eval_shape(problem.dynamics, params, jax.ShapeDtypeStruct(init_state.shape, init_state.dtype), action)
    except Exception as err:
        raise TypeError(
            f"dynamics(params, state [{state_dim}], action [{action_dim}]) failed when traced with "
            f"those shapes: {type(err).__name__}: {err}"
        ) from err
    if not hasattr(out, "shape") or tuple(out.shape) != (state_dim,):
        got = tuple(out.shape) if hasattr(out, "shape") else type(out).__name__
        raise ValueError(
            f"dynamics must return next_state with the state's shape ({state_dim},); got {got}."
        )
    if not jnp.issubdtype(out.dtype, jnp.floating):
        raise TypeError(f"dynamics must return a floating next_state; got dtype {out.dtype}.")
    if out.dtype != init_state.dtype:
        # Caught here: inside the planners' scans it surfaces as a raw carry-type error.
        raise TypeError(
            f"dynamics must return next_state with the state's dtype {init_state.dtype} (init_state); "
            f"got dtype {out.dtype}. Cast the model's output, e.g. `.astype(state.dtype)`."
        )
    if problem.cost is not None:
        states = jax.ShapeDtypeStruct((horizon + 1, state_dim), init_state.dtype)
        actions = jax.ShapeDtypeStruct((horizon, action_dim), init_state.dtype)
        cost = jax.eval_shape(problem.cost, states, actions, goal)
        if not hasattr(cost, "shape") or tuple(cost.shape) != ():
            got = tuple(cost.shape) if hasattr(cost, "shape") else type(cost).__name__
            raise ValueError(f"cost(states, actions, goal) must return a scalar; got shape {got}.")
