"""Receding-horizon control: warm-start shifting, closed-loop correction of model error,
jit/eager/vmap agreement, no recompilation across calls, and the host driver."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import grasp_jax as gj
from conftest import INTEGRATOR, SMALL_PLANNERS, count_compiles, integrator

DRIFT = jnp.array([0.03, -0.02], jnp.float32)
DT = jnp.float32(0.25)


def drifting_env_step(state, action):
    """The 'real' environment: the model's integrator plus a drift the model does not know."""
    return integrator(DT, state, action) + DRIFT


def identity(state):
    return state


def tracking_cost(states, actions, goal):
    """Reach the goal early and stay there (receding horizons need a stage cost)."""
    del actions
    return jnp.mean(jnp.sum((states[1:] - goal) ** 2, axis=-1))


TRACKING = gj.Problem(integrator, horizon=8, action_dim=2, action_low=(-1.0, -0.5), action_high=(0.5, 1.0), cost=tracking_cost)


PLANNER = SMALL_PLANNERS["grasp"]


def test_warm_start_shifts_actions_and_the_planners_own_iterate():
    s0, goal = jnp.zeros(2), jnp.array([0.5, -0.3])
    result = gj.plan(PLANNER, INTEGRATOR, DT, s0, goal, jax.random.key(0))
    actions, warm = gj.mpc.warm_start(PLANNER, INTEGRATOR, result, 3)
    np.testing.assert_allclose(actions[:5], result.actions[3:])
    centre = (np.array(INTEGRATOR.action_low) + np.array(INTEGRATOR.action_high)) / 2
    np.testing.assert_allclose(actions[5:], np.broadcast_to(centre, (3, 2)), atol=1e-7)
    # GRASP's warm state: every particle's virtual states and actions, shifted by 3.
    z = result.final_state.virtual_states
    assert warm.virtual_states.shape == z.shape == (4, INTEGRATOR.horizon - 1, 2)
    np.testing.assert_allclose(warm.virtual_states[:, :4], z[:, 3:], atol=1e-6)
    np.testing.assert_allclose(warm.unit_actions[:, :5], result.final_state.unit_actions[:, 3:], atol=1e-6)
    # CEM keeps no memory beyond the plan; BPTT keeps its Adam moments, shifted with the plan.
    a_cem, w_cem = gj.mpc.warm_start(SMALL_PLANNERS["cem"], INTEGRATOR, result, 3)
    assert w_cem is None and a_cem.shape == (8, 2)
    bptt = SMALL_PLANNERS["bptt"]
    b = gj.plan(bptt, INTEGRATOR, DT, s0, goal, jax.random.key(0))
    _, w_bptt = gj.mpc.warm_start(bptt, INTEGRATOR, b, 3)
    mu = [x for x in jax.tree_util.tree_leaves(b.final_state.opt_state) if x.shape == (8, 2)][0]
    mu_shifted = [x for x in jax.tree_util.tree_leaves(w_bptt.opt_state) if x.shape == (8, 2)][0]
    np.testing.assert_allclose(mu_shifted[:5], mu[3:])
    np.testing.assert_allclose(mu_shifted[5:], 0.0)


@pytest.mark.parametrize("name", ["grasp", "cem", "collocation"])
def test_mpc_corrects_model_error_that_open_loop_cannot(name):
    planner = SMALL_PLANNERS[name]
    s0, goal = jnp.zeros(2, jnp.float32), jnp.array([0.5, -0.3], jnp.float32)
    key = jax.random.key(1)
    open_loop = gj.mpc.mpc(planner, TRACKING, DT, drifting_env_step, identity, s0, goal, key, replans=1, execute=8)
    closed = gj.mpc.mpc(planner, TRACKING, DT, drifting_env_step, identity, s0, goal, key, replans=8, execute=1)
    assert open_loop.env_states.shape == (9, 2) and closed.env_states.shape == (9, 2)
    assert closed.actions.shape == (8, 2) and closed.plan_costs.shape == (8,)
    open_err = float(jnp.linalg.norm(open_loop.env_states[-1] - goal))
    closed_err = float(jnp.linalg.norm(closed.env_states[-1] - goal))
    assert open_err > 0.2  # 8 steps of unmodelled drift
    assert closed_err < 0.5 * open_err
    # The executed actions reproduce the environment states.
    replay = jax.lax.scan(lambda s, a: (drifting_env_step(s, a),) * 2, s0, closed.actions)[1]
    np.testing.assert_allclose(replay, closed.env_states[1:], atol=1e-5)


