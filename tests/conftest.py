"""Shared small problems. Tests keep horizons, budgets and models tiny (CI: 2 CPUs)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import grasp_jax as gj


def integrator(params, state, action):
    """``s' = s + dt * a`` (params = dt)."""
    return state + params * action


INTEGRATOR = gj.Problem(integrator, horizon=8, action_dim=2, action_low=(-1.0, -0.5), action_high=(0.5, 1.0))

SMALL_PLANNERS = {
    "grasp": gj.grasp(iterations=40, sync_every=20, sync_steps=5, num_particles=4),
    "grasp_cem_sync": gj.grasp(iterations=40, sync_every=20, sync="cem", cem_sync_samples=16, num_particles=2),
    "bptt": gj.bptt(iterations=40),
    "random_shooting": gj.random_shooting(iterations=4, num_samples=32),
    "cem": gj.cem(iterations=8, num_samples=32, num_elites=8),
    "mppi": gj.mppi(iterations=8, num_samples=32),
}


@pytest.fixture
def integrator_case():
    s0 = jnp.array([0.0, 0.0], jnp.float32)
    goal = jnp.array([0.5, -0.3], jnp.float32)
    return INTEGRATOR, jnp.float32(0.25), s0, goal


def batch_of_cases(n=3):
    rng = np.random.default_rng(0)
    s0 = jnp.asarray(rng.uniform(-0.2, 0.2, size=(n, 2)), jnp.float32)
    goals = jnp.asarray(rng.uniform(-0.5, 0.5, size=(n, 2)), jnp.float32)
    return s0, goals


def key(seed=0):
    return jax.random.key(seed)
