"""GRASP behaviour pinned against hand derivations and known problems."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import grasp_jax as gj
from grasp_jax.tasks import cup_task, linear_dynamics, linear_task

RNG = np.random.default_rng(0)
A = jnp.asarray(RNG.normal(size=(3, 3)) * 0.5, jnp.float32)
B = jnp.asarray(RNG.normal(size=(3, 2)), jnp.float32)
LIN = {"A": A, "B": B}


@pytest.mark.parametrize("stop_gradient", [True, False])
@pytest.mark.parametrize("gamma", [0.0, 0.7])
def test_reshaped_gradient_matches_hand_derivation(stop_gradient, gamma):
    """L = sum_t ||A s_t + B a_t - x_{t+1}||^2 + gamma ||A s_t + B a_t - g||^2, x_H = g.

    With the stop-gradient: dL/da_t = 2 B^T (r_t + gamma e_t) and dL/ds_j = -2 r_{j-1}
    (states are regression targets only). Without it, dL/ds_j also gets
    2 A^T (r_j + gamma e_j) through the model's state input.
    """
    horizon = 4
    problem = gj.Problem(linear_dynamics, horizon=horizon, action_dim=2)
    s0 = jnp.asarray(RNG.normal(size=3), jnp.float32)
    goal = jnp.asarray(RNG.normal(size=3), jnp.float32)
    virtual = jnp.asarray(RNG.normal(size=(horizon - 1, 3)), jnp.float32)
    actions = jnp.asarray(RNG.normal(size=(horizon, 2)), jnp.float32)

    def loss(v, a):
        return gj.relaxed_loss(problem, LIN, v, a, s0, goal, goal_weight=gamma, stop_gradient=stop_gradient)[0]

    g_states, g_actions = jax.grad(loss, argnums=(0, 1))(virtual, actions)

    inputs = np.concatenate([np.asarray(s0)[None], np.asarray(virtual)])
    targets = np.concatenate([np.asarray(virtual), np.asarray(goal)[None]])
    pred = inputs @ np.asarray(A).T + np.asarray(actions) @ np.asarray(B).T
    r, e = pred - targets, pred - np.asarray(goal)
    expect_actions = 2 * (r + gamma * e) @ np.asarray(B)
    expect_states = -2 * r[:-1]
    if not stop_gradient:
        expect_states = expect_states + 2 * (r[1:] + gamma * e[1:]) @ np.asarray(A)
    np.testing.assert_allclose(g_actions, expect_actions, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(g_states, expect_states, rtol=1e-4, atol=1e-4)


def test_stop_gradient_blocks_state_jacobian_of_any_model():
    """No gradient ever flows through dF/ds: a model whose state Jacobian is huge gives
    the same action and state gradients as one whose state input is frozen."""
    horizon = 3

    def brittle(params, s, a):
        return 1e6 * jnp.sin(s) * 1e-6 + jnp.tanh(a).sum() * jnp.ones_like(s) + 50.0 * jnp.cos(30 * s)

    def frozen(params, s, a):
        return brittle(params, jax.lax.stop_gradient(s), a)

    s0, goal = jnp.zeros(2), jnp.ones(2)
    v = jnp.asarray(RNG.normal(size=(horizon - 1, 2)), jnp.float32)
    a = jnp.asarray(RNG.normal(size=(horizon, 2)), jnp.float32)
    grads = []
    for fn in (brittle, frozen):
        problem = gj.Problem(fn, horizon=horizon, action_dim=2)
        grads.append(jax.grad(lambda v, a: gj.relaxed_loss(problem, None, v, a, s0, goal)[0], argnums=(0, 1))(v, a))
    np.testing.assert_allclose(grads[0][0], grads[1][0], rtol=1e-6)
    np.testing.assert_allclose(grads[0][1], grads[1][1], rtol=1e-6)


GRASP_SMALL = gj.grasp(iterations=100, sync_every=25, num_particles=4)


@pytest.mark.parametrize("planner", [GRASP_SMALL, gj.bptt(iterations=200)], ids=["grasp", "bptt"])
def test_bound_active_analytic_optimum(planner):
    """s' = s + a, a in [-1, 1], H = 5, from 0 to 10: the optimum is a = 1 everywhere
    (the goal is out of reach), final state 5, cost 25."""
    problem = gj.Problem(lambda p, s, a: s + a, horizon=5, action_dim=1, action_low=-1.0, action_high=1.0)
    result = gj.plan(planner, problem, None, jnp.zeros(1), jnp.full(1, 10.0), jax.random.key(0))
    np.testing.assert_allclose(result.actions, jnp.ones((5, 1)), atol=1e-3)
    np.testing.assert_allclose(result.cost, 25.0, rtol=1e-4)


@pytest.mark.parametrize("planner", [gj.grasp(), gj.bptt(iterations=300)], ids=["grasp", "bptt"])
def test_double_integrator_reaches_analytic_solution(planner):
    """Double integrator, H = 10: the least-squares control (solved in closed form
    here) reaches the goal exactly inside the box, so the optimum cost is 0."""
    dt, horizon = 0.2, 10
    a_mat = np.array([[1, 0, dt, 0], [0, 1, 0, dt], [0, 0, 1, 0], [0, 0, 0, 1]], np.float64)
    b_mat = np.array([[0, 0], [0, 0], [dt, 0], [0, dt]], np.float64)
    params = {"A": jnp.asarray(a_mat, jnp.float32), "B": jnp.asarray(b_mat, jnp.float32)}
    s0 = np.array([0.0, 0.0, 0.0, 0.0])
    goal = np.array([0.6, -0.4, 0.0, 0.0])
    # s_H = A^H s0 + sum_t A^(H-1-t) B a_t: least-norm solution of a linear system.
    g_mat = np.concatenate([np.linalg.matrix_power(a_mat, horizon - 1 - t) @ b_mat for t in range(horizon)], axis=1)
    a_star = np.linalg.lstsq(g_mat, goal - np.linalg.matrix_power(a_mat, horizon) @ s0, rcond=None)[0]
    a_star = a_star.reshape(horizon, 2)
    assert np.abs(a_star).max() < 5.0  # inside the box: the analytic optimum is cost 0
    problem = gj.Problem(linear_dynamics, horizon=horizon, action_dim=2, action_low=-5.0, action_high=5.0)
    s0_j, goal_j = jnp.asarray(s0, jnp.float32), jnp.asarray(goal, jnp.float32)
    analytic = gj.rollout(problem, params, s0_j, jnp.asarray(a_star, jnp.float32))
    assert float(jnp.sum((analytic[-1] - goal_j) ** 2)) < 1e-8
    result = gj.plan(planner, problem, params, s0_j, goal_j, jax.random.key(0))
    # Final error within 1% of the distance travelled (0.72).
    assert float(jnp.linalg.norm(result.states[-1] - goal_j)) < 0.0072


@pytest.mark.slow
def test_double_integrator_batch_agrees_with_and_without_chunks():
    """GRASP converges, so chunked and unchunked batches (different programs, different float
    reassociation) land on the same final states to float tolerance."""
    dt = 0.2
    a_mat = np.array([[1, 0, dt, 0], [0, 1, 0, dt], [0, 0, 1, 0], [0, 0, 0, 1]], np.float32)
    b_mat = np.array([[0, 0], [0, 0], [dt, 0], [0, dt]], np.float32)
    params = {"A": jnp.asarray(a_mat), "B": jnp.asarray(b_mat)}
    problem = gj.Problem(linear_dynamics, horizon=10, action_dim=2, action_low=-5.0, action_high=5.0)
    starts = jnp.zeros((3, 4))
    goals = jnp.array([[0.6, -0.4, 0.0, 0.0], [-0.3, 0.5, 0.0, 0.0], [0.2, 0.2, 0.1, -0.1]])
    full = gj.plan_batch(gj.grasp(), problem, params, starts, goals, jax.random.key(0))
    chunked = gj.plan_batch(gj.grasp(), problem, params, starts, goals, jax.random.key(0), chunk_size=2)
    for result in (full, chunked):
        assert float(jnp.max(jnp.linalg.norm(result.states[:, -1] - goals, axis=-1))) < 1e-3
    np.testing.assert_allclose(full.states[:, -1], chunked.states[:, -1], atol=1e-3)


@pytest.mark.slow
def test_unstable_linear_long_horizon():
    """H = 100 on s' = A s + B a with spectral radius 1.05 (the shooting Jacobian grows
    like 1.05^100 ~ 130): GRASP with its defaults reaches the goal."""
    task = linear_task(rho=1.05)
    horizon = 100
    starts, goals = map(jnp.stack, zip(*[task.sample(seed, horizon) for seed in range(3)]))
    result = gj.plan_batch(gj.grasp(), task.problem(horizon), task.params, starts, goals, jax.random.key(0))
    assert bool(jnp.all(task.success(result.states, goals))), result.cost


@pytest.mark.slow
def test_non_greedy_cup_grasp_beats_bptt_and_cem():
    """The straight line to the goal is blocked by the bottom of a cup around the start:
    the plan must first move away. Same seeds; BPTT gets GRASP's iteration count, CEM
    (30 x 256 rollouts) at least GRASP's world-model evaluations."""
    task = cup_task()
    horizon = 50
    starts, goals = map(jnp.stack, zip(*[task.sample(seed, horizon) for seed in range(4)]))
    success = {}
    for planner in (gj.grasp(), gj.bptt(iterations=300), gj.cem()):
        result = gj.plan_batch(planner, task.problem(horizon), task.params, starts, goals, jax.random.key(0))
        success[planner.name] = float(jnp.mean(task.success(result.states, goals)))
    assert success["grasp"] >= 0.75, success
    assert success["grasp"] > success["bptt"] and success["grasp"] > success["cem"], success


