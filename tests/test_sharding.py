"""plan_batch over several devices (4 fake CPU devices, in a subprocess: XLA_FLAGS must
be set before JAX starts)."""

import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.slow

SCRIPT = textwrap.dedent(
    """
    import jax, jax.numpy as jnp, numpy as np
    import grasp_jax as gj
    assert jax.device_count() == 4, jax.devices()
    problem = gj.Problem(lambda p, s, a: s + 0.25 * a, horizon=6, action_dim=2)
    rng = np.random.default_rng(0)
    s0 = jnp.asarray(rng.uniform(-0.2, 0.2, (6, 2)), jnp.float32)  # 6: not a multiple of 4
    goals = jnp.asarray(rng.uniform(-0.5, 0.5, (6, 2)), jnp.float32)
    for planner in (gj.cem(iterations=4, num_samples=16, num_elites=4), gj.grasp(iterations=20, sync_every=10, num_particles=2)):
        sharded = gj.plan_batch(planner, problem, None, s0, goals, jax.random.key(0))  # mesh="auto"
        single = gj.plan_batch(planner, problem, None, s0, goals, jax.random.key(0), mesh=None)
        chunked = gj.plan_batch(planner, problem, None, s0, goals, jax.random.key(0), chunk_size=4)
        if planner.name == "cem":  # sampling planners: the same plans
            np.testing.assert_allclose(sharded.actions, single.actions, rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(chunked.actions, single.actions, rtol=1e-5, atol=1e-5)
        # GRASP: reassociation differences are amplified by Adam (DESIGN.md): equal quality.
        np.testing.assert_allclose(sharded.cost, single.cost, atol=1e-3)
        np.testing.assert_allclose(chunked.cost, single.cost, atol=1e-3)
        assert sharded.actions.shape == (6, 6, 2)
    mesh = jax.sharding.Mesh(np.array(jax.devices()), ("items",))
    out = gj.plan_batch(gj.cem(iterations=2, num_samples=8, num_elites=2), problem, None, s0[:4], goals[:4], jax.random.key(0),
                        mesh=mesh, axis_name="items")
    print("OK", len(out.cost.sharding.device_set))
    """
)


def test_plan_batch_sharded_over_four_devices():
    # Added to the suite's XLA_FLAGS (conftest: the cheap optimisation level), not in their place.
    flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=4".strip()
    env = dict(os.environ, XLA_FLAGS=flags, JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "OK" in proc.stdout
