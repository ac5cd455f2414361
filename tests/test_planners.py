"""Every planner through the public API: jitted and eager (chex.variants), under vmap,
deterministic, in bounds, batch == per-item, and no recompilation on repeat calls."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import parameterized

import grasp_jax as gj
from conftest import INTEGRATOR, SMALL_PLANNERS, batch_of_cases, count_compiles

PARAMS = jnp.float32(0.25)
S0 = jnp.array([0.0, 0.0], jnp.float32)
GOAL = jnp.array([0.5, -0.3], jnp.float32)
NAMED = [(name, name) for name in SMALL_PLANNERS]


class PlannerTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.named_parameters(*NAMED)
    def test_plan_shapes_bounds_and_rollout(self, name):
        planner = SMALL_PLANNERS[name]

        @self.variant
        def run(s0, goal, key):
            return gj.plan(planner, INTEGRATOR, PARAMS, s0, goal, key)

        result = run(S0, GOAL, jax.random.key(1))
        chex.assert_shape(result.actions, (INTEGRATOR.horizon, INTEGRATOR.action_dim))
        chex.assert_shape(result.states, (INTEGRATOR.horizon + 1, 2))
        chex.assert_shape(result.cost, ())
        chex.assert_tree_all_finite((result.actions, result.states, result.cost))
        # Asymmetric box [-1, 0.5] x [-0.5, 1]: never left.
        self.assertTrue(bool(jnp.all(result.actions >= INTEGRATOR.low)))
        self.assertTrue(bool(jnp.all(result.actions <= INTEGRATOR.high)))
        # states are the REAL rollout of the returned actions, cost is its cost.
        real = gj.rollout(INTEGRATOR, PARAMS, S0, result.actions)
        np.testing.assert_allclose(result.states, real, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(result.cost, jnp.sum((real[-1] - GOAL) ** 2), rtol=1e-5, atol=1e-7)
        leaves = jax.tree_util.tree_leaves(result.trace)
        self.assertTrue(all(leaf.shape[0] == planner.iterations for leaf in leaves))
        self.assertFalse(bool(result.nonfinite))
        # The goal is reachable inside the box in 8 steps: optimisers get close; random
        # shooting (128 uniform samples) must at least beat the box-centre plan.
        centre = jnp.broadcast_to(INTEGRATOR.action_center, result.actions.shape)
        centre_cost = jnp.sum((gj.rollout(INTEGRATOR, PARAMS, S0, centre)[-1] - GOAL) ** 2)
        bound = float(centre_cost) if name == "random_shooting" else 0.05
        self.assertLess(float(result.cost), bound)

    @parameterized.named_parameters(*NAMED)
    def test_deterministic_under_fixed_key(self, name):
        planner = SMALL_PLANNERS[name]
        a = gj.plan(planner, INTEGRATOR, PARAMS, S0, GOAL, jax.random.key(3))
        b = gj.plan(planner, INTEGRATOR, PARAMS, S0, GOAL, jax.random.key(3))
        chex.assert_trees_all_equal(a.actions, b.actions)
        chex.assert_trees_all_equal(a.trace, b.trace)

    @parameterized.named_parameters(*NAMED)
    def test_batch_equals_per_item_and_vmap(self, name):
        planner = SMALL_PLANNERS[name]
        s0, goals = batch_of_cases(3)
        key = jax.random.key(7)
        batch = gj.plan_batch(planner, INTEGRATOR, PARAMS, s0, goals, key)
        keys = jax.random.split(key, 3)
        vmapped = jax.vmap(lambda s, g, k: gj.plan(planner, INTEGRATOR, PARAMS, s, g, k))(s0, goals, keys)
        chex.assert_trees_all_close(batch.actions, vmapped.actions, rtol=1e-5, atol=1e-5)
        centre = jnp.broadcast_to(INTEGRATOR.action_center, (INTEGRATOR.horizon, 2))
        for i in range(3):
            item = gj.plan(planner, INTEGRATOR, PARAMS, s0[i], goals[i], keys[i])
            # Same keys, same computation: the first iterations agree to float precision.
            early = lambda t: jax.tree_util.tree_map(lambda x: x[:3], t.info)  # noqa: E731
            chex.assert_trees_all_close(early(jax.tree_util.tree_map(lambda x: x[i], batch.trace)), early(item.trace),
                                        rtol=1e-4, atol=1e-6)
            # Later, a batched program's float reassociation may be amplified (noise, Adam,
            # argmin over near-equal optima: the goal is reachable by many plans here), so
            # the plans must be equally good rather than equal.
            centre_cost = float(jnp.sum((gj.rollout(INTEGRATOR, PARAMS, s0[i], centre)[-1] - goals[i]) ** 2))
            assert abs(float(batch.cost[i]) - float(item.cost)) <= 0.01 * centre_cost, (batch.cost[i], item.cost)

    @parameterized.named_parameters(*NAMED)
    def test_warm_start_is_used(self, name):
        # A warm start that already solves the problem is never made worse.
        planner = SMALL_PLANNERS[name]
        solution = jnp.tile((GOAL - S0) / (PARAMS * INTEGRATOR.horizon), (INTEGRATOR.horizon, 1))
        result = gj.plan(planner, INTEGRATOR, PARAMS, S0, GOAL, jax.random.key(0), init_actions=solution)
        self.assertLess(float(result.cost), 1e-6)


def test_no_recompile_on_repeat_calls():
    planner = SMALL_PLANNERS["grasp"]
    s0, goals = batch_of_cases(4)
    gj.plan_batch(planner, INTEGRATOR, PARAMS, s0, goals, jax.random.key(0))
    gj.plan(planner, INTEGRATOR, PARAMS, s0[0], goals[0], jax.random.key(0))
    inputs = [(s0 + i, s0[i], goals[i], jax.random.key(i)) for i in range(3)]
    # A fresh but equal Problem and an equal planner config reuse the compiled programs.
    with count_compiles() as compiles:
        for starts, start, goal, k in inputs:
            problem = gj.Problem(INTEGRATOR.dynamics, horizon=8, action_dim=2, action_low=(-1.0, -0.5), action_high=(0.5, 1.0))
            again = gj.grasp(iterations=40, sync_every=20, sync=gj.bptt(iterations=5, learning_rate=0.1), num_particles=4)
            assert again is planner
            jax.block_until_ready(gj.plan_batch(again, problem, PARAMS, starts, goals, k))
            jax.block_until_ready(gj.plan(planner, INTEGRATOR, PARAMS, start, goal, k))
    assert compiles[0] == 0
    # The counter does see compilations: a new budget is a new program.
    with count_compiles() as compiles:
        gj.plan(planner, INTEGRATOR, PARAMS, s0[0], goals[0], jax.random.key(0), iterations=7)
    assert compiles[0] >= 1


def test_count_compiles_counts_programs_read_back_from_the_compilation_cache():
    """The suite shares one compilation cache (conftest): a program traced again and read
    back from it must still count, or the no-recompilation tests above could not fail."""
    import os

    assert os.environ.get("JAX_COMPILATION_CACHE_DIR")
    x = jnp.arange(3.0)
    counts = []
    for _ in range(2):  # two distinct functions, one program: the second is a cache hit, not an in-memory one
        with count_compiles() as compiles:
            jax.block_until_ready(jax.jit(lambda v: v * 2.5 + 0.25)(x))
        counts.append(compiles[0])
    assert counts == [1, 1]


def test_chunked_batch_equals_unchunked():
    planner = SMALL_PLANNERS["cem"]
    s0, goals = batch_of_cases(5)
    full = gj.plan_batch(planner, INTEGRATOR, PARAMS, s0, goals, jax.random.key(0))
    chunked = gj.plan_batch(planner, INTEGRATOR, PARAMS, s0, goals, jax.random.key(0), chunk_size=2)
    chex.assert_trees_all_close(full.actions, chunked.actions, rtol=1e-5, atol=1e-6)
    chex.assert_shape(chunked.actions, (5, INTEGRATOR.horizon, 2))


def test_tolerance_stops_early_with_model_only():
    planner = gj.bptt(iterations=400)
    result = gj.plan(planner, INTEGRATOR, PARAMS, S0, GOAL, jax.random.key(0), tolerance=1e-3)
    assert int(result.iterations) < 400
    assert float(result.cost) <= 1e-3
    # Iterations not run are marked NaN in the fixed-size trace.
    assert bool(jnp.isnan(result.trace.best_cost[-1]))
    assert bool(jnp.isnan(result.trace.info.cost[-1]))


def test_custom_cost_with_obstacle():
    # Reach the goal while keeping away from an obstacle at the midpoint: the custom
    # cost sees the whole trajectory.
    centre = jnp.array([0.25, -0.15])

    def cost(states, actions, goal):
        reach = jnp.sum((states[-1] - goal) ** 2)
        clearance = jnp.linalg.norm(states - centre, axis=-1)
        return reach + 10.0 * jnp.sum(jax.nn.relu(0.1 - clearance) ** 2)

    problem = gj.Problem(INTEGRATOR.dynamics, horizon=8, action_dim=2, action_low=-1.0, action_high=1.0, cost=cost)
    for planner in (gj.grasp(iterations=100, num_particles=4), gj.bptt(iterations=100), gj.cem(iterations=10)):
        result = gj.plan(planner, problem, PARAMS, S0, GOAL, jax.random.key(0))
        assert float(result.cost) < 0.02, planner.name


def test_grasp_warm_start_keeps_the_shifted_virtual_states():
    planner = gj.grasp(iterations=20, sync_every=10, num_particles=2)
    first = gj.plan(planner, INTEGRATOR, PARAMS, S0, GOAL, jax.random.key(0))
    actions, warm = gj.mpc.warm_start(planner, INTEGRATOR, first, 2)
    # shift drops the executed steps of every particle and pads with the last virtual state.
    z = first.final_state.virtual_states
    np.testing.assert_allclose(warm.virtual_states[:, :-2], z[:, 2:])
    np.testing.assert_allclose(warm.virtual_states[:, -2:], jnp.broadcast_to(z[:, -1:], warm.virtual_states[:, -2:].shape))
    state = planner.init(INTEGRATOR, PARAMS, first.states[2], GOAL, jax.random.key(1), actions, warm)
    np.testing.assert_allclose(state.states(), warm.state_scale * warm.virtual_states, rtol=1e-5, atol=1e-6)
    result = gj.plan(planner, INTEGRATOR, PARAMS, first.states[2], GOAL, jax.random.key(1), actions, warm=warm)
    assert float(result.cost) < 0.01


def test_iterations_override_runs_exactly_that_many():
    # The override lives in the driver, the same code for every planner (GRASP's own use
    # of the budget, its last-iteration sync, is pinned in tests/test_grasp.py).
    for planner in (SMALL_PLANNERS[name] for name in ("bptt", "multistart_bptt", "cem")):
        result = gj.plan(planner, INTEGRATOR, PARAMS, S0, GOAL, jax.random.key(0), iterations=3)
        assert int(result.iterations) == 3
        assert all(leaf.shape[0] == 3 for leaf in jax.tree_util.tree_leaves(result.trace)), planner.name
    # BPTT's candidates are its iterates: 3 iterations see exactly the first 3 iterates of a longer run.
    long = gj.plan(SMALL_PLANNERS["bptt"], INTEGRATOR, PARAMS, S0, GOAL, jax.random.key(0))
    short = gj.plan(SMALL_PLANNERS["bptt"], INTEGRATOR, PARAMS, S0, GOAL, jax.random.key(0), iterations=3)
    np.testing.assert_allclose(short.trace.info.cost, long.trace.info.cost[:3], rtol=1e-6)
    batch = gj.plan_batch(SMALL_PLANNERS["cem"], INTEGRATOR, PARAMS, *batch_of_cases(2), jax.random.key(0), iterations=2)
    assert batch.trace.best_cost.shape == (2, 2)


def test_multistart_picks_the_best_start():
    """Two basins: s' = s + a, cost min((x-1)^2, (x+1)^2 + 0.5) at the final state. From
    x0 = -0.5, BPTT from the centre slides into the worse basin; multistart must return
    the best of its starts, at least as good as every start run alone."""

    def cost(states, actions, goal):
        x = states[-1, 0]
        return jnp.minimum((x - 1.0) ** 2, (x + 1.0) ** 2 + 0.5) + 1e-3 * jnp.sum(actions**2)

    problem = gj.Problem(lambda p, s, a: s + a, horizon=2, action_dim=1, action_low=-1.0, action_high=1.0, cost=cost)
    s0 = jnp.array([-0.5])
    inner = gj.bptt(iterations=30, learning_rate=0.05)
    multi = gj.multistart(inner, 16)
    result = gj.plan(multi, problem, None, s0, jnp.zeros(1), jax.random.key(0))
    # Each start run alone (through the same starts the multistart drew) is never better.
    state = multi.init(problem, None, s0, jnp.zeros(1), jax.random.split(jax.random.key(0))[0], None, None)
    starts = problem.from_unit(state.unit_actions)
    inner_costs = [float(gj.plan(inner, problem, None, s0, jnp.zeros(1), jax.random.key(0), starts[i]).cost) for i in range(16)]
    assert float(result.cost) <= min(inner_costs) + 1e-6
    # From x0 = -0.5 the centre start falls into the worse basin (x -> -1, cost 0.5); some start reaches x = 1.
    assert inner_costs[0] > 0.4
    assert float(result.cost) < 0.05
    assert result.final_state.unit_actions.shape == (16, 2, 1)


def test_a_planner_defined_here_runs_through_every_driver():
    """A new planner is one module: this one (greedy coordinate search, defined in this
    test) runs through plan, plan_batch, multistart, mpc, the iterations override and a
    benchmark timing cell without any other file knowing it."""
    from typing import NamedTuple

    from grasp_jax.planners import base

    class State(NamedTuple):
        unit_actions: jax.Array
        step_size: jax.Array

    class Info(NamedTuple):
        nonfinite: jax.Array

    def init(problem, params, init_state, goal, key, init_actions=None, warm=None):
        return State(base.initial_unit_actions(problem, init_actions, init_state.dtype), jnp.asarray(0.5))

    def step(problem, params, init_state, goal, state, key, iteration, num_iterations):
        direction = jax.random.normal(key, state.unit_actions.shape)
        trial = jnp.clip(state.unit_actions + state.step_size * direction, -1, 1)
        plans = base.unit_to_box(problem, jnp.stack([state.unit_actions, trial]))
        costs = base.batched_rollout_cost(problem, params, init_state, goal, plans)
        better = costs[1] < costs[0]
        new = State(jnp.where(better, trial, state.unit_actions), jnp.where(better, state.step_size, 0.9 * state.step_size))
        return new, base.best_of(plans, costs), Info(~jnp.all(jnp.isfinite(costs)))

    planner = base.Planner(init=init, step=step, iterations=60, name="greedy",
                           iteration_cost=base.sampling_cost(2))
    centre = jnp.broadcast_to(INTEGRATOR.action_center, (8, 2))
    centre_cost = float(jnp.sum((gj.rollout(INTEGRATOR, PARAMS, S0, centre)[-1] - GOAL) ** 2))
    one = gj.plan(planner, INTEGRATOR, PARAMS, S0, GOAL, jax.random.key(0))
    assert float(one.cost) < 0.1 * centre_cost
    batch = gj.plan_batch(gj.multistart(planner, 2), INTEGRATOR, PARAMS, *batch_of_cases(2), jax.random.key(0), iterations=20)
    assert batch.actions.shape == (2, 8, 2) and batch.trace.best_cost.shape == (2, 20)
    out = gj.mpc.mpc(planner, INTEGRATOR, PARAMS, lambda s, a: INTEGRATOR.dynamics(PARAMS, s, a), lambda s: s,
                     S0, GOAL, jax.random.key(0), replans=2, execute=4, iterations=30)
    assert out.env_states.shape == (9, 2)
    from benchmarks.compare import time_cell

    result, compile_s, seconds = time_cell(planner, INTEGRATOR, PARAMS, *batch_of_cases(2), repeats=1, iterations=10)
    assert seconds > 0 and compile_s > 0 and result.cost.shape == (2,) and result.trace.best_cost.shape == (2, 10)
    from benchmarks.compare import model_calls, sequential_depth

    assert model_calls(planner, 8, 10) == 160 and sequential_depth(planner, 8, 10) == 80