def _nan_beyond(params, s, a):
    nxt = s + 0.25 * a
    return jnp.where(nxt[0] > 0.6, jnp.nan, nxt)


@pytest.mark.parametrize(
    "planner",
    [gj.grasp(iterations=60, sync_every=20, num_particles=4), gj.bptt(iterations=60), gj.cem(iterations=6, num_samples=64)],
    ids=["grasp", "bptt", "cem"],
)
def test_nan_from_world_model_does_not_poison_result(planner):
    """The model returns NaN once x > 0.6; the goal lies at x = 1. The planner must return
    the best finite plan it saw, and flag the event."""
    problem = gj.Problem(_nan_beyond, horizon=6, action_dim=2)
    result = gj.plan(planner, problem, None, jnp.zeros(2), jnp.array([1.0, 0.0]), jax.random.key(0))
    assert bool(jnp.all(jnp.isfinite(result.actions)))
    assert bool(jnp.all(jnp.isfinite(result.states)))
    assert bool(jnp.isfinite(result.cost))
    assert bool(result.nonfinite)
    assert bool(jnp.any(result.trace.nonfinite))
    # Best finite: the plan gets as close as the model allows (x <= 0.6).
    assert float(result.cost) < 0.2


SWITCH_PROBLEM = gj.Problem(lambda p, s, a: s + 0.25 * a, horizon=6, action_dim=2)
SWITCH_BASE = dict(iterations=40, sync_every=20, num_particles=2, sync=gj.bptt(iterations=5, learning_rate=0.1))


