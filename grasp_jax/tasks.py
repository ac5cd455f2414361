"""Built-in analytic planning tasks with known structure (tests, benchmarks, demos).

* :func:`linear_task`: ``s' = A s + B a`` with spectral radius ``rho`` (``> 1`` is
  unstable: the shooting gradient is a product of ``H`` Jacobians of norm ``~rho``).
  Goals are rollouts of random in-box actions, so they are reachable.
* :func:`cup_task`: a 2-D point that must leave a U-shaped "cup" through its opening,
  which faces *away* from the goal: the straight line to the goal is blocked, so a
  greedy planner gets stuck against the cup's bottom. Walls are smooth (softplus push
  out of thick capsules), so every planner sees finite gradients.

Each task is a :class:`Task`: ``problem(horizon)``, ``params``, ``sample(seed, horizon)``
returning a start/goal pair, and ``success(states, goal)`` with a documented threshold.
"""


import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from grasp_jax.problem import Problem

__all__ = ["Task", "linear_task", "linear_dynamics", "cup_task", "cup_dynamics", "CUP_WALLS"]


class Task(NamedTuple):
    """A planning task with a ground-truth world model.

    Attributes:
      name: short name.
      problem: ``problem(horizon) -> Problem``.
      params: world-model parameters.
      sample: ``sample(seed, horizon) -> (init_state [S], goal [S])`` (numpy, float32).
      success: ``success(states [..., H+1, S], goal [..., S]) -> bool [...]``.
      threshold: the success threshold in the task's units (see each task).
    """

    name: str
    problem: Callable[[int], Problem]
    params: Any
    sample: Callable[[int, int], tuple[np.ndarray, np.ndarray]]
    success: Callable[[jax.Array, jax.Array], jax.Array]
    threshold: float


# ----------------------------------------------------------------------- linear


def linear_dynamics(params, state, action):
    """``A @ state + B @ action`` with ``params = {"A": [S, S], "B": [S, A]}``."""
    return params["A"] @ state + params["B"] @ action


def _linear_params(state_dim: int, action_dim: int, rho: float, seed: int):
    rng = np.random.default_rng(seed)
    blocks = []
    for i in range(state_dim // 2):
        theta = 0.15 + 0.35 * i / max(state_dim // 2 - 1, 1)
        c, s = np.cos(theta), np.sin(theta)
        blocks.append(rho * np.array([[c, -s], [s, c]]))
    a = np.zeros((state_dim, state_dim))
    for i, blk in enumerate(blocks):
        a[2 * i : 2 * i + 2, 2 * i : 2 * i + 2] = blk
    if state_dim % 2:
        a[-1, -1] = rho
    q, _ = np.linalg.qr(rng.normal(size=(state_dim, state_dim)))
    a = q @ a @ q.T  # same spectrum, non-normal-looking coordinates
    b = rng.normal(size=(state_dim, action_dim)) / np.sqrt(action_dim)
    return {"A": jnp.asarray(a, jnp.float32), "B": jnp.asarray(b, jnp.float32)}


def linear_task(state_dim: int = 4, action_dim: int = 2, rho: float = 1.03, seed: int = 0,
                threshold: float = 0.05) -> Task:
    """Linear dynamics with spectral radius ``rho``; actions in ``[-1, 1]``.

    Goals are the end states of rollouts of random actions in ``[-0.5, 0.5]`` from a
    random start, so an exact solution exists. Success: ``||s_H - g|| <= threshold *
    max(||g - s_0||, 1)`` (relative: goal distances grow like ``rho^H``).
    """
    params = _linear_params(state_dim, action_dim, rho, seed)

    @functools.lru_cache(maxsize=None)
    def problem(horizon: int) -> Problem:
        return Problem(linear_dynamics, horizon=horizon, action_dim=action_dim, action_low=-1.0, action_high=1.0)

    a_np, b_np = np.asarray(params["A"], np.float64), np.asarray(params["B"], np.float64)

    def sample(seed: int, horizon: int):
        rng = np.random.default_rng(seed)
        s0 = rng.normal(size=state_dim)
        s = s0.copy()
        for a in rng.uniform(-0.5, 0.5, size=(horizon, action_dim)):
            s = a_np @ s + b_np @ a
        return s0.astype(np.float32), s.astype(np.float32)

    def success(states, goal):
        start = states[..., 0, :]
        err = jnp.linalg.norm(states[..., -1, :] - goal, axis=-1)
        return err <= threshold * jnp.maximum(jnp.linalg.norm(goal - start, axis=-1), 1.0)

    return Task(f"linear(rho={rho})", problem, params, sample, success, threshold)


# -------------------------------------------------------------------------- cup

# Capsule walls (segment endpoints); radius CUP_RADIUS. The cup opens towards -x; the
# goal region lies at +x, beyond the bottom wall.
CUP_WALLS = np.array(
    [
        [[1.0, -1.0], [1.0, 1.0]],  # bottom of the cup, between start and goal
        [[-1.0, 1.0], [1.0, 1.0]],  # upper side
        [[-1.0, -1.0], [1.0, -1.0]],  # lower side
    ],
    np.float32,
)
CUP_RADIUS = 0.3
CUP_STEP = 0.2  # max displacement per axis per step (< CUP_RADIUS: no tunnelling)
_SOFTNESS = 0.02


def _segment_push(point, segment):
    p0, p1 = segment[0], segment[1]
    d = p1 - p0
    t = jnp.clip(jnp.dot(point - p0, d) / jnp.dot(d, d), 0.0, 1.0)
    closest = p0 + t * d
    diff = point - closest
    dist = jnp.sqrt(jnp.sum(diff**2) + 1e-12)
    normal = diff / dist
    # Smooth version of relu(radius - dist): pushes the point back to the wall surface.
    depth = _SOFTNESS * jax.nn.softplus((CUP_RADIUS - dist) / _SOFTNESS)
    return point + normal * depth


def cup_dynamics(params, state, action):
    """Point mass without inertia: ``s' = push_out(s + CUP_STEP * a)``; ``params`` unused."""
    del params
    point = state + CUP_STEP * action
    for segment in CUP_WALLS:  # 3 walls: a fixed, tiny unrolled loop, not over time
        point = _segment_push(point, jnp.asarray(segment))
    return point


def cup_task(threshold: float = 0.25) -> Task:
    """The non-greedy cup. Start near the cup's centre, goal beyond its bottom wall.

    The shortest feasible path leaves through the opening (at ``x = -1``), goes round the
    outside and back (length ~7.5, i.e. >= ~38 steps at ``CUP_STEP``). Success:
    ``||s_H - g|| <= threshold``.
    """

    @functools.lru_cache(maxsize=None)
    def problem(horizon: int) -> Problem:
        return Problem(cup_dynamics, horizon=horizon, action_dim=2, action_low=-1.0, action_high=1.0)

    def sample(seed: int, horizon: int):
        del horizon
        rng = np.random.default_rng(seed)
        s0 = rng.uniform([-0.3, -0.3], [0.3, 0.3])
        goal = rng.uniform([2.0, -0.5], [2.6, 0.5])
        return s0.astype(np.float32), goal.astype(np.float32)

    def success(states, goal):
        return jnp.linalg.norm(states[..., -1, :] - goal, axis=-1) <= threshold

    return Task("cup", problem, None, sample, success, threshold)
