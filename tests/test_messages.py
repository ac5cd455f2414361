"""One place per public error message: each names the argument, what was expected and
what arrived, and it is raised before anything is traced into XLA.

``CASES`` is the table (id, call, exception type, regex); the few checks that are not a
single call/message pair follow it."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import grasp_jax as gj
from grasp_jax.models import train as train_lib
from grasp_jax.models.networks import make_encoder
from grasp_jax.models.world_model import features, features_to_obs


def _dyn(p, s, a):
    return s + a


P = gj.Problem(_dyn, horizon=3, action_dim=2)
S0, G = jnp.zeros(2), jnp.ones(2)
KEY = jax.random.key(0)
CEM = gj.cem(iterations=1, num_samples=4, num_elites=2)
BPTT = gj.bptt(iterations=1)


def _plan(**kw):
    args = dict(planner=CEM, problem=P, params=None, init_state=S0, goal=G, key=KEY)
    args.update(kw)
    return gj.plan(**args)


def _batch(**kw):
    args = dict(planner=CEM, problem=P, params=None, init_states=jnp.zeros((2, 2)), goals=jnp.ones((2, 2)), key=KEY)
    args.update(kw)
    return gj.plan_batch(**args)


def _compile_batch(**kw):
    return gj.compile_plan_batch(CEM, P, None, jnp.zeros((2, 2)), jnp.ones((2, 2)), KEY, **kw)


def _mpc(**kw):
    return gj.mpc.mpc(CEM, P, None, lambda e, a: e + a, lambda e: e, S0, G, KEY, **kw)


def _tiny_data():
    return dict(obs=np.zeros((2, 5, 2), np.float32), actions=np.zeros((2, 4, 2), np.float32))


_WARM = r"warm must be a state from planner\.shift\(problem, result\.final_state, k\) of the same planner"

CASES = [
    # (id, call, exception, pattern: the argument ... got ...)
    # --- gj.Problem
    ("dynamics not callable", lambda: gj.Problem(3, horizon=2, action_dim=1), TypeError,
     r"dynamics must be callable dynamics\(params, state, action\); got int"),
    ("horizon type", lambda: gj.Problem(_dyn, horizon=2.0, action_dim=1), TypeError, r"horizon must be an int; got 2\.0 \(float\)"),
    ("horizon >= 1", lambda: gj.Problem(_dyn, horizon=0, action_dim=1), ValueError, r"horizon must be >= 1; got 0"),
    ("action_dim >= 1", lambda: gj.Problem(_dyn, horizon=2, action_dim=-1), ValueError, r"action_dim must be >= 1; got -1"),
    ("bound shape", lambda: gj.Problem(_dyn, horizon=2, action_dim=2, action_low=[0, 0, 0]), ValueError,
     r"action_low must be a scalar or have shape \[action_dim\]=\(2,\); got shape \(3,\)"),
    ("bound finite", lambda: gj.Problem(_dyn, horizon=2, action_dim=1, action_high=np.inf), ValueError,
     r"action_high must be finite.*got \[inf\]"),
    ("low < high", lambda: gj.Problem(_dyn, horizon=2, action_dim=1, action_low=1.0, action_high=0.0), ValueError,
     r"action_low must be < action_high in every dimension; dimension 0 has action_low=1\.0 >= action_high=0\.0"),
    ("cost callable", lambda: gj.Problem(_dyn, horizon=2, action_dim=1, cost=3), TypeError, r"cost must be None or callable; got int"),
    # --- gj.plan: arguments
    ("planner type", lambda: _plan(planner="grasp"), TypeError, r"planner must be a grasp_jax\.Planner.*got str"),
    ("problem type", lambda: _plan(problem=None), TypeError, r"problem must be a grasp_jax\.Problem; got NoneType"),
    ("init_state array", lambda: _plan(init_state=object()), TypeError, r"init_state must (be an array|have a floating dtype)"),
    ("init_state dtype", lambda: _plan(init_state=jnp.zeros(2, jnp.int32)), TypeError,
     r"init_state must have a floating dtype.*got dtype int32"),
    ("init_state rank", lambda: _plan(init_state=jnp.zeros((1, 2))), ValueError, r"init_state must be a 1-D state vector \[S\]; got shape \(1, 2\)"),
    ("init_state finite", lambda: _plan(init_state=jnp.array([0.0, jnp.nan])), ValueError,
     r"init_state must be finite; it contains NaN or Inf"),
    ("goal shape", lambda: _plan(goal=jnp.ones(3)), ValueError, r"goal must have shape init_state\.shape \[S\]=\(2,\); got shape \(3,\)"),
    ("goal finite", lambda: _plan(goal=jnp.array([jnp.inf, 0.0])), ValueError, r"goal must be finite; it contains NaN or Inf"),
    ("init_actions shape", lambda: _plan(init_actions=jnp.zeros((2, 2))), ValueError,
     r"init_actions must have shape \[horizon, action_dim\]=\(3, 2\); got shape \(2, 2\)"),
    ("key", lambda: _plan(key=0), TypeError, r"key must be a single PRNG key.*got int"),
    ("tolerance", lambda: _plan(tolerance=-1.0), ValueError, r"tolerance must be None or a cost >= 0; got -1\.0"),
    ("iterations", lambda: _plan(iterations=0), ValueError, r"iterations must be >= 1; got 0"),
    ("warm structure", lambda: _plan(planner=BPTT, warm=jnp.zeros(3)), ValueError,
     _WARM + r" \(bptt\) and problem; expected BpttWarm\(.*\), got float32\[3\]"),
    ("warm for a planner without memory", lambda: _plan(warm=jnp.zeros(3)), ValueError,
     _WARM + r" \(cem\) and problem; expected None \(this planner restarts from init_actions\), got float32\[3\]"),
    # --- gj.plan: the world model and cost, traced abstractly
    ("dynamics fails", lambda: _plan(problem=gj.Problem(lambda p, s, a: s @ a[:1], horizon=2, action_dim=2)), TypeError,
     r"dynamics\(params, state \[2\], action \[2\]\) failed when traced"),
    ("dynamics shape", lambda: _plan(problem=gj.Problem(lambda p, s, a: jnp.concatenate([s, a]), horizon=2, action_dim=2)),
     ValueError, r"dynamics must return next_state with the state's shape \(2,\); got \(4,\)"),
    ("dynamics floating", lambda: _plan(problem=gj.Problem(lambda p, s, a: (s > 0), horizon=2, action_dim=2)), TypeError,
     r"dynamics must return a floating next_state; got dtype bool"),
    ("dynamics dtype", lambda: _plan(problem=gj.Problem(lambda p, s, a: (s + a).astype(jnp.float16), horizon=2, action_dim=2)),
     TypeError, r"dynamics must return next_state with the state's dtype float32 \(init_state\); got dtype float16"),
    ("cost scalar", lambda: _plan(problem=gj.Problem(_dyn, horizon=2, action_dim=2, cost=lambda s, a, g: s[-1])), ValueError,
     r"cost\(states, actions, goal\) must return a scalar; got shape \(2,\)"),
    # --- gj.plan_batch / gj.compile_plan_batch
    ("batch init_states rank", lambda: _batch(init_states=jnp.zeros(2)), ValueError, r"init_states must have shape \[B, S\]; got \(2,\)"),
    ("batch empty", lambda: _batch(init_states=jnp.zeros((0, 2)), goals=jnp.zeros((0, 2))), ValueError,
     r"init_states must hold at least one state; got shape \(0, 2\)"),
    ("batch goals", lambda: _batch(goals=jnp.ones((3, 2))), ValueError,
     r"goals must have a leading batch dimension B=2 \(from init_states\); got shape \(3, 2\)"),
    ("batch init_states finite", lambda: _batch(init_states=jnp.zeros((3, 2)).at[1, 0].set(jnp.nan), goals=jnp.zeros((3, 2))),
     ValueError, r"init_states must be finite; items \[1\] contain NaN or Inf"),
    ("batch goals finite", lambda: _batch(goals=jnp.array([[0.0, 0.0], [jnp.inf, 0.0]])), ValueError,
     r"goals must be finite; items \[1\] contain NaN or Inf"),
    ("batch iterations", lambda: _batch(iterations=0), ValueError, r"iterations must be >= 1; got 0"),
    ("batch warm batch", lambda: _batch(planner=BPTT, warm=jnp.zeros((3, 3))), ValueError,
     r"warm must have a leading batch dimension B=2 \(from init_states\); got shape \(3, 3\)"),
    ("batch warm structure", lambda: _batch(planner=BPTT, warm=jnp.zeros((2, 3))), ValueError,
     _WARM + r" \(bptt\) and problem with a leading batch axis; expected BpttWarm\(.*\), got float32\[3\]"),
    ("chunk_size", lambda: _batch(chunk_size=0), ValueError, r"chunk_size must be None or an int >= 1; got 0"),
    ("mesh string", lambda: _batch(mesh="all"), ValueError, r"mesh must be 'auto', None or a jax\.sharding\.Mesh; got 'all'"),
    ("mesh type", lambda: _batch(mesh=3), TypeError, r"mesh must be 'auto', None or a jax\.sharding\.Mesh; got int"),
    ("mesh axis", lambda: _batch(mesh=jax.sharding.Mesh(np.array(jax.devices()[:1]), ("x",))), ValueError,
     r"axis_name 'batch' is not an axis of mesh"),
    ("compile_plan_batch keyword", lambda: _compile_batch(bogus=1), TypeError,
     r"compile_plan_batch got unexpected keyword arguments \['bogus'\]; expected some of \('warm', 'iterations', "),
    # --- planner factories
    ("grasp positional", lambda: gj.grasp(300), TypeError, r"grasp\(\) takes 0 positional arguments but 1 was given"),
    ("grasp iterations", lambda: gj.grasp(iterations=0), ValueError, r"iterations must be >= 1; got 0"),
    ("grasp num_particles", lambda: gj.grasp(num_particles=0), ValueError, r"num_particles must be >= 1; got 0"),
    ("grasp state_lr", lambda: gj.grasp(state_lr=-1.0), ValueError, r"state_lr must be a finite number > 0; got -1\.0"),
    ("grasp noise_scale type", lambda: gj.grasp(noise_scale="big"), ValueError, r"noise_scale must be a number; got 'big'"),
    ("grasp sync", lambda: gj.grasp(sync="bptt"), TypeError,
     r"sync must be None or a grasp_jax\.Planner \(e\.g\. gj\.bptt\(iterations=25\)\); got str"),
    ("bptt learning_rate", lambda: gj.bptt(learning_rate=0.0), ValueError, r"learning_rate must be a finite number > 0; got 0\.0"),
    ("bptt optimizer", lambda: gj.bptt(optimizer=3), TypeError, r"optimizer must be None or an optax\.GradientTransformation; got int"),
    ("cem num_samples type", lambda: gj.cem(num_samples=2.5), ValueError, r"num_samples must be an int; got 2\.5"),
    ("cem num_elites", lambda: gj.cem(num_elites=300), ValueError, r"num_elites must be >= 1 and <= 256; got 300"),
    ("cem momentum", lambda: gj.cem(momentum=1.0), ValueError, r"momentum must be in \[0, 1\); got 1\.0"),
    ("mppi momentum", lambda: gj.mppi(momentum=-0.1), ValueError, r"momentum must be a finite number >= 0; got -0\.1"),
    ("mppi temperature", lambda: gj.mppi(temperature=0.0), ValueError, r"temperature must be a finite number > 0; got 0\.0"),
    ("random_shooting num_samples type", lambda: gj.random_shooting(num_samples=2.5), ValueError, r"num_samples must be an int; got 2\.5"),
    ("multistart planner", lambda: gj.multistart(object(), 2), TypeError,
     r"planner must be a grasp_jax\.Planner \(e\.g\. gj\.bptt\(\)\); got object"),
    ("multistart num_starts", lambda: gj.multistart(gj.bptt(), 0), ValueError, r"num_starts must be >= 1; got 0"),
    ("multistart spread", lambda: gj.multistart(gj.bptt(), 2, spread=2.0), ValueError, r"spread must be a number in \[0, 1\]; got 2\.0"),
    ("multistart spread negative", lambda: gj.multistart(gj.bptt(), 2, spread=-0.5), ValueError,
     r"spread must be a number in \[0, 1\]; got -0\.5"),
    # --- gj.mpc
    ("mpc replans", lambda: _mpc(replans=0, execute=1), ValueError, r"replans must be >= 1; got 0"),
    ("mpc execute", lambda: _mpc(replans=1, execute=4), ValueError, r"execute must be >= 1 and <= 3; got 4"),
    ("mpc_host_batch episodes", lambda: gj.mpc.mpc_host_batch(CEM, P, None, [gj.envs.make("wall")] * 2, np.zeros((3, 2)),
                                                              np.ones((2, 2)), KEY, replans=1), ValueError,
     r"start_obs and goal_obs must have a leading axis of len\(envs\) = 2; got \(3, 2\) and \(2, 2\)"),
    # --- environments
    ("envs.make", lambda: gj.envs.make("cartpole"), ValueError, r"envs\.make: name must be one of .*got 'cartpole'"),
    ("env action shape", lambda: (lambda e: (e.reset(0), e.step([0.0])))(gj.envs.make("wall")), ValueError,
     r"wall\.step: action must have shape \[action_dim\]=\(2,\); got \(1,\)"),
    ("env action finite", lambda: (lambda e: (e.reset(0), e.step([np.nan, 0.0])))(gj.envs.make("wall")), ValueError,
     r"wall\.step: action must be finite; got \[nan, 0\.0\]"),
    ("sample_task steps", lambda: gj.envs.make("wall").sample_task(0, steps=-1), ValueError,
     r"sample_task: steps must be a non-negative int or None; got -1"),
    ("wall set_state", lambda: gj.envs.make("wall").set_state([32.0, 10.0]), ValueError,
     r"wall\.set_state: obs must be a free position.*got \[32\.0, 10\.0\]"),
    # --- world models
    ("models.pretrained", lambda: gj.models.pretrained("cartpole"), ValueError, r"models\.pretrained: name must be one of .*got 'cartpole'"),
    ("WorldModel.load", lambda: gj.models.WorldModel.load("/nonexistent/model"), FileNotFoundError,
     r"WorldModel\.load: no file '/nonexistent/model\.json'"),
    ("encode state shape", lambda: gj.models.pretrained("wall").encode(np.zeros(3)), ValueError,
     r"wall\.encode: obs must have shape \[\.\.\., obs_dim\] giving 2 features; got shape \(3,\)"),
    ("encode image shape", lambda: gj.models.pretrained("wall-pixels").encode(np.zeros((32, 32, 3))), ValueError,
     r"wall-pixels\.encode: obs must be images \[\.\.\., 64, 64, 3\]; got shape \(32, 32, 3\)"),
    ("features kind", lambda: features("polar", jnp.zeros(2)), ValueError, r"features: kind must be one of .*got 'polar'"),
    ("features_to_obs kind", lambda: features_to_obs("polar", jnp.zeros(2)), ValueError, r"features_to_obs: kind must be one of .*got 'polar'"),
    ("encoder kind", lambda: make_encoder("vit", 4), ValueError, r"make_encoder: kind must be 'conv' or 'keypoints'; got 'vit'"),
    ("encoder latent", lambda: make_encoder("keypoints", 5), ValueError, r"make_encoder: a keypoint encoder needs an even latent_dim; got 5"),
    ("train windows", lambda: train_lib._windows(_tiny_data(), 2, 3), ValueError,
     r"unroll: windows of 3 model steps x frame_skip 2 must fit in the episodes' 4 steps; got 6 steps"),
]


@pytest.mark.parametrize("call, exc, pattern", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_error_message(call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call()


def test_case_ids_are_unique():
    ids = [c[0] for c in CASES]
    assert len(ids) == len(set(ids))


def test_errors_are_raised_before_tracing():
    """A bad call never reaches XLA: with bad arrays the world model is not even traced;
    with a bad key, tolerance or budget it is traced once, abstractly (``jax.eval_shape``
    checks the model's output shape), and never compiled or run."""
    traced = []

    def dyn(p, s, a):
        traced.append(type(s).__name__)
        return s + a

    problem = gj.Problem(dyn, horizon=2, action_dim=2)
    for bad, max_traces in ((dict(init_state=jnp.zeros(3)), 0), (dict(goal=jnp.ones(3)), 0),
                            (dict(key=0), 1), (dict(tolerance=-1.0), 1), (dict(iterations=0), 1)):
        traced.clear()
        args = dict(init_state=S0, goal=G, key=KEY)
        args.update(bad)
        with pytest.raises((ValueError, TypeError)):
            gj.plan(CEM, problem, None, **args)
        assert len(traced) <= max_traces, (bad, traced)
        assert all(t != "ArrayImpl" for t in traced)  # never called on concrete arrays


def test_a_model_detached_from_the_action_warns_once_for_gradient_planners():
    """A JAX simulator that stop-gradients its transitions: BPTT/GRASP would silently return
    their initial plans. The drivers warn once per problem, with the fix; sampling planners
    (which do not need the gradient) and differentiable models do not warn."""
    import warnings

    def detached(params, s, a):
        return s + jax.lax.stop_gradient(0.1 * a)

    problem = gj.Problem(detached, horizon=3, action_dim=2)
    s0, goal = jnp.zeros(2), jnp.ones(2)
    with pytest.warns(RuntimeWarning, match=r"all-zero gradient with respect to the action .*jax\.lax\.stop_gradient.*gj\.cem\(\)"):
        gj.plan(gj.bptt(iterations=2), problem, None, s0, goal, KEY)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gj.plan(gj.bptt(iterations=2), problem, None, s0, goal, KEY)  # once per problem
        fresh = gj.Problem(detached, horizon=4, action_dim=2)
        gj.plan(gj.cem(iterations=2, num_samples=8, num_elites=2), fresh, None, s0, goal, KEY)
        gj.plan(gj.bptt(iterations=2), gj.Problem(lambda p, s, a: s + a, horizon=3, action_dim=2), None, s0, goal, KEY)
    with pytest.warns(RuntimeWarning, match="cannot move its actions"):
        gj.plan_batch(gj.multistart(gj.bptt(iterations=2), 2), fresh, None, jnp.zeros((2, 2)), jnp.ones((2, 2)), KEY)


def test_plan_under_jit_or_vmap_over_the_key_alone():
    """Params and states closed over as constants, only the key traced (seeds under vmap, a
    jitted closure): the gradient check runs on the constants instead of failing on a traced
    bool, results equal the eager call, and a model closing over a traced value is skipped."""
    import warnings

    planner = gj.bptt(iterations=3)
    problem = gj.Problem(lambda p, s, a: s + p * a, horizon=3, action_dim=2)
    params, s0, goal = jnp.float32(0.5), jnp.zeros(2), jnp.ones(2)
    eager = gj.plan(planner, problem, params, s0, goal, KEY)
    jitted = jax.jit(lambda k: gj.plan(planner, problem, params, s0, goal, k))(KEY)
    chex.assert_trees_all_close(jitted.actions, eager.actions, rtol=1e-6)
    keys = jax.random.split(KEY, 2)
    seeds = jax.vmap(lambda k: gj.plan(planner, problem, params, s0, goal, k).actions)(keys)
    chex.assert_trees_all_close(seeds[0], gj.plan(planner, problem, params, s0, goal, keys[0]).actions, rtol=1e-6)
    batch = jax.jit(lambda k: gj.plan_batch(planner, problem, params, jnp.zeros((2, 2)), jnp.ones((2, 2)), k))(KEY)
    chex.assert_shape(batch.actions, (2, 3, 2))

    def detached(p, s, a):
        return s + jax.lax.stop_gradient(p * a)

    with pytest.warns(RuntimeWarning, match="cannot move its actions"):  # still checked inside the jit
        jax.jit(lambda k: gj.plan(planner, gj.Problem(detached, horizon=3, action_dim=2), params, s0, goal, k))(KEY)

    def closes_over(scale, k):  # the model's own constant is traced: nothing concrete to check
        traced = gj.Problem(lambda p, s, a: s + scale * a, horizon=3, action_dim=2)
        return gj.plan(planner, traced, None, s0, goal, k).actions

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = jax.jit(closes_over)(jnp.float32(0.5), KEY)
    chex.assert_trees_all_close(out, eager.actions, rtol=1e-6)