def _switch_run(**changes):
    planner = gj.grasp(**{**SWITCH_BASE, **changes})
    return planner, gj.plan(planner, SWITCH_PROBLEM, None, jnp.zeros(2), jnp.array([0.5, -0.5]), jax.random.key(0))


@pytest.mark.slow
@pytest.mark.parametrize(
    "option",
    [
        dict(state_lr=0.2),
        dict(action_lr=0.2),
        dict(goal_weight=1.0),
        dict(stop_gradient=False),
        dict(noise_scale=0.5),
        dict(init_noise=0.5),
        dict(sync=gj.bptt(iterations=7, learning_rate=0.1)),
        dict(state_scale=3.0),
    ],
    ids=lambda d: ",".join(f"{k}={getattr(v, 'name', v)}" for k, v in d.items()),
)
def test_every_grasp_option_changes_the_run(option):
    """Each option, changed alone, changes the relaxed loss trace: an ignored option fails."""
    _, default = _switch_run()
    _, changed = _switch_run(**option)
    assert not np.allclose(default.trace.info.loss, changed.trace.info.loss, rtol=1e-6, atol=0), option
    assert not bool(changed.nonfinite)


@pytest.mark.slow
def test_grasp_options_do_what_they_say():
    _, default = _switch_run()
    info = default.trace.info
    # Syncs every sync_every and at the last iteration; only syncs propose a scored plan.
    np.testing.assert_array_equal(np.flatnonzero(info.synced), [19, 39])
    np.testing.assert_array_equal(np.flatnonzero(np.isfinite(default.trace.candidate_cost)), [19, 39])
    # Noise is annealed linearly to 0 within each sync period.
    np.testing.assert_allclose(info.noise_std[:20], 0.05 * (1 - np.arange(20) / 20), rtol=1e-5)
    np.testing.assert_allclose(info.noise_std[20:], info.noise_std[:20])
    _, quiet = _switch_run(noise_scale=0.0)
    assert float(np.max(quiet.trace.info.noise_std)) == 0.0
    # loss = consistency + goal_weight * goal term.
    _, shaped = _switch_run(goal_weight=0.7)
    np.testing.assert_allclose(shaped.trace.info.loss, shaped.trace.info.consistency + 0.7 * shaped.trace.info.goal_term, rtol=1e-5)
    np.testing.assert_allclose(info.loss, info.consistency, rtol=1e-6)
    # No sync: nothing synced except the final scoring of the relaxed plans.
    _, unsynced = _switch_run(sync=None)
    np.testing.assert_array_equal(np.flatnonzero(np.isfinite(unsynced.trace.candidate_cost)), [39])
    # sync_every sets the period.
    _, often = _switch_run(sync_every=10)
    np.testing.assert_array_equal(np.flatnonzero(often.trace.info.synced), [9, 19, 29, 39])
    # Particles and the fixed state scale land in the state.
    planner, many = _switch_run(num_particles=3, state_scale=2.0)
    assert many.final_state.virtual_states.shape == (3, SWITCH_PROBLEM.horizon - 1, 2)
    assert float(many.final_state.state_scale) == 2.0
    # init_noise: particle 0 starts on the straight line, the others on detours of that amplitude.
    state = planner.init(SWITCH_PROBLEM, None, jnp.zeros(2), jnp.array([0.5, -0.5]), jax.random.key(0), None, None)
    line = jnp.linspace(0.0, 1.0, SWITCH_PROBLEM.horizon + 1)[1:-1, None] * jnp.array([0.5, -0.5])
    np.testing.assert_allclose(state.states()[0], line, atol=1e-6)
    assert float(jnp.max(jnp.abs(state.states()[1] - line))) > 0.1
    flat = gj.grasp(**{**SWITCH_BASE, "num_particles": 3, "state_scale": 2.0, "init_noise": 0.0})
    state = flat.init(SWITCH_PROBLEM, None, jnp.zeros(2), jnp.array([0.5, -0.5]), jax.random.key(0), None, None)
    np.testing.assert_allclose(state.states()[1], line, atol=1e-6)


