"""Warm starting: re-plan from the shifted previous plan (what MPC does every step).

    python examples/warm_start.py

After executing ``k`` planned actions, :func:`grasp_jax.mpc.warm_start` shifts the plan
(and, for GRASP, the best particle's virtual states) by ``k`` steps; passing them as
``init_actions`` / ``init_states`` lets a small budget finish what a cold plan needs a large
one for. Compared here on the shipped Wall model: cold vs warm re-plans at the same small budget.
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
    first = gj.plan(gj.grasp(), problem, wm.params, z0, zg, jax.random.key(0))
    k = 5  # execute 5 steps, then re-plan
    obs = start
    for a in wm.env_actions(first.actions)[:k]:
        obs = env.step(a)
    small = gj.grasp(iterations=30, sync_every=15)
    cold = gj.plan(small, problem, wm.params, wm.encode(obs), zg, jax.random.key(1))
    init_actions, init_states = gj.mpc.warm_start(small, problem, first, k, zg)
    warm = gj.plan(small, problem, wm.params, wm.encode(obs), zg, jax.random.key(1),
                   init_actions=init_actions, init_states=init_states)
    for name, r in (("cold, 30 iterations", cold), ("warm, 30 iterations", warm)):
        final = obs
        env.set_state(obs)
        for a in wm.env_actions(r.actions):
            final = env.step(a)
        print(f"{name}: model cost {float(r.cost):.4f}, real final distance {np.linalg.norm(final - goal):.2f}")


if __name__ == "__main__":
    main()
