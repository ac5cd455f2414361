"""Warm starting: re-plan from the shifted previous plan (what MPC does every step).

    python examples/warm_start.py

After executing ``k`` planned actions, :func:`grasp_jax.mpc.warm_start` shifts the plan
and the planner's own iterate (for GRASP: every particle's virtual states) by ``k`` steps;
passing them as ``init_actions`` / ``warm`` lets a small budget (``iterations=30``) finish
what a cold plan needs a large one for. Compared here on the shipped Wall model: cold vs
warm re-plans at the same small budget.
"""

import jax
import numpy as np

import grasp_jax as gj


def main():
    env = gj.envs.make("wall")
    wm = gj.models.pretrained("wall")
    problem = wm.problem(horizon=40)
    start, goal = env.sample_task(seed=1)
    z0, zg = wm.encode(start), wm.encode(goal)
    planner = gj.grasp()
    first = gj.plan(planner, problem, wm.params, z0, zg, jax.random.key(0))
    k = 5  # execute 5 steps, then re-plan
    obs = start
    for a in wm.env_actions(first.actions)[:k]:
        obs = env.step(a)
    cold = gj.plan(planner, problem, wm.params, wm.encode(obs), zg, jax.random.key(1), iterations=30)
    init_actions, warm_state = gj.mpc.warm_start(planner, problem, first, k)
    warm = gj.plan(planner, problem, wm.params, wm.encode(obs), zg, jax.random.key(1), init_actions,
                   warm=warm_state, iterations=30)
    for name, r in (("cold, 30 iterations", cold), ("warm, 30 iterations", warm)):
        final = obs
        env.set_state(obs)
        for a in wm.env_actions(r.actions):
            final = env.step(a)
        print(f"{name}: model cost {float(r.cost):.4f}, real final distance {np.linalg.norm(final - goal):.2f}")


if __name__ == "__main__":
    main()