def test_mpc_with_exact_model_executes_the_plan():
    s0, goal = jnp.zeros(2, jnp.float32), jnp.array([0.5, -0.3], jnp.float32)
    key = jax.random.key(2)
    exact = lambda s, a: integrator(DT, s, a)  # noqa: E731
    out = gj.mpc.mpc(PLANNER, INTEGRATOR, DT, exact, identity, s0, goal, key, replans=1, execute=8)
    k_plan = jax.random.split(key, 1)[0]
    result = gj.plan(PLANNER, INTEGRATOR, DT, s0, goal, k_plan)
    np.testing.assert_allclose(out.actions, result.actions, atol=1e-6)
    np.testing.assert_allclose(out.env_states, result.states, atol=1e-5)


class MpcVariantsTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_jit_eager_and_vmap_agree(self):
        starts = jnp.array([[0.0, 0.0], [0.1, -0.1], [-0.2, 0.05]], jnp.float32)
        goals = jnp.array([[0.5, -0.3], [0.2, 0.4], [-0.4, -0.2]], jnp.float32)
        keys = jax.random.split(jax.random.key(3), 3)

        # BPTT: GRASP's noisy non-convex iterations amplify float round-off between a
        # batched and a single program (see tests/test_grasp.py for its own batch check).
        planner = SMALL_PLANNERS["bptt"]

        def run(s0, g, k):
            return gj.mpc.mpc(planner, INTEGRATOR, DT, drifting_env_step, identity, s0, g, k, replans=3, execute=2)

        batched = jax.vmap(self.variant(run))(starts, goals, keys)
        assert batched.env_states.shape == (3, 7, 2)
        for i in range(3):
            one = self.variant(run)(starts[i], goals[i], keys[i])
            np.testing.assert_allclose(batched.env_states[i], one.env_states, atol=1e-4)


def test_mpc_compiles_once_for_repeated_calls():
    s0, goal = jnp.zeros(2, jnp.float32), jnp.array([0.5, -0.3], jnp.float32)
    run = lambda k, g: gj.mpc.mpc(PLANNER, INTEGRATOR, DT, drifting_env_step, identity, s0, g, k, replans=2, execute=2)  # noqa: E731
    jax.block_until_ready(run(jax.random.key(0), goal))
    inputs = [(jax.random.key(i + 1), goal + 0.01 * i) for i in range(3)]
    with count_compiles() as compiles:
        for k, g in inputs:
            jax.block_until_ready(run(k, g))
    assert compiles[0] == 0


def wall_true_dynamics(params, state, action):
    del params
    return gj.envs.wall.step(state, action)


def test_mpc_host_on_wall_reaches_a_near_goal_and_compiles_once():
    env = gj.envs.make("wall")
    start = env.reset(0)
    goal_obs = np.asarray(start) + np.array([6.0, 0.0]) if start[0] < 20 else np.asarray(start) - np.array([6.0, 0.0])
    problem = gj.Problem(wall_true_dynamics, horizon=6, action_dim=2)
    planner = gj.grasp(iterations=30, sync_every=15, sync=gj.bptt(iterations=5, learning_rate=0.1), num_particles=2)
    out = gj.mpc.mpc_host(planner, problem, None, env, start, goal_obs, jax.random.key(0), replans=2, execute=3)
    env.reset(0)
    with count_compiles() as compiles:
        out = gj.mpc.mpc_host(planner, problem, None, env, start, goal_obs, jax.random.key(1), replans=3, execute=3)
    assert compiles[0] == 0  # every re-plan reuses the two programs (cold first plan, warm ones)
    assert out.observations.shape == (10, 2) and out.actions.shape == (9, 2)
    assert out.plan_seconds.shape == (3,) and out.plan_costs.shape == (3,)
    assert out.success and 1 <= out.success_step <= 9


