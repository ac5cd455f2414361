"""Custom cost: reach a goal while avoiding circular obstacles (point mass, exact model).

    python examples/obstacle_cost.py

``gj.Problem(..., cost=fn)`` takes any ``cost(states, actions, goal) -> scalar``, where
``states`` is the rollout ``[H+1, S]`` (including the start) and ``actions`` is ``[H, A]``.
Here: terminal distance + a smooth penalty inside each obstacle + a small effort term.
The plan is checked against the obstacles afterwards.
"""

import jax
import jax.numpy as jnp
import numpy as np

import grasp_jax as gj

OBSTACLES = jnp.array([[0.0, 0.0], [0.5, 0.7]])  # centres
RADIUS = 0.35


def dynamics(params, s, a):
    return s + 0.1 * a  # a point that moves 0.1 * a per step


def cost(states, actions, goal):
    d = jnp.linalg.norm(states[:, None, :] - OBSTACLES[None], axis=-1)  # [H+1, obstacles]
    inside = jnp.maximum(RADIUS + 0.05 - d, 0.0)  # 0.05 safety margin
    return jnp.sum((states[-1] - goal) ** 2) + 100.0 * jnp.sum(inside**2) + 1e-3 * jnp.sum(actions**2)


def main():
    problem = gj.Problem(dynamics, horizon=40, action_dim=2, action_low=-1.0, action_high=1.0, cost=cost)
    start, goal = jnp.array([-1.0, -0.9]), jnp.array([1.0, 1.0])  # the straight line crosses an obstacle
    for name, planner in (("grasp", gj.grasp()), ("cem", gj.cem())):
        result = jax.jit(gj.plan, static_argnums=(0, 1))(planner, problem, None, start, goal, jax.random.key(0))
        d = np.linalg.norm(np.asarray(result.states)[:, None] - np.asarray(OBSTACLES)[None], axis=-1)
        print(f"{name}: final distance {float(jnp.linalg.norm(result.states[-1] - goal)):.3f}, "
              f"closest approach to an obstacle centre {d.min():.3f} (radius {RADIUS})")
        assert d.min() > RADIUS, "the plan crosses an obstacle"


if __name__ == "__main__":
    main()
