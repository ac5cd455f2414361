"""Lifted Levenberg-Marquardt collocation (``gj.collocation``): its linear algebra against
dense references, known optima, its switches, bad input and NaN from the model."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import grasp_jax as gj
from grasp_jax.planners.collocation import block_tridiagonal_solve, gauss_newton_system, lifted_loss
from grasp_jax.tasks import cup_task, linear_dynamics, linear_task

RNG = np.random.default_rng(0)


def test_block_tridiagonal_solve_matches_a_dense_solve():
    """A random symmetric, diagonally dominant block-tridiagonal system (condition number
    about 10): the block sweep agrees with a dense float64 solve to float32 precision."""
    steps, n = 7, 4
    dense = np.zeros((steps * n, steps * n))
    for t in range(steps):
        a = RNG.normal(size=(n, n))
        dense[t * n : (t + 1) * n, t * n : (t + 1) * n] = a @ a.T + 12.0 * np.eye(n)
        if t:
            b = RNG.normal(size=(n, n))
            dense[t * n : (t + 1) * n, (t - 1) * n : t * n] = b
            dense[(t - 1) * n : t * n, t * n : (t + 1) * n] = b.T
    rhs = RNG.normal(size=steps * n)
    diag = np.stack([dense[t * n : (t + 1) * n, t * n : (t + 1) * n] for t in range(steps)])
    lower = np.stack([dense[t * n : (t + 1) * n, (t - 1) * n : t * n] if t else np.zeros((n, n)) for t in range(steps)])
    x = block_tridiagonal_solve(jnp.asarray(diag, jnp.float32), jnp.asarray(lower, jnp.float32),
                                jnp.asarray(rhs.reshape(steps, n), jnp.float32))
    expected = np.linalg.solve(dense, rhs)
    assert np.linalg.cond(dense) < 50
    np.testing.assert_allclose(np.asarray(x).ravel(), expected, rtol=1e-4, atol=1e-5)


def _toy_problem(horizon=5):
    """A nonlinear model (``s' = s + 0.3 tanh(W s + V a)``) and a custom cost with terms on the
    final state, on every state and between neighbouring actions (coupling at most
    neighbouring steps, so the cost's Hessian blocks are exact)."""
    w = jnp.asarray(RNG.normal(size=(3, 3)), jnp.float32)
    v = jnp.asarray(RNG.normal(size=(3, 2)), jnp.float32)

    def model(params, s, a):
        return s + 0.3 * jnp.tanh(params["W"] @ s + params["V"] @ a)

    def cost(states, actions, goal):
        smooth = jnp.sum((actions[1:] - actions[:-1]) ** 2)
        return jnp.sum((states[-1] - goal) ** 2) + 0.1 * jnp.sum(jnp.sin(states) ** 2) + 0.5 * smooth

    problem = gj.Problem(model, horizon=horizon, action_dim=2, action_low=(-1.0, -2.0), action_high=(1.0, 0.5), cost=cost)
    return problem, {"W": w, "V": v}


def test_gauss_newton_system_is_the_dense_one():
    """Against the dense reference on the flattened variables ``y = [(u_t, z_{t+1})]_t``: the
    gradient is the loss's exact gradient, the matrix is ``2 penalty J^T J`` (J: the
    consistency residuals' Jacobian) plus the Hessian of cost and regulariser, block by block."""
    problem, params = _toy_problem()
    horizon, a_dim, s_dim = problem.horizon, 2, 3
    s0 = jnp.asarray(RNG.normal(size=s_dim), jnp.float32)
    goal = jnp.asarray(RNG.normal(size=s_dim), jnp.float32)
    z = jnp.asarray(RNG.normal(size=(horizon, s_dim)), jnp.float32)
    u = jnp.asarray(RNG.uniform(-0.9, 0.9, size=(horizon, a_dim)), jnp.float32)
    shift = jnp.asarray(0.1 * RNG.normal(size=(horizon, s_dim)), jnp.float32)
    scale, weights = jnp.float32(0.7), dict(penalty=3.0, action_reg=0.01)
    system = jax.jit(gauss_newton_system, static_argnums=0, static_argnames=("penalty", "action_reg"))
    diag, lower, grad, residual = system(problem, params, s0, goal, scale, z, u, shift, **weights)

    def split(y):
        y = y.reshape(horizon, a_dim + s_dim)
        return y[:, a_dim:], y[:, :a_dim]

    def loss(y):
        return lifted_loss(problem, params, s0, goal, scale, *split(y), shift, **weights)[0]

    def residuals(y):
        z, u = split(y)
        inputs = jnp.concatenate([s0[None], scale * z[:-1]])
        pred = jax.vmap(problem.dynamics, in_axes=(None, 0, 0))(params, inputs, gj.planners.base.unit_to_box(problem, u))
        return ((pred - scale * z) / scale).ravel()

    def rest(y):  # everything but the penalty: cost and regulariser
        z, u = split(y)
        return loss(y) - weights["penalty"] * jnp.sum((residuals(y).reshape(horizon, s_dim) + shift) ** 2)

    @jax.jit
    def reference(y):
        jac = jax.jacfwd(residuals)(y)
        return 2 * weights["penalty"] * jac.T @ jac + jax.hessian(rest)(y), jax.grad(loss)(y), residuals(y)

    y = jnp.concatenate([u, z], axis=-1).ravel()
    dense, dense_grad, dense_residual = reference(y)
    n = a_dim + s_dim
    for t in range(horizon):
        np.testing.assert_allclose(diag[t], dense[t * n : (t + 1) * n, t * n : (t + 1) * n], rtol=1e-4, atol=1e-4)
        if t:
            np.testing.assert_allclose(lower[t], dense[t * n : (t + 1) * n, (t - 1) * n : t * n], rtol=1e-4, atol=1e-4)
    assert float(jnp.max(jnp.abs(lower[0]))) == 0.0
    np.testing.assert_allclose(grad.ravel(), dense_grad, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(residual.ravel(), dense_residual, rtol=1e-5, atol=1e-6)


def _dot_precisions(jaxpr) -> list:
    """The ``precision`` of every ``dot_general`` in a closed jaxpr, sub-jaxprs (scan bodies,
    custom linear solves, pjit) included (walked by hand: no JAX helper is stable across versions)."""
    found = []

    def subs(value):
        if hasattr(value, "eqns"):  # a Jaxpr
            yield value
        elif hasattr(value, "jaxpr") and hasattr(value.jaxpr, "eqns"):  # a ClosedJaxpr
            yield value.jaxpr
        elif isinstance(value, (tuple, list)):  # custom_linear_solve's jaxprs are a named tuple
            for item in value:
                yield from subs(item)

    def walk(j):
        for eqn in j.eqns:
            if eqn.primitive.name == "dot_general":
                found.append(eqn.params["precision"])
            for value in eqn.params.values():
                for sub in subs(value):
                    walk(sub)

    walk(jaxpr.jaxpr)
    return found


_HIGHEST = (jax.lax.Precision.HIGHEST, jax.lax.Precision.HIGHEST)


def _system_args(problem, params):
    """``(params, s0, goal, scale, z, u, shift)`` for tracing the system or the lifted loss."""
    z, u = jnp.zeros((problem.horizon, 3)), jnp.zeros((problem.horizon, problem.action_dim))
    return params, jnp.ones(3), jnp.zeros(3), jnp.float32(1.0), z, u, jnp.zeros_like(z)


def _traced_system(problem, *args):
    return jax.make_jaxpr(lambda *a: gauss_newton_system(problem, *a, penalty=3.0, action_reg=0.01))(*args)


def test_the_system_and_its_solve_ask_for_full_float32_products():
    """On tensor-core GPUs the default float32 product is TF32 (10-bit mantissa), which broke
    the Levenberg-Marquardt steps on an H100 (Push-T, H = 80: 64% solved at the default budget
    against 99% at full precision). A CPU computes float32 either way, so the test pins the
    request instead: every matrix product in the model's Jacobians, the Gauss-Newton system
    and the block Cholesky sweep asks for HIGHEST whatever the caller's setting, while the
    caller's own products (the trial loss) keep the caller's."""
    problem, params = _toy_problem()
    args = _system_args(problem, params)
    with jax.default_matmul_precision("bfloat16"):  # the caller's setting, whatever the environment's
        system = _traced_system(problem, *args)
        diag = jnp.tile(2.0 * jnp.eye(5), (problem.horizon, 1, 1))
        solve = jax.make_jaxpr(block_tridiagonal_solve)(diag, 0.1 * diag, jnp.ones((problem.horizon, 5)))
        caller = jax.make_jaxpr(lambda *a: lifted_loss(problem, *a, penalty=3.0, action_reg=0.01))(*args)
    for jaxpr in (system, solve):
        precisions = _dot_precisions(jaxpr)
        assert precisions and all(p == _HIGHEST for p in precisions), precisions
    assert _dot_precisions(caller) and all(p != _HIGHEST for p in _dot_precisions(caller))


def test_the_planners_step_goes_through_the_full_precision_system():
    """The planner's own step (not only the public helpers) builds and solves its system at
    HIGHEST and tries the step at the caller's precision: both kinds of product are in it."""
    problem, params = _toy_problem()
    planner = gj.collocation(iterations=3, num_particles=2)
    args = _system_args(problem, params)
    s0, goal = args[1], args[2]
    with jax.default_matmul_precision("bfloat16"):
        # the state's shapes are all the trace needs (running init eagerly costs seconds of op-by-op dispatch)
        state = jax.eval_shape(lambda: planner.init(problem, params, s0, goal, jax.random.key(0)))
        step = jax.make_jaxpr(lambda st: planner.step(problem, params, s0, goal, st, jax.random.key(1), 0, 3))(state)
        system = _traced_system(problem, *args)
    precisions = _dot_precisions(step)
    highest = sum(p == _HIGHEST for p in precisions)
    # every product of the system (and more, the solve's) is among the step's full-precision ones
    assert highest >= len(_dot_precisions(system)) and highest < len(precisions), precisions


def test_a_step_never_raises_a_particles_loss():
    problem, params = _toy_problem()
    planner = gj.collocation(iterations=12, num_particles=3, eval_every=4)
    s0, goal = jnp.zeros(3), jnp.array([0.4, -0.2, 0.3])
    result = gj.plan(planner, problem, params, s0, goal, jax.random.key(0))
    loss = np.asarray(result.trace.info.loss)
    assert np.all(np.diff(loss) <= 0), loss
    assert loss[-1] < 0.5 * loss[0]
    assert 0 < float(jnp.mean(result.trace.info.accepted)) <= 1


def _double_integrator():
    dt = 0.2
    a_mat = np.array([[1, 0, dt, 0], [0, 1, 0, dt], [0, 0, 1, 0], [0, 0, 0, 1]], np.float32)
    b_mat = np.array([[0, 0], [0, 0], [dt, 0], [0, dt]], np.float32)
    return {"A": jnp.asarray(a_mat), "B": jnp.asarray(b_mat)}


@pytest.mark.parametrize("multiplier_every", [0, 5], ids=["penalty", "augmented_lagrangian"])
def test_double_integrator_reaches_the_goal(multiplier_every):
    """Linear dynamics, H = 10, a reachable goal (the analytic optimum has cost 0, see
    test_grasp): Gauss-Newton solves the lifted least squares exactly, so the final state
    lands within 1% of the distance travelled; the multipliers bring it within 0.1%."""
    problem = gj.Problem(linear_dynamics, horizon=10, action_dim=2, action_low=-5.0, action_high=5.0)
    s0, goal = jnp.zeros(4), jnp.array([0.6, -0.4, 0.0, 0.0])
    planner = gj.collocation(iterations=30, num_particles=2, multiplier_every=multiplier_every)
    result = gj.plan(planner, problem, _double_integrator(), s0, goal, jax.random.key(0))
    error = float(jnp.linalg.norm(result.states[-1] - goal))
    assert error < (0.0072 if multiplier_every == 0 else 0.00072), error


def test_bound_active_analytic_optimum():
    """s' = s + a, a in [-1, 1], H = 5, from 0 to 10: the optimum is a = 1 everywhere."""
    problem = gj.Problem(lambda p, s, a: s + a, horizon=5, action_dim=1, action_low=-1.0, action_high=1.0)
    result = gj.plan(gj.collocation(iterations=20, num_particles=2), problem, None, jnp.zeros(1), jnp.full(1, 10.0),
                     jax.random.key(0))
    np.testing.assert_allclose(result.actions, jnp.ones((5, 1)), atol=1e-3)
    np.testing.assert_allclose(result.cost, 25.0, rtol=1e-4)


@pytest.mark.slow
def test_unstable_linear_long_horizon_needs_the_multipliers():
    """H = 100, spectral radius 1.05: a rollout multiplies a virtual trajectory's leftover
    inconsistency by up to 1.05^100 ~ 130. The pure penalty leaves enough of it to miss every
    goal; the augmented-Lagrangian multipliers drive it to zero and every goal is reached."""
    task = linear_task(rho=1.05)
    starts, goals = map(jnp.stack, zip(*[task.sample(seed, 100) for seed in range(3)]))
    success = {}
    for every in (0, 5):
        planner = gj.collocation(num_particles=4, multiplier_every=every)
        result = gj.plan_batch(planner, task.problem(100), task.params, starts, goals, jax.random.key(0))
        success[every] = np.asarray(task.success(result.states, goals))
    assert success[5].all() and not success[0].any(), success


@pytest.mark.slow
def test_non_greedy_cup_with_multipliers():
    """The non-greedy cup (the straight line runs into a wall), H = 50, 4 seeds: the lifted
    proposals route round it where BPTT from the same number of starts does not."""
    task = cup_task()
    starts, goals = map(jnp.stack, zip(*[task.sample(seed, 50) for seed in range(4)]))
    planner = gj.collocation(iterations=60, multiplier_every=5)
    result = gj.plan_batch(planner, task.problem(50), task.params, starts, goals, jax.random.key(0))
    bptt = gj.plan_batch(gj.multistart(gj.bptt(), 16), task.problem(50), task.params, starts, goals, jax.random.key(0))
    ours, theirs = float(jnp.mean(task.success(result.states, goals))), float(jnp.mean(task.success(bptt.states, goals)))
    assert ours >= 0.75 and ours > theirs, (ours, theirs)


def _nan_beyond(params, s, a):
    nxt = s + 0.25 * a
    return jnp.where(nxt[0] > 0.6, jnp.nan, nxt)


def test_nan_from_world_model_does_not_poison_result():
    """The model returns NaN once x > 0.6 and the goal is at x = 1: the steps into NaN are
    rejected (the damping grows), the result is the best finite plan, and the event is flagged."""
    problem = gj.Problem(_nan_beyond, horizon=6, action_dim=2)
    result = gj.plan(gj.collocation(iterations=20, num_particles=4), problem, None, jnp.zeros(2), jnp.array([1.0, 0.0]),
                     jax.random.key(0))
    assert bool(jnp.all(jnp.isfinite(result.actions))) and bool(jnp.all(jnp.isfinite(result.states)))
    assert bool(jnp.isfinite(result.cost)) and bool(result.nonfinite)
    assert float(result.cost) < 0.2


def test_warm_start_keeps_the_shifted_virtual_states():
    problem = gj.Problem(lambda p, s, a: s + 0.25 * a, horizon=6, action_dim=2)
    planner = gj.collocation(iterations=6, num_particles=3)
    state = planner.init(problem, None, jnp.zeros(2), jnp.ones(2), jax.random.key(0), None, None)
    warm = planner.shift(problem, state, 2)
    np.testing.assert_array_equal(warm.virtual_states[:, :4], state.virtual_states[:, 2:])
    np.testing.assert_array_equal(warm.virtual_states[:, 4:], jnp.repeat(state.virtual_states[:, -1:], 2, axis=1))
    again = planner.init(problem, None, jnp.zeros(2), jnp.ones(2), jax.random.key(1), None, warm)
    # the next plan may estimate another state scale: the states are kept in the problem's units
    np.testing.assert_allclose(again.states(), warm.virtual_states * warm.state_scale, rtol=1e-6)


def test_cost_model_counts_evaluations_and_multiplier_updates():
    from benchmarks.compare import sequential_depth

    # 45 steps of depth 3, an H-step rollout at 5 evaluations (every 10 and the last).
    assert sequential_depth(gj.collocation(), 16) == 45 * 3 + 5 * 16
    # multipliers every 5 from the start: 12 updates in 60 steps, one call each.
    assert sequential_depth(gj.collocation(iterations=60, multiplier_every=5), 16) == 60 * 3 + 6 * 16 + 12
    assert sequential_depth(gj.collocation(iterations=60, multiplier_every=5, multiplier_start=0.5), 16) == 60 * 3 + 6 * 16 + 6


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        (dict(iterations=0), r"iterations must be >= 1; got 0"),
        (dict(num_particles=1.5), r"num_particles must be an int; got 1.5"),
        (dict(penalty=0.0), r"penalty"),
        (dict(multiplier_every=-1), r"multiplier_every must be >= 0; got -1"),
        (dict(multiplier_start=1.5), r"multiplier_start must be in \[0, 1\] \(a fraction of the budget\); got 1.5"),
    ],
)
def test_bad_hyper_parameters_are_named(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        gj.collocation(**kwargs)
