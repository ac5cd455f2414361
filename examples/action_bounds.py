"""Action bounds: per-dimension boxes, and what the planners do with them.

    python examples/action_bounds.py

``action_low`` / ``action_high`` are scalars or ``[A]`` arrays. Every planner returns
actions inside the box: GRASP and BPTT optimise an unconstrained variable mapped through
``tanh`` onto the box, CEM/MPPI/random shooting clip their samples. A goal the box cannot
reach within the horizon gives the closest reachable plan, not an out-of-box action.
"""

import jax
import jax.numpy as jnp
import numpy as np

import grasp_jax as gj


def main():
    # a cart whose throttle (dim 0) is in [0, 1] (forward only) and steering (dim 1) in [-0.3, 0.3]
    def dynamics(params, s, a):
        return s + jnp.array([0.1 * a[0], 0.1 * a[1]])

    low, high = np.array([0.0, -0.3]), np.array([1.0, 0.3])
    problem = gj.Problem(dynamics, horizon=20, action_dim=2, action_low=low, action_high=high)
    start = jnp.zeros(2)
    for goal in (jnp.array([1.0, 0.3]), jnp.array([-1.0, 2.0])):  # reachable; unreachable (behind, too far sideways)
        for name, planner in (("grasp", gj.grasp()), ("bptt", gj.bptt()), ("cem", gj.cem())):
            r = gj.plan(planner, problem, None, start, goal, jax.random.key(0))
            a = np.asarray(r.actions)
            inside = bool(np.all(a >= low - 1e-6) and np.all(a <= high + 1e-6))
            print(f"goal {np.asarray(goal)} {name:5s}: final state {np.round(np.asarray(r.states[-1]), 3)}, "
                  f"actions in box: {inside}, throttle range [{a[:, 0].min():.2f}, {a[:, 0].max():.2f}]")
            assert inside
    # bad bounds are caught before tracing, naming the argument:
    try:
        gj.Problem(dynamics, horizon=20, action_dim=2, action_low=high, action_high=low)
    except ValueError as e:
        print("ValueError:", e)


if __name__ == "__main__":
    main()
