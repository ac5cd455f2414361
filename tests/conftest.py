"""Shared small problems. Tests keep horizons, budgets and models tiny (CI: 2 CPUs)."""

import contextlib
import os

# The suite is dominated by XLA compiling many small programs: the backend's cheapest
# optimisation level halves that. Results must not depend on it (nothing may depend on
# float rounding), and subprocess tests (examples, notebooks) inherit it.
os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true")
# One XLA compilation cache for the whole run, fresh each run (so CI's cold start is what is
# measured): the two xdist workers and the subprocess tests inherit it from the controller,
# which imports this file first, so a program already compiled in any of them (equal HLO,
# equal flags) is read back instead of recompiled. A user's programs do not see it.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    import atexit
    import shutil
    import tempfile

    os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="grasp-jax-test-xla-cache-")
    atexit.register(shutil.rmtree, os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import grasp_jax as gj


# The longest tests (``pytest --durations``, 2 CPU cores) run first: with two xdist workers
# taking tests in collection order, a long test that starts last leaves one worker idle to
# the end. Order only; every test stays independent of it.
LONG_FIRST = (
    "test_readme.py::test_every_readme_python_block_runs_in_order",  # ~220 s
    "test_notebooks.py::test_mjx_example_plans_a_swing_up_that_works_in_mujoco",  # ~77 s
    "test_benchmarks.py::test_gpu_script_and_anytime_curves_at_tiny_size",
    "test_benchmarks.py::test_sweep_quick_smoke_with_mpc",
    "test_notebooks.py::test_example_runs[warm_start.py]",
    "test_notebooks.py::test_notebook_executes[your_world_model.ipynb]",
    "test_notebooks.py::test_notebook_executes[quickstart.ipynb]",
)


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONG_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.rsplit("/", 1)[-1], len(rank)))  # stable: the rest keep their order


def integrator(params, state, action):
    """``s' = s + dt * a`` (params = dt)."""
    return state + params * action


INTEGRATOR = gj.Problem(integrator, horizon=8, action_dim=2, action_low=(-1.0, -0.5), action_high=(0.5, 1.0))

SMALL_PLANNERS = {
    "grasp": gj.grasp(iterations=40, sync_every=20, sync=gj.bptt(iterations=5, learning_rate=0.1), num_particles=4),
    "grasp_cem_sync": gj.grasp(
        iterations=40, sync_every=20, sync=gj.cem(iterations=3, num_samples=16, num_elites=4), num_particles=2
    ),
    "bptt": gj.bptt(iterations=40),
    "multistart_bptt": gj.multistart(gj.bptt(iterations=40), 3),
    "random_shooting": gj.random_shooting(iterations=4, num_samples=32),
    "cem": gj.cem(iterations=8, num_samples=32, num_elites=8),
    "mppi": gj.mppi(iterations=8, num_samples=32),
    "collocation": gj.collocation(iterations=10, num_particles=2, eval_every=5),
}


@contextlib.contextmanager
def count_compiles():
    """Counts the programs JAX had to obtain in the block (JAX's own monitoring events):
    ``n[0]``. A program read back from the suite's compilation cache counts too (JAX records
    the backend-compile event for a cache hit as well): it was traced and lowered again,
    which is what the "no recompilation" tests rule out."""
    n = [0]

    def listener(name, secs, **kwargs):
        if name == "/jax/core/compile/backend_compile_duration":
            n[0] += 1

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield n
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


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
