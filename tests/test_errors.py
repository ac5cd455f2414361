"""Bad input fails fast, before tracing, with a message naming the argument and the
expected vs. received value. One test per message."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import grasp_jax as gj
from conftest import INTEGRATOR, integrator

S0 = jnp.zeros(2, jnp.float32)
GOAL = jnp.ones(2, jnp.float32)
PLANNER = gj.bptt(iterations=2)


def call(**overrides):
    args = dict(planner=PLANNER, problem=INTEGRATOR, params=0.25, init_state=S0, goal=GOAL, key=jax.random.key(0))
    args.update(overrides)
    return gj.plan(**args)


@pytest.mark.parametrize(
    "kwargs, exc, pattern",
    [
        (dict(horizon=0), ValueError, r"horizon must be >= 1; got 0"),
        (dict(horizon=2.5), TypeError, r"horizon must be an int; got 2.5"),
        (dict(action_dim=0), ValueError, r"action_dim must be >= 1; got 0"),
        (dict(action_low=1.0, action_high=-1.0), ValueError, r"action_low must be < action_high.*dimension 0"),
        (dict(action_low=(0.0, 0.0, 0.0)), ValueError, r"action_low must be a scalar or have shape \[action_dim\]=\(2,\); got shape \(3,\)"),
        (dict(action_high=np.inf), ValueError, r"action_high must be finite"),
        (dict(dynamics="not a function"), TypeError, r"dynamics must be callable"),
        (dict(cost=3), TypeError, r"cost must be None or callable"),
    ],
)
def test_problem_rejects(kwargs, exc, pattern):
    args = dict(dynamics=integrator, horizon=4, action_dim=2)
    args.update(kwargs)
    with pytest.raises(exc, match=pattern):
        gj.Problem(**args)


def test_goal_shape_mismatch():
    with pytest.raises(ValueError, match=r"goal must have shape init_state.shape \[S\]=\(2,\); got shape \(3,\)"):
        call(goal=jnp.ones(3))


def test_init_state_not_vector():
    with pytest.raises(ValueError, match=r"init_state must be a 1-D state vector \[S\]; got shape \(1, 2\)"):
        call(init_state=jnp.zeros((1, 2)))


def test_init_state_integer_dtype():
    with pytest.raises(TypeError, match=r"init_state must have a floating dtype.*got dtype int32"):
        call(init_state=jnp.zeros(2, jnp.int32))


def test_init_state_nonfinite():
    with pytest.raises(ValueError, match=r"init_state must be finite; it contains NaN or Inf"):
        call(init_state=jnp.array([0.0, jnp.nan]))


def test_goal_nonfinite():
    with pytest.raises(ValueError, match=r"goal must be finite"):
        call(goal=jnp.array([jnp.inf, 0.0]))


def test_wrong_init_actions_shape():
    with pytest.raises(ValueError, match=r"init_actions must have shape \[horizon, action_dim\]=\(8, 2\); got shape \(8, 3\)"):
        call(init_actions=jnp.zeros((8, 3)))


def test_wrong_init_states_shape():
    with pytest.raises(ValueError, match=r"init_states must have shape \[horizon - 1, S\]=\(7, 2\); got shape \(8, 2\)"):
        call(init_states=jnp.zeros((8, 2)))


def test_dynamics_wrong_output_shape():
    problem = gj.Problem(lambda p, s, a: jnp.concatenate([s, a]), horizon=4, action_dim=2)
    with pytest.raises(ValueError, match=r"dynamics must return next_state with the state's shape \(2,\); got \(4,\)"):
        call(problem=problem)


def test_dynamics_that_fails_to_trace():
    problem = gj.Problem(lambda p, s, a: s @ jnp.ones((3, 3)), horizon=4, action_dim=2)
    with pytest.raises(TypeError, match=r"dynamics\(params, state \[2\], action \[2\]\) failed"):
        call(problem=problem)


def test_custom_cost_must_be_scalar():
    problem = gj.Problem(integrator, horizon=4, action_dim=2, cost=lambda s, a, g: s[-1])
    with pytest.raises(ValueError, match=r"cost\(states, actions, goal\) must return a scalar; got shape \(2,\)"):
        call(problem=problem)


def test_bad_key():
    with pytest.raises(TypeError, match=r"key must be a single PRNG key"):
        call(key=0)


def test_bad_planner():
    with pytest.raises(TypeError, match=r"planner must be a grasp_jax.Planner.*got str"):
        call(planner="grasp")


def test_bad_problem():
    with pytest.raises(TypeError, match=r"problem must be a grasp_jax.Problem; got dict"):
        call(problem={})


def test_negative_tolerance():
    with pytest.raises(ValueError, match=r"tolerance must be None or a cost >= 0; got -1"):
        call(tolerance=-1.0)


@pytest.mark.parametrize(
    "factory, kwargs, pattern",
    [
        (gj.grasp, dict(iterations=0), r"iterations must be >= 1; got 0"),
        (gj.grasp, dict(sync="adam"), r"sync must be one of \('bptt', 'cem', 'none'\); got 'adam'"),
        (gj.grasp, dict(state_lr=-1.0), r"state_lr must be a finite number > 0; got -1.0"),
        (gj.grasp, dict(num_particles=0), r"num_particles must be >= 1; got 0"),
        (gj.grasp, dict(cem_sync_elites=100), r"cem_sync_elites must be >= 1 and <= 64; got 100"),
        (gj.bptt, dict(learning_rate=0.0), r"learning_rate must be a finite number > 0; got 0.0"),
        (gj.cem, dict(num_elites=300), r"num_elites must be >= 1 and <= 256; got 300"),
        (gj.cem, dict(momentum=1.0), r"momentum must be in \[0, 1\); got 1.0"),
        (gj.mppi, dict(temperature=0.0), r"temperature must be a finite number > 0; got 0.0"),
        (gj.random_shooting, dict(num_samples=2.5), r"num_samples must be an int; got 2.5"),
    ],
)
def test_factory_rejects(factory, kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        factory(**kwargs)


def test_factory_rejects_positional():
    with pytest.raises(TypeError):
        gj.grasp(300)


def test_batch_leading_dim_mismatch():
    with pytest.raises(ValueError, match=r"goals must have a leading batch dimension B=3 \(from init_states\); got shape \(2, 2\)"):
        gj.plan_batch(PLANNER, INTEGRATOR, 0.25, jnp.zeros((3, 2)), jnp.zeros((2, 2)), jax.random.key(0))


def test_batch_init_states_rank():
    with pytest.raises(ValueError, match=r"init_states must have shape \[B, S\]; got \(2,\)"):
        gj.plan_batch(PLANNER, INTEGRATOR, 0.25, jnp.zeros(2), jnp.zeros(2), jax.random.key(0))


def test_batch_nonfinite_item_named():
    s0 = jnp.zeros((3, 2)).at[1, 0].set(jnp.nan)
    with pytest.raises(ValueError, match=r"init_states must be finite; items \[1\] contain NaN or Inf"):
        gj.plan_batch(PLANNER, INTEGRATOR, 0.25, s0, jnp.zeros((3, 2)), jax.random.key(0))


def test_batch_bad_chunk_size():
    with pytest.raises(ValueError, match=r"chunk_size must be None or an int >= 1; got 0"):
        gj.plan_batch(PLANNER, INTEGRATOR, 0.25, jnp.zeros((3, 2)), jnp.zeros((3, 2)), jax.random.key(0), chunk_size=0)


def test_batch_bad_mesh():
    with pytest.raises(ValueError, match=r"mesh must be 'auto', None or a jax.sharding.Mesh; got 'all'"):
        gj.plan_batch(PLANNER, INTEGRATOR, 0.25, jnp.zeros((3, 2)), jnp.zeros((3, 2)), jax.random.key(0), mesh="all")