def test_mpc_host_batch_is_mpc_host_per_episode():
    """Two Wall episodes (host simulators) at once: every re-plan one plan_batch; BPTT from
    the box centre ignores its key, so each episode is what mpc_host makes of it alone."""
    planner = gj.bptt(iterations=20, learning_rate=0.2)
    problem = gj.Problem(wall_true_dynamics, horizon=6, action_dim=2)
    envs = [gj.envs.make("wall") for _ in range(2)]
    starts = np.stack([e.reset(seed) for seed, e in enumerate(envs)])
    goals = starts + np.where(starts[:, :1] < 20, 6.0, -6.0) * np.array([1.0, 0.0])
    batch = gj.mpc.mpc_host_batch(planner, problem, None, envs, starts, goals, jax.random.key(0), execute=3,
                                  deadline=True)
    assert len(batch) == 2
    for seed, (env, out) in enumerate(zip(envs, batch)):
        env.reset(seed)
        alone = gj.mpc.mpc_host(planner, problem, None, env, starts[seed], goals[seed], jax.random.key(0), execute=3,
                                deadline=True)
        assert out.observations.shape == alone.observations.shape == (7, 2)
        assert [p.shape for p in out.plans] == [p.shape for p in alone.plans] == [(6, 2), (3, 2)]
        np.testing.assert_allclose(out.observations, alone.observations, atol=1e-3)
        assert out.final_success == alone.final_success and out.success_step == alone.success_step
        assert out.final_success  # 6 px in 6 steps: well within the agent's reach


def test_deadline_mpc_arrives_where_a_fixed_receding_horizon_does_not():
    """A task of 8 steps judged at its end, re-planned every 2 steps. With a fixed receding
    horizon every plan puts the goal 8 steps ahead, so after 8 executed steps it is still on
    its way; with deadline=True the horizon shrinks to the steps left and the episode ends
    at the goal. The 4 plans of different lengths are one program: a second episode
    compiles nothing. The goal is at 95% of the box's reach in 8 steps, so only plans that
    use the whole episode at nearly full speed arrive."""
    s0, goal = jnp.zeros(2, jnp.float32), jnp.array([0.95, 0.0], jnp.float32)
    exact = lambda s, a: integrator(DT, s, a)  # noqa: E731
    planner = SMALL_PLANNERS["bptt"]
    fixed = gj.mpc.mpc(planner, INTEGRATOR, DT, exact, identity, s0, goal, jax.random.key(0), replans=4, execute=2)
    deadline = gj.mpc.mpc(planner, INTEGRATOR, DT, exact, identity, s0, goal, jax.random.key(0), execute=2, deadline=True)
    assert fixed.env_states.shape == deadline.env_states.shape == (9, 2)
    assert deadline.plan_costs.shape == (4,)
    assert float(jnp.linalg.norm(deadline.env_states[-1] - goal)) < 0.02
    assert float(jnp.linalg.norm(fixed.env_states[-1] - goal)) > 0.1  # each plan slows down (measured 0.15)
    other_goal = jnp.array([0.2, 0.9], jnp.float32)
    with count_compiles() as compiles:
        again = gj.mpc.mpc(planner, INTEGRATOR, DT, exact, identity, s0, other_goal, jax.random.key(1), execute=2, deadline=True)
        jax.block_until_ready(again)
    assert compiles[0] == 0
    assert float(jnp.linalg.norm(again.env_states[-1] - other_goal)) < 0.02


