"""Plan with an Equinox model (``pip install equinox``).

    python examples/equinox_model.py

``gj.Problem`` needs ``dynamics(params, state, action)`` to be hashable (it is a static
argument of the compiled planner), and the weights to be a pytree passed as ``params``.
``equinox.partition`` splits a model into exactly that: the arrays (``params``) and the
static rest, which a small hashable wrapper recombines.
"""

import dataclasses

import jax
import jax.numpy as jnp

import grasp_jax as gj

try:
    import equinox as eqx
except ImportError:  # pragma: no cover
    raise SystemExit("this example needs equinox: pip install equinox")


class Dynamics(eqx.Module):
    mlp: eqx.nn.MLP

    def __init__(self, key):
        self.mlp = eqx.nn.MLP(in_size=4, out_size=2, width_size=32, depth=2, key=key)

    def __call__(self, s, a):
        return s + 0.1 * a + 0.01 * self.mlp(jnp.concatenate([s, a]))


@dataclasses.dataclass(frozen=True)
class EqxDynamics:
    """Hashable ``dynamics(params, s, a)``: ``params`` are the model's arrays."""

    static: object

    def __hash__(self):
        return id(self.static)

    def __eq__(self, other):
        return isinstance(other, EqxDynamics) and other.static is self.static

    def __call__(self, params, s, a):
        return eqx.combine(params, self.static)(s, a)


def main():
    model = Dynamics(jax.random.key(0))
    params, static = eqx.partition(model, eqx.is_array)
    problem = gj.Problem(EqxDynamics(static), horizon=30, action_dim=2, action_low=-1.0, action_high=1.0)
    start, goal = jnp.zeros(2), jnp.array([1.5, -1.0])
    result = gj.plan(gj.grasp(), problem, params, start, goal, jax.random.key(1))
    print("final state", result.states[-1], "goal", goal, "cost", float(result.cost))
    assert float(jnp.linalg.norm(result.states[-1] - goal)) < 0.1


if __name__ == "__main__":
    main()