def test_stop_gradient_switch_reaches_the_model_state_input():
    """With stop_gradient=False the state gradient includes A^T r (checked by hand above);
    here: the planner's first relaxed step differs exactly when the model depends on s."""
    _, on = _switch_run(stop_gradient=True)
    _, off = _switch_run(stop_gradient=False)
    assert float(on.trace.info.loss[0]) == pytest.approx(float(off.trace.info.loss[0]), rel=1e-6)  # same start
    assert not np.allclose(on.trace.info.loss[1:20], off.trace.info.loss[1:20], rtol=1e-6, atol=0)


def test_paper_recipe_is_the_published_setting():
    planner = gj.grasp(**gj.PAPER_RECIPE)
    assert planner.config.goal_weight == 1.0 and planner.config.num_particles == 1 and planner.config.init_noise == 0.0
    assert planner.config.sync.iterations == 10 and planner.config.sync.config.learning_rate == 0.05
    # ... and it differs from the default in what it does, not only in its config.
    _, default = _switch_run()
    recipe = gj.plan(gj.grasp(**{**gj.PAPER_RECIPE, "iterations": 40, "sync_every": 20}), SWITCH_PROBLEM, None,
                     jnp.zeros(2), jnp.array([0.5, -0.5]), jax.random.key(0))
    assert recipe.final_state.virtual_states.shape[0] == 1
    np.testing.assert_allclose(recipe.trace.info.loss, recipe.trace.info.consistency + recipe.trace.info.goal_term, rtol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("scale", [1e-2, 1.0, 1e3])
def test_one_default_works_across_state_scales(scale):
    """Learning rates and noise are relative to the estimated state scale: the same
    problem expressed in units 1e-2 and 1e3 apart is solved equally well."""
    problem = gj.Problem(lambda p, s, a: s + p * a, horizon=8, action_dim=2)
    s0, goal = jnp.zeros(2), jnp.array([0.6, -0.4]) * scale
    planner = gj.grasp(iterations=60, sync_every=20, num_particles=4)
    result = gj.plan(planner, problem, jnp.float32(0.25 * scale), s0, goal, jax.random.key(0))
    assert float(jnp.linalg.norm(result.states[-1] - goal)) < 0.02 * scale
    assert float(result.final_state.state_scale) == pytest.approx(float(jnp.sqrt(jnp.mean((goal - s0) ** 2) + 0.0)), rel=0.5)