def test_mpc_host_track_gets_the_models_prediction_and_the_plan_starts_from_its_estimate():
    """``track(observed, predicted)``: from the second re-plan on, ``predicted`` is the model's
    rollout of the state the previous re-plan started from through the actions executed
    since, and the next plan starts from what ``track`` returns (here the prediction
    shifted by a constant, which no observation could give)."""
    problem = gj.Problem(wall_true_dynamics, horizon=6, action_dim=2)
    planner = gj.bptt(iterations=5, learning_rate=0.2)
    env = gj.envs.make("wall")
    start = env.reset(0)
    seen, returned = [], []

    def track(observed, predicted):
        seen.append((np.asarray(observed), np.asarray(predicted)))
        returned.append(np.asarray(predicted) + 0.5)
        return jnp.asarray(returned[-1])

    out = gj.mpc.mpc_host(planner, problem, None, env, start, start + np.array([4.0, 0.0]), jax.random.key(0),
                          execute=2, deadline=True, track=track)
    assert len(seen) == 2 and len(out.plans) == 3  # re-plans 2 and 3
    starts = [np.asarray(start, np.float32)] + returned
    for r, (observed, predicted) in enumerate(seen):
        np.testing.assert_allclose(observed, out.observations[2 * (r + 1)], atol=1e-6)  # encode = identity
        expect = gj.rollout(problem, None, jnp.asarray(starts[r]), jnp.asarray(out.plans[r][:2]))[-1]
        np.testing.assert_allclose(predicted, expect, atol=1e-5)
    with pytest.raises(TypeError, match="track must be None or callable"):
        gj.mpc.mpc_host(planner, problem, None, env, start, start, jax.random.key(0), execute=2, deadline=True,
                        track=1.0)


def offset_track(observed, predicted):
    """A state estimate no observation could give: the model's prediction shifted by 0.1."""
    del observed
    return predicted + 0.1


@pytest.mark.parametrize("deadline", [False, True])
def test_mpc_track_starts_each_plan_from_its_estimate_and_returns_the_plans(deadline):
    """The JAX loop's ``track`` as ``mpc_host``'s: from the second re-plan on, the plan
    starts from ``track(observe(env_state), predicted)``, ``predicted`` being the model's
    rollout of the previous plan's start through the actions executed since; ``plans``
    holds every re-plan's whole plan (NaN past a shrinking plan's end) and ``plan_states``
    its start. Without ``track`` each plan starts from the observation."""
    s0, goal = jnp.zeros(2, jnp.float32), jnp.array([0.5, -0.3], jnp.float32)
    planner, execute = SMALL_PLANNERS["bptt"], 2
    kw = dict(execute=execute, deadline=True) if deadline else dict(replans=4, execute=execute)
    args = (planner, INTEGRATOR, DT, drifting_env_step, identity, s0, goal, jax.random.key(4))
    plain = gj.mpc.mpc(*args, **kw)
    tracked = gj.mpc.mpc(*args, track=offset_track, **kw)
    horizons = gj.mpc.deadline_horizons(8, execute) if deadline else [8] * 4
    for out in (plain, tracked):
        assert out.plans.shape == (4, 8, 2) and out.plan_states.shape == (4, 2)
        for r, h in enumerate(horizons):
            assert bool(jnp.all(jnp.isfinite(out.plans[r, :h]))) and bool(jnp.all(jnp.isnan(out.plans[r, h:])))
            np.testing.assert_array_equal(out.actions[r * execute : (r + 1) * execute], out.plans[r, :execute])
    np.testing.assert_array_equal(plain.plan_states, plain.env_states[::execute][:4])  # observe = identity
    np.testing.assert_array_equal(tracked.plan_states[0], s0)
    for r in range(1, 4):
        predicted = gj.rollout(INTEGRATOR, DT, tracked.plan_states[r - 1], tracked.plans[r - 1, :execute])[-1]
        np.testing.assert_allclose(tracked.plan_states[r], predicted + 0.1, atol=1e-6)
        # the model knows no drift, the estimate is off by the offset: not the observation
        assert float(jnp.abs(tracked.plan_states[r] - tracked.env_states[r * execute]).max()) > 0.05
    with pytest.raises(TypeError, match="track must be None or callable"):
        gj.mpc.mpc(*args, track=1.0, **kw)
