"""Reference environments and world models: step / success / render, JAX purity of Wall,
save/load round trip, a tiny training run whose loss falls, and the shipped models."""

from __future__ import annotations

import json
import os
from pathlib import Path

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import grasp_jax as gj
from grasp_jax.envs import wall
from grasp_jax.models import train as train_lib

# --------------------------------------------------------------------------- Wall (JAX)


def test_wall_step_blocks_the_wall_and_passes_the_door():
    xy = jnp.array([25.0, 10.0])  # left room, below the door
    for _ in range(20):
        xy = wall.step(xy, jnp.array([1.0, 0.0]))
    assert float(xy[0]) <= wall.WALL_LEFT - wall.AGENT_RADIUS + 1e-4  # stopped by the wall
    xy = jnp.array([25.0, 0.5 * (wall.DOOR_LOW + wall.DOOR_HIGH)])  # level with the door
    for _ in range(10):
        xy = wall.step(xy, jnp.array([1.0, 0.0]))
    assert float(xy[0]) > wall.WALL_RIGHT  # through the door
    assert int(wall.room(xy)) == 1


def test_wall_step_moves_at_most_max_step_and_stays_free():
    keys = jax.random.split(jax.random.PRNGKey(0), 256)
    xy = jax.vmap(wall.sample_free)(keys)
    a = jax.random.uniform(jax.random.PRNGKey(1), (256, 2), minval=-1, maxval=1)
    nxt = jax.vmap(wall.step)(xy, a)
    assert float(jnp.max(jnp.linalg.norm(nxt - xy, axis=-1))) <= wall.MAX_STEP * np.sqrt(2) + 1e-4
    assert bool(jnp.all(jax.vmap(wall.is_free)(nxt)))


class WallVariantsTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_step_and_render(self):
        xy = jnp.array([[10.0, 10.0], [40.0, 50.0], [31.0, 45.0]])
        a = jnp.array([[1.0, 0.5], [-1.0, -1.0], [0.3, 0.0]])
        step = self.variant(wall.step)
        batched = jax.vmap(step)(xy, a)
        for i in range(3):
            np.testing.assert_allclose(step(xy[i], a[i]), batched[i], atol=1e-5)
        img = self.variant(lambda p: wall.render_float(p, size=32))(xy[0])
        assert img.shape == (32, 32, 3)
        np.testing.assert_allclose(wall.locate_agent(img), xy[0], atol=1.0)

    @chex.variants(with_jit=True, without_jit=True)
    def test_render_is_differentiable(self):
        f = self.variant(jax.grad(lambda p: jnp.sum(wall.render_float(p, size=32)[..., 0])))
        g = f(jnp.array([12.0, 20.0]))
        assert bool(jnp.all(jnp.isfinite(g))) and float(jnp.abs(g).sum()) > 0


def test_wall_collect_is_on_device_and_free():
    obs, actions = wall.collect(jax.random.PRNGKey(0), 8, 30)
    assert obs.shape == (8, 31, 2) and actions.shape == (8, 30, 2)
    assert bool(jnp.all(jax.vmap(jax.vmap(wall.is_free))(obs)))
    assert float(jnp.max(jnp.abs(actions))) <= 1.0


def test_wall_env_interface():
    env = gj.envs.make("wall")
    start, goal = env.sample_task(3)
    np.testing.assert_allclose(start, env.reset(3))
    assert int(wall.room(jnp.asarray(start))) != int(wall.room(jnp.asarray(goal)))  # through the door
    obs = env.step([1.0, 0.0])
    assert obs.shape == (2,)
    assert env.is_success(goal, goal) and not env.is_success(start, goal)
    assert env.is_success(goal + np.array([4.4, 0.0]), goal) and not env.is_success(goal + np.array([4.6, 0.0]), goal)
    img = env.render()
    assert img.dtype == np.uint8 and img.shape == (64, 64, 3)
    small = gj.envs.make("wall", image_size=32)
    small.set_state(obs)
    np.testing.assert_array_equal(env.render(32), small.render())  # render(size): as an env of that image_size
    with pytest.raises(ValueError, match=r"wall\.render: size must be None or an int >= 8; got 4"):
        env.render(4)
    start, goal = env.sample_task(3, steps=10)
    np.testing.assert_allclose(env.step([0.0, 0.0]), start)  # left at start
    assert np.linalg.norm(goal - start) <= 10 * wall.MAX_STEP * np.sqrt(2)


# --------------------------------------------------------------------------- host simulators


def test_pusht_env():
    pytest.importorskip("gym_pusht")
    env = gj.envs.make("pusht")
    start, goal = env.sample_task(0, steps=10)
    assert start.shape == (7,) and goal.shape == (7,)
    np.testing.assert_allclose(start, env.reset(0))
    np.testing.assert_allclose(env._obs, start)  # left at start
    obs = env.step([30.0, 0.0])
    assert obs[0] > start[0]  # the agent moves towards its target
    assert env.is_success(goal, goal)
    moved = goal.copy()
    moved[4] += np.pi / 10
    assert env.is_success(moved, goal)
    moved[4] += np.pi / 32
    assert not env.is_success(moved, goal)  # angle beyond pi/9
    assert env.coverage(goal, goal) == pytest.approx(1.0)
    img = env.render()
    assert img.dtype == np.uint8 and img.shape == (96, 96, 3)
    # the drawn outline of the block (plots) is pymunk's own: every vertex of its two boxes
    block = env._u.block
    corners = np.array([tuple(block.local_to_world(v)) for shape in block.shapes for v in shape.get_vertices()])
    outline = gj.envs.pusht.tee_outline(obs)
    assert outline.shape == (8, 2)
    assert max(np.min(np.linalg.norm(outline - c, axis=1)) for c in corners) < 1e-6


def test_pusht_render_states_is_the_package_pixel_observation():
    """render_states(obs) is exactly the frame gym-pusht draws as its pixel observation when
    the simulator is in state obs (checked after steps that turn and move the block)."""
    pytest.importorskip("gym_pusht")
    from grasp_jax.envs.pusht import PushTEnv, render_states

    env = PushTEnv(render_size=32)
    frames, states = [], []
    rng = np.random.default_rng(0)
    for seed in range(3):
        obs = env.reset(seed)
        for _ in range(6 + 3 * seed):
            obs, _ = env.step(env.exploration_action(rng, obs, None)[0]), None
        states.append(obs)
        frames.append(env._u._render(visualize=False))  # the package's obs_type="pixels" frame
    states = np.stack(states)
    assert not np.allclose(states[:, 4], states[0, 4])  # the block turned: the angle is drawn too
    drawn = render_states(states.reshape(3, 1, 7), 32)
    assert drawn.shape == (3, 1, 32, 32, 3) and drawn.dtype == np.uint8
    np.testing.assert_array_equal(drawn[:, 0], np.stack(frames))
    np.testing.assert_array_equal(env._obs, states[-1])  # env's own state untouched
    # env.render(size): that frame of the env's current state (what pusht-pixels encodes)
    np.testing.assert_array_equal(env.render(32), frames[-1])
    # the visualisation below gym-pusht's 96 pixels after a step (its action cross has thickness 0 there,
    # which OpenCV refuses): the same board, the cross left out
    img = env.render()
    assert img.shape == (32, 32, 3) and img.dtype == np.uint8
    np.testing.assert_array_equal(img, frames[-1])
    with pytest.raises(ValueError, match=r"obs must be finite Push-T states \[\.\.\., >=5\]; got shape \(3, 4\)"):
        render_states(np.zeros((3, 4)))
    with pytest.raises(ValueError, match=r"render: size must be None or an int >= 8; got 2\.5"):
        env.render(2.5)


def test_pointmaze_env():
    pytest.importorskip("gymnasium_robotics")
    env = gj.envs.make("pointmaze")
    start, goal = env.sample_task(1)
    assert start.shape == (4,) and goal.shape == (4,)
    np.testing.assert_allclose(start, env.reset(1))
    obs = env.step([1.0, 0.0])
    assert obs[2] > start[2]  # pushed along +x
    assert env.is_success(goal, goal)
    assert env.is_success(goal + np.array([0.49, 0, 0, 0]), goal)
    assert not env.is_success(goal + np.array([0.51, 0, 0, 0]), goal)
    img = env.render()
    assert img.dtype == np.uint8 and img.shape == (64, 64, 3)
    assert env.render(32).shape == (32, 32, 3)
    free = env.free_cells()
    assert free.shape[1] == 2 and len(free) == int((env.maze_map != 1).sum())


# --------------------------------------------------------------------------- world models


def _tiny_config(**kw):
    base = dict(env="wall", episodes=24, length=20, steps=60, batch=32, unroll=2, hidden=32, depth=1, lr=3e-3)
    base.update(kw)
    return train_lib.TrainConfig(**base)


@pytest.mark.slow
def test_tiny_training_run_loss_falls_and_round_trips(tmp_path):
    config = _tiny_config()
    data = train_lib.collect("wall", config.episodes, config.length, seed=0)
    wm = train_lib.init_model("tiny", config, data)
    trained, log = train_lib.train(wm, data, config, log_every=10)
    assert len(log["loss"]) == 6
    assert log["loss"][-1] < 0.5 * log["loss"][0]
    errors = train_lib.prediction_error(trained, data, horizons=(1, 5))
    assert errors["1"]["position_error"] < errors["5"]["position_error"]
    # beside it, the error of predicting that nothing moves: |last - first observation| of the same held-out windows
    _, val = train_lib._split(data, config.validation_fraction)
    for h in (1, 5):
        e, t = train_lib._windows(val, 1, h)
        obs = np.asarray(val["obs"])
        still = np.abs(obs[e, t + h] - obs[e, t]).mean(0)
        np.testing.assert_allclose(errors[str(h)]["persistence_obs_mae"], still, rtol=1e-5)

    trained.save(str(tmp_path / "tiny"))
    loaded = gj.models.load(str(tmp_path / "tiny"))
    assert loaded == trained  # config (hashable fields) equal
    z = loaded.encode(jnp.array([10.0, 20.0]))
    a = jnp.array([0.5, -0.5])
    np.testing.assert_allclose(loaded.dynamics(loaded.params, z, a), trained.dynamics(trained.params, z, a), atol=1e-6)
    np.testing.assert_allclose(loaded.decode(z), [10.0, 20.0], atol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("encoder", ["keypoints", "conv"])
def test_tiny_pixel_model_trains(encoder, tmp_path):
    config = _tiny_config(kind="pixel", latent_dim=4, batch=16, steps=60, image_size=32, lr=3e-3,
                          encoder=encoder, ae_steps=80, ae_batch=8)
    data = train_lib.collect("wall", 8, 10, seed=0)
    wm = train_lib.init_model("tiny-pixels", config, data)
    trained, log = train_lib.train(wm, data, config, log_every=10)
    assert log["autoencoder"]["loss"][-1] < log["autoencoder"]["loss"][0]  # phase 1: autoencoder
    assert log["loss"][-1] < log["loss"][0]  # phase 2: latent dynamics on the frozen encoder
    env = gj.envs.make("wall", image_size=32)
    env.reset(0)
    z = trained.encode(env.render())
    assert z.shape == (4,)
    assert trained.decode(z).shape == (32, 32, 3)
    trained.save(str(tmp_path / "px"))
    loaded = gj.models.WorldModel.load(str(tmp_path / "px"))
    assert loaded.encoder == encoder
    np.testing.assert_allclose(loaded.encode(env.render()), z, atol=1e-5)


def test_ensemble_dynamics_is_the_members_mean_and_accumulates_their_disagreement():
    """One step of EnsembleDynamics by hand: the next latent is the mean of the members'
    next latents, and z[-1] grows by the mean squared distance of the members from it."""
    from grasp_jax.models.networks import EnsembleDynamics, ResidualDynamics, WeightedGoalCost

    member = ResidualDynamics(latent_dim=3, action_dim=2, hidden=8, depth=1)
    dyn = EnsembleDynamics(member, members=3)
    params = dict(net=dyn.init(jax.random.key(0)), action_center=jnp.zeros(2), action_half_width=jnp.ones(2))
    # the output layers start at zero: perturb them so that the members differ
    params["net"] = jax.tree.map(lambda x: x + 0.1 * jax.random.normal(jax.random.key(1), x.shape), params["net"])
    assert dyn.latent_dim == 4 and dyn.extra_dims == 1
    z, a = jnp.array([0.5, -1.0, 2.0, 0.25]), jnp.array([0.3, -0.7])
    each = [member({**params, "net": jax.tree.map(lambda x, i=i: x[i], params["net"])}, z[:3], a) for i in range(3)]
    each = np.stack([np.asarray(e) for e in each])
    mean = each.mean(0)
    spread = np.mean(np.sum((each - mean) ** 2, -1))
    assert spread > 1e-4  # the members differ
    np.testing.assert_allclose(dyn(params, z, a), np.concatenate([mean, [0.25 + spread]]), rtol=1e-5, atol=1e-6)
    # batched, vmapped, jitted and eager calls agree; the goal cost charges z[-1] linearly
    zb, ab = jnp.stack([z, z + 0.1]), jnp.stack([a, -a])
    batched = dyn(params, zb, ab)
    np.testing.assert_allclose(batched[0], dyn(params, z, a), rtol=1e-6)
    np.testing.assert_allclose(jax.vmap(dyn, in_axes=(None, 0, 0))(params, zb, ab), batched, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(jax.jit(dyn.__call__)(params, zb, ab), batched, rtol=1e-6, atol=1e-7)
    cost = WeightedGoalCost((1.0, 0.0, 1.0), extra_weight=2.0)
    states = jnp.stack([z, jnp.array([1.0, 5.0, 3.0, 0.5])])
    np.testing.assert_allclose(cost(states, None, jnp.array([0.0, 0.0, 1.0, 0.0])), 1.0 + 4.0 + 2.0 * 0.5)


@pytest.mark.slow
def test_tiny_ensemble_trains_encodes_plans_and_round_trips(tmp_path):
    """An ensemble model end to end: each member's loss falls, observations encode with a
    zero disagreement entry, decode drops it, the default cost charges it, and save/load
    keeps the class, the members and the weight."""
    config = _tiny_config(ensemble=3, disagreement_weight=2.5)
    data = train_lib.collect("wall", config.episodes, config.length, seed=0)
    wm = train_lib.init_model("tiny-ens", config, data)
    trained, log = train_lib.train(wm, data, config, log_every=10)
    assert log["loss"][-1] < 0.5 * log["loss"][0]
    obs = jnp.array([10.0, 20.0])
    z = trained.encode(obs)
    assert z.shape == (3,) and float(z[-1]) == 0.0
    np.testing.assert_allclose(trained.decode(z), obs, rtol=1e-5)
    problem = trained.problem(horizon=4)
    assert problem.cost.extra_weight == 2.5 and trained.problem(4, disagreement=0.0).cost.extra_weight == 0.0
    result = gj.plan(gj.grasp(iterations=6, sync_every=3), problem, trained.params, z, trained.encode(obs + 3.0),
                     jax.random.key(0))
    assert float(result.states[-1, -1]) > 0.0  # the plan collected some disagreement
    errors = train_lib.prediction_error(trained, data, horizons=(1,))
    assert np.isfinite(errors["1"]["position_error"])
    trained.save(str(tmp_path / "ens"))
    loaded = gj.models.load(str(tmp_path / "ens"))
    assert loaded == trained and loaded.dynamics.members == 3 and loaded.disagreement_weight == 2.5
    np.testing.assert_allclose(loaded.dynamics(loaded.params, z, jnp.ones(2)), trained.dynamics(trained.params, z, jnp.ones(2)))
    with pytest.raises(ValueError, match="disagreement needs an ensemble"):
        gj.models.load(str(tmp_path / "ens")).replace(dynamics=trained.dynamics.member).problem(4, disagreement=1.0)
    with pytest.raises(ValueError, match="disagreement must be a finite weight >= 0; got -1.0"):
        trained.problem(4, disagreement=-1.0)
    with pytest.raises(ValueError, match="disagreement applies to the default cost only"):
        trained.problem(4, cost=problem.cost, disagreement=1.0)
    record = json.loads((tmp_path / "ens.json").read_text())
    record["config"]["dynamics_class"] = "NoSuchDynamics"
    (tmp_path / "bad.json").write_text(json.dumps(record))
    (tmp_path / "bad.msgpack").write_bytes((tmp_path / "ens.msgpack").read_bytes())
    with pytest.raises(ValueError, match="dynamics_class 'NoSuchDynamics'; expected one of"):
        gj.models.load(str(tmp_path / "bad"))


def test_ensemble_and_goal_cost_reject_bad_sizes():
    from grasp_jax.models.networks import EnsembleDynamics, ResidualDynamics, WeightedGoalCost

    with pytest.raises(ValueError, match="members must be an int >= 2; got 1"):
        EnsembleDynamics(ResidualDynamics(3, 2), members=1)
    states = jnp.zeros((2, 4))
    with pytest.raises(ValueError, match=r"but the last 1 \(extra_dims 1, the last charged by extra_weight\), 3; got 4"):
        WeightedGoalCost((1.0,) * 4, extra_weight=1.0)(states, None, jnp.zeros(4))
    with pytest.raises(ValueError, match="one entry per latent entry, 4; got 3"):
        WeightedGoalCost((1.0,) * 3)(states, None, jnp.zeros(4))
    with pytest.raises(ValueError, match=r"but the last 1 \(extra_dims 1\), 3; got 4"):
        WeightedGoalCost((1.0,) * 4, extra_dims=1)(states, None, jnp.zeros(4))
    with pytest.raises(ValueError, match=r"but the last 3 \(extra_dims 3\), 1; got 2"):
        WeightedGoalCost((1.0,) * 2, extra_dims=3)(states, None, jnp.zeros(4))
    with pytest.raises(ValueError, match="extra_dims must be None or an int >= 0; got -1"):
        WeightedGoalCost((1.0,) * 2, extra_dims=-1)
    with pytest.raises(ValueError, match="extra_weight 1.0 charges the last latent entry; it needs extra_dims >= 1"):
        WeightedGoalCost((1.0,) * 4, extra_weight=1.0, extra_dims=0)
    with pytest.raises(ValueError, match="disagreement_weight needs ensemble > 1"):
        train_lib.init_model("x", _tiny_config(disagreement_weight=1.0), train_lib.collect("wall", 2, 4, seed=0))


def test_an_ensembles_members_mean_plans_without_the_disagreement_charge():
    """problem(disagreement=0) on a shipped ensemble: the cost is the goal distance of the members'
    mean alone; the disagreement entry is neither charged nor compared with the goal, and a planner
    accepts the problem (it once failed input validation: the weights did not cover that entry)."""
    wm = gj.models.pretrained("pusht-ensemble-pd-4x")
    start = wm.encode(np.array([100.0, 100.0, 200.0, 200.0, 0.5, 0.0, 0.0]))
    goal = wm.encode(np.array([120.0, 100.0, 210.0, 200.0, 0.6, 0.0, 0.0]))
    states = jnp.stack([start, goal.at[-1].set(5.0)])  # ends at the goal having collected disagreement 5
    off, default = wm.problem(2, disagreement=0.0), wm.problem(2)
    assert float(off.cost(states, None, goal)) == 0.0
    assert float(default.cost(states, None, goal)) == 3.0 * 5.0
    result = gj.plan(gj.cem(iterations=2, num_samples=8, num_elites=2), off, wm.params, start, goal, jax.random.key(0))
    assert result.states.shape == (3, wm.latent_dim) and bool(jnp.isfinite(result.cost))
    np.testing.assert_allclose(result.cost, off.cost(result.states, result.actions, goal), rtol=1e-5)


def test_keypoint_encoder_is_smooth_in_position():
    """Spatial softmax: the latent is the softmax-weighted mean pixel position of each map,
    inside [-sqrt(3), sqrt(3)], and a small move of the agent moves the latent a little."""
    from grasp_jax.models.networks import KeypointEncoder

    enc = KeypointEncoder(3)
    imgs = gj.envs.wall.render_many(jnp.array([[10.0, 10.0], [10.5, 10.0], [50.0, 50.0]]), 32)
    params = enc.init(jax.random.key(0), imgs)
    z = enc.apply(params, imgs)
    assert z.shape == (3, 6)
    assert float(jnp.max(jnp.abs(z))) <= np.sqrt(3.0)
    assert float(jnp.linalg.norm(z[0] - z[1])) < float(jnp.linalg.norm(z[0] - z[2]))


def test_fit_readout_recovers_a_linear_latent():
    """Latents that are a linear function of the Push-T position/angle features are read
    back to the observation exactly (positions, wrapped angle); velocities read as 0."""
    pytest.importorskip("gym_pusht")
    rng = np.random.default_rng(0)
    obs = np.concatenate([rng.uniform(0, 512, (200, 4)), rng.uniform(0, 2 * np.pi, (200, 1)),
                          rng.normal(size=(200, 2))], axis=1).astype(np.float32)
    f = np.asarray(gj.models.world_model.features("pusht", jnp.asarray(obs)))[:, :6]
    mix = rng.normal(size=(6, 10))
    z = f @ mix / 100.0 + rng.normal(size=10)
    wm = _pusht_pixel_stub()
    with pytest.raises(ValueError, match="has no state readout"):
        wm.readout(jnp.asarray(z[0], jnp.float32))
    wm = train_lib.fit_readout(wm, z, obs, ridge=0.0)
    back = np.asarray(wm.readout(jnp.asarray(z, jnp.float32)))
    assert back.shape == (200, 7)
    np.testing.assert_allclose(back[:, :4], obs[:, :4], atol=0.05)  # board units of 512
    ang = np.abs(back[:, 4] - obs[:, 4]) % (2 * np.pi)
    assert np.max(np.minimum(ang, 2 * np.pi - ang)) < 1e-3
    np.testing.assert_array_equal(back[:, 5:], 0.0)


def _pusht_pixel_stub(latent_dim: int = 10):
    config = _tiny_config(env="pusht", kind="pixel", latent_dim=latent_dim, frame_skip=5, image_size=32)
    return train_lib.init_model("stub", config, dict(obs=np.zeros((1, 2, 7), np.float32)))


@pytest.mark.slow
def test_tiny_pusht_pixel_model_trains_on_package_frames(tmp_path):
    pytest.importorskip("gym_pusht")
    from benchmarks import worlds

    config = _tiny_config(env="pusht", kind="pixel", latent_dim=6, frame_skip=5, image_size=32, unroll=2,
                          batch=16, steps=40, ae_steps=40, ae_batch=8, encoder="keypoints")
    data = train_lib.collect("pusht", 4, 30, seed=0)
    data["images"] = train_lib.images("pusht", data["obs"], 32)
    assert data["images"].shape == (4, 31, 32, 32, 3)
    np.testing.assert_array_equal(data["images"][1, 7], gj.envs.pusht.render_states(data["obs"][1, 7], 32))
    wm = train_lib.init_model("tiny-pusht-pixels", config, data)
    trained, log = train_lib.train(wm, data, config, log_every=10)
    assert log["autoencoder"]["loss"][-1] < log["autoencoder"]["loss"][0]
    assert log["loss"][-1] < log["loss"][0]
    assert trained.params["readout"]["weight"].shape == (6, 6)
    errors = train_lib.prediction_error(trained, data, horizons=(1, 2))
    assert len(errors["1"]["obs_mae"]) == 5 and len(errors["1"]["readout_now_obs_mae"]) == 5
    z = worlds.latents(trained, data["obs"][0, :3])  # frames drawn from the states
    np.testing.assert_allclose(z, trained.encode(data["images"][0, :3]), atol=1e-5)
    believed = worlds.model_final_obs(trained, z)
    assert believed.shape == (3, 7) and np.all(np.isfinite(believed))
    trained.save(str(tmp_path / "pp"))
    loaded = gj.models.load(str(tmp_path / "pp"))
    np.testing.assert_allclose(loaded.readout(z), trained.readout(z), atol=1e-5)


def test_state_probe_phase_one_trains_the_encoder_alone():
    """ae_state_weight > 0 and no reconstruction: phase 1 fits the encoder (and a probe it
    throws away) to the frames' state; the decoder is not trained, the probe is not kept,
    and an environment without a frame readout (Wall) is refused by name."""
    pytest.importorskip("gym_pusht")
    config = _tiny_config(env="pusht", kind="pixel", latent_dim=6, frame_skip=5, image_size=32, ae_steps=40,
                          ae_batch=8, encoder="keypoints", ae_state_weight=1.0, ae_recon_weight=0.0)
    data = train_lib.collect("pusht", 3, 20, seed=0)
    data["images"] = train_lib.images("pusht", data["obs"], 32)
    wm = train_lib.init_model("probe", config, data)
    trained, log = train_lib.train_autoencoder(wm, data, config, log_every=10)
    assert "probe" not in trained.params
    chex.assert_trees_all_equal(trained.params["decoder"], wm.params["decoder"])
    moved = jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))), trained.params["encoder"], wm.params["encoder"])
    assert max(jax.tree.leaves(moved)) > 0
    assert log["loss"][-1] < log["loss"][0]
    with pytest.raises(ValueError, match="decoder was never trained"):
        trained.decode(jnp.zeros(6))
    wall = _tiny_config(kind="pixel", latent_dim=4, image_size=32, ae_steps=2, ae_batch=2, ae_state_weight=1.0)
    wall_data = train_lib.collect("wall", 2, 4, seed=0)
    with pytest.raises(ValueError, match="ae_state_weight needs a frame readout for 'wall'"):
        train_lib.train_autoencoder(train_lib.init_model("w", wall, wall_data), wall_data, wall)


def test_pixel_ensemble_members_share_one_encoder():
    """A pixel model with ensemble > 1: members on the encoder's latent plus the disagreement
    entry, which an encoded frame starts at 0 and the default cost charges."""
    config = _tiny_config(env="pusht", kind="pixel", latent_dim=6, frame_skip=5, image_size=32, ensemble=2,
                          disagreement_weight=2.0)
    wm = train_lib.init_model("ens", config, dict(obs=np.zeros((1, 2, 7), np.float32)))
    assert (wm.latent_dim, wm.encoded_dim, wm.extra_dims) == (7, 6, 1)
    z = wm.encode(np.zeros((3, 32, 32, 3), np.uint8))
    assert z.shape == (3, 7)
    np.testing.assert_array_equal(z[:, -1], 0.0)
    assert wm.problem(horizon=2).cost.extra_weight == 2.0


@pytest.mark.slow
def test_shipped_pixel_model_tracks_the_agent():
    """The shipped wall-pixels latent is an accurate (linear) read-out of the agent position."""
    wm = gj.models.pretrained("wall-pixels")
    xy = jax.vmap(gj.envs.wall.sample_free)(jax.random.split(jax.random.key(5), 400))
    z = np.asarray(wm.encode(gj.envs.wall.render_many(xy, wm.image_size)))
    X = np.concatenate([z, np.ones((len(z), 1))], 1)
    W, *_ = np.linalg.lstsq(X[:300], np.asarray(xy)[:300], rcond=None)
    err = np.linalg.norm(X[300:] @ W - np.asarray(xy)[300:], axis=1)
    assert err.mean() < 1.5, err.mean()  # arena is 64 units; success radius 4.5
    assert wm.meta["prediction_error"]["25"]["decoded_position_error"] < 2.0


@pytest.mark.slow
def test_shipped_pusht_pixel_encoder_reads_unseen_frames():
    """pusht-pixels-10k's latent carries the state a goal frame shows: its readout (a linear map
    fitted on training frames) reads 40 goal frames of tasks no benchmark uses to within a few
    units, so a plan that reaches the goal latent reaches the goal. (The 2500-step encoder of
    pusht-pixels reads them to a median 19 units, and 35% pass the success test: the limit its
    plans met.)"""
    wm = gj.models.pretrained("pusht-pixels-10k")
    env = gj.envs.make("pusht")
    obs = np.stack([env.sample_task(seed, steps=25)[1] for seed in range(3000, 3040)])
    read = np.asarray(wm.readout(wm.encode(gj.envs.pusht.render_states(obs, wm.image_size))))
    block = np.linalg.norm(read[:, 2:4] - obs[:, 2:4], axis=1)
    assert np.median(block) < 10.0, np.median(block)  # measured 6.1 units (board: 512; success: 20)
    passed = gj.envs.pusht.pusht_success(read, obs)
    assert passed.mean() >= 0.75, passed.mean()  # measured 0.9


def test_frame_skip_action_layout():
    config = _tiny_config(frame_skip=3)
    data = train_lib.collect("wall", 4, 12, seed=0)
    wm = train_lib.init_model("fs", config, data)
    assert wm.action_dim == 6
    np.testing.assert_allclose(wm.action_low, -np.ones(6))
    plan = np.arange(2 * 6, dtype=float).reshape(2, 6)
    env_actions = wm.env_actions(plan)
    assert env_actions.shape == (6, 2)
    np.testing.assert_allclose(env_actions[:3].ravel(), plan[0])


def test_shipped_pusht_pixels_10k_4x_plans_on_pusht_pixels_10k_encoder():
    """pusht-pixels-10k-4x is pusht-pixels-10k's encoder, frozen, with latent dynamics trained on 4x the
    data: its shipped encoder is bit-identical to pusht-pixels-10k's and its record says where it came from."""
    wm, source = gj.models.pretrained("pusht-pixels-10k-4x"), gj.models.pretrained("pusht-pixels-10k")
    chex.assert_trees_all_equal(wm.params["encoder"], source.params["encoder"])
    assert wm.meta["encoder_from"].startswith("pusht-pixels-10k:") and "autoencoder" not in wm.meta
    assert wm.meta["data"]["episodes"] == 4 * source.meta["data"]["episodes"]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["wall", "wall-pixels", "pusht", "pusht-ensemble", "pusht-ensemble-pd", "pusht-ensemble-pd-4x", "pusht-pixels", "pusht-pixels-10k", "pusht-pixels-10k-4x", "pusht-pixels-10k-4x-pd", "pointmaze"])
def test_pretrained_models_load_and_plan(name):
    if name not in gj.models.available():
        pytest.fail(f"shipped weights for {name!r} are missing from grasp_jax/models/weights")
    wm = gj.models.pretrained(name)
    assert wm.meta["command"].startswith("python -m grasp_jax.models.train")
    assert "seed" in wm.meta["data"]
    env = gj.envs.make(wm.env)
    obs = env.reset(0)
    z = wm.encode(env.render(wm.image_size) if wm.kind == "pixel" else obs)
    assert z.shape == (wm.latent_dim,)
    problem = wm.problem(horizon=3)
    result = jax.jit(lambda p, z0, zg: gj.plan(gj.grasp(iterations=4, sync_every=2), problem, p, z0, zg, jax.random.key(0)))(
        wm.params, z, z
    )
    assert result.actions.shape == (3, wm.action_dim)
    assert bool(jnp.isfinite(result.cost))


def test_shipped_weights_are_the_train_all_recipes():
    """`python -m grasp_jax.models.train all` makes exactly the shipped models; a recipe kept
    only to reproduce a measured negative result (UNSHIPPED) is neither shipped nor in it."""
    assert set(train_lib.UNSHIPPED) <= set(train_lib.SPECS)
    assert set(gj.models.available()) == set(train_lib.SPECS) - set(train_lib.UNSHIPPED)


def test_shipped_weights_record_their_recipe():
    """Every shipped model's recorded training config is its SPECS recipe (a field the record
    predates holds the recipe's default), so `train NAME` remakes what is shipped."""
    import dataclasses

    folder = Path(train_lib.__file__).parent / "weights"
    for name in gj.models.available():
        recorded = json.loads((folder / f"{name}.json").read_text())["meta"]["train_config"]
        recipe = dataclasses.asdict(train_lib.SPECS[name])
        default = dataclasses.asdict(train_lib.TrainConfig(env=recipe["env"]))
        assert set(recorded) <= set(recipe), (name, set(recorded) - set(recipe))
        assert {k: recorded.get(k, default[k]) for k in recipe} == recipe, name


def test_train_all_trains_a_shared_network_once(tmp_path, monkeypatch):
    """`train all` builds pusht-ensemble-pd from pusht-ensemble's network (the same recipe but the
    agent's fit): build() with a shared dict trains once, the second model has the first one's
    network and data, records where they came from, and adds the fit."""
    pytest.importorskip("gym_pusht")
    import dataclasses

    from grasp_jax.models.networks import PushTAgentDynamics

    tiny = dict(episodes=4, length=30, steps=2, hidden=8, depth=1, ensemble=2)
    first = dataclasses.replace(train_lib.SPECS["pusht-ensemble"], **tiny)
    second = dataclasses.replace(train_lib.SPECS["pusht-ensemble-pd"], **tiny)
    calls = []
    real_train = train_lib.train
    monkeypatch.setattr(train_lib, "train", lambda *a, **k: calls.append(1) or real_train(*a, **k))
    shared = {}
    wm1, rec1 = train_lib.build("a", first, str(tmp_path), progress=False, trained=shared)
    wm2, rec2 = train_lib.build("b", second, str(tmp_path), progress=False, trained=shared)
    assert len(calls) == 1
    assert isinstance(wm2.dynamics, PushTAgentDynamics) and wm2.dynamics.inner == wm1.dynamics
    chex.assert_trees_all_equal(wm2.params["net"], wm1.params["net"])
    assert rec2["network_from"].startswith("a:") and "network_from" not in rec1
    assert rec2["train_config"]["exact_agent"] and not rec1["train_config"]["exact_agent"]
    assert rec2["agent_pd_fit"]["max_residual"] < 1e-3
    assert gj.models.load(str(tmp_path / "b")).name == "b"
    _, rec3 = train_lib.build("c", dataclasses.replace(second, hidden=16), None, progress=False, trained=shared)
    assert len(calls) == 2 and "network_from" not in rec3  # another network: trained anew


@pytest.mark.slow
def test_train_all_collects_and_draws_shared_data_once(tmp_path, monkeypatch):
    """`train all` builds several recipes from the same Push-T data (pusht, pusht-ensemble,
    pusht-pixels, pusht-pixels-10k): build() with a shared dict collects each dataset once and
    draws each frame set once, the records name the recipe that did, a recipe with other data
    collects its own, and the reused data is what a fresh collection gives (collect is
    deterministic in the key it is shared under)."""
    pytest.importorskip("gym_pusht")
    import dataclasses

    tiny = dict(episodes=3, length=12, steps=2, hidden=8, depth=1, unroll=1)
    state = dataclasses.replace(train_lib.SPECS["pusht"], **tiny)
    pixels = dataclasses.replace(train_lib.SPECS["pusht-pixels"], **tiny, ensemble=2, ae_steps=2, ae_batch=4)
    pixels_more = dataclasses.replace(pixels, ae_steps=3)  # another encoder: trained anew, on the same frames
    collected, drawn = [], []
    real_collect, real_images = train_lib.collect, train_lib.images
    monkeypatch.setattr(train_lib, "collect", lambda *a, **k: collected.append(a) or real_collect(*a, **k))
    monkeypatch.setattr(train_lib, "images", lambda *a, **k: drawn.append(a[2]) or real_images(*a, **k))
    shared = {}
    _, rec_state = train_lib.build("s", state, None, progress=False, trained=shared)
    wm_px, rec_px = train_lib.build("p", pixels, None, progress=False, trained=shared)
    _, rec_more = train_lib.build("q", pixels_more, None, progress=False, trained=shared)
    assert len(collected) == 1 and drawn == [64]
    assert not any(k.endswith("_from") for k in rec_state) and "render_seconds" not in rec_state["data"]
    assert rec_px["data_from"].startswith("s:") and "frames_from" not in rec_px
    assert rec_more["data_from"].startswith("s:") and rec_more["frames_from"].startswith("p:")
    assert rec_more["data"]["collect_seconds"] == rec_state["data"]["collect_seconds"]
    assert rec_more["data"]["render_seconds"] == rec_px["data"]["render_seconds"]
    assert "network_from" not in rec_more and wm_px.params["readout"]["weight"].shape == (32, 6)
    (name, data, _), = [v for k, v in shared.items() if isinstance(k, tuple) and k[0] == "data" and "frames" not in k]
    fresh = real_collect("pusht", 3, 12, 0)
    np.testing.assert_array_equal(data["obs"], fresh["obs"])
    np.testing.assert_array_equal(data["actions"], fresh["actions"])
    assert "images" not in data  # the state recipe's dict never held the frames
    _, rec_other = train_lib.build("o", dataclasses.replace(state, data_seed=1), None, progress=False, trained=shared)
    assert len(collected) == 2 and "data_from" not in rec_other


def test_train_all_builds_an_encoders_recipe_before_the_recipes_that_take_it(monkeypatch, capsys):
    """`train all` builds every recipe once, each encoder_from source before its takers (also one whose name
    sorts first), with one shared dict; `train NAME` builds an unshipped source first (build is stubbed: this
    checks the order and the sharing, not training)."""
    calls, dicts = [], set()

    def fake_build(name, config, out, progress=True, trained=None, command=None):
        calls.append(name)
        dicts.add(id(trained))
        return None, dict(data={}, train_seconds=0.0, final_loss=0.0, prediction_error={})

    monkeypatch.setattr(train_lib, "build", fake_build)
    # a taker whose name sorts before its source, as a new recipe's might
    monkeypatch.setitem(train_lib.SPECS, "a-taker", train_lib.SPECS["pusht-pixels-10k-4x"])
    train_lib.main(["all", "--out", "unused"])
    assert sorted(calls) == sorted([*gj.models.available(), "a-taker"]) and len(dicts) == 1
    takers = [n for n in calls if train_lib.SPECS[n].encoder_from]
    assert "a-taker" in takers and "pusht-pixels-10k-4x" in takers
    for name in takers:
        assert calls.index(train_lib.SPECS[name].encoder_from) < calls.index(name)
    # one recipe: an unshipped source of its encoder is built first (with the same overrides); a shipped one is taken
    for name, expected in (("pusht-pixels-20k-4x-pd", ["pusht-pixels-20k", "pusht-pixels-20k-4x-pd"]),
                           ("pusht-pixels-10k-4x", ["pusht-pixels-10k-4x"])):
        calls.clear()
        train_lib.main([name, "--out", "unused"])
        assert calls == expected, (name, calls)
    # an unshipped recipe (or one whose unshipped source would be built) without --out: refused before any build,
    # so it never lands among the shipped weights
    for name in ("pusht-pixels-20k", "pusht-pixels-20k-4x-pd", "pusht-pixels-10k-8x-pd"):
        calls.clear()
        with pytest.raises(SystemExit):
            train_lib.main([name])
        assert calls == [] and "--out" in capsys.readouterr().err
    capsys.readouterr()


def test_evaluate_recomputes_a_shipped_models_held_out_error_without_training(monkeypatch, capsys, tmp_path):
    """`train wall --evaluate` collects the recipe's data again and recomputes the held-out error of the
    shipped weights: the record's numbers (the same data, windows and weights; only float rounding of
    another machine apart, ~1e-6 relative), plus the nothing-moves baseline the record predates. It
    trains nothing; --steps, or a model that is neither shipped nor in --out, is refused by name."""
    monkeypatch.setattr(train_lib, "build", lambda *a, **k: pytest.fail("--evaluate must not build"))
    parts = []  # the episodes each error is computed on
    real_error = train_lib._held_out_error
    monkeypatch.setattr(train_lib, "_held_out_error", lambda wm, val, *a, **k: parts.append(val) or real_error(wm, val, *a, **k))
    result = train_lib.main(["wall", "--evaluate"])["wall"]
    assert set(result["recorded"]) == set(result["now"]) == {"1", "25", "50"}
    # held-out: the recipe's last 10% of episodes; beside it the same count of its last training episodes
    spec = train_lib.SPECS["wall"]
    obs = train_lib.collect("wall", spec.episodes, spec.length, spec.data_seed)["obs"]
    n_val = round(spec.episodes * spec.validation_fraction)
    assert len(parts) == 2
    np.testing.assert_array_equal(parts[0]["obs"], obs[-n_val:])
    np.testing.assert_array_equal(parts[1]["obs"], obs[-2 * n_val:-n_val])
    for h, now in result["now"].items():
        fit = now["training_episodes"]
        assert fit["windows"] == now["windows"] and len(fit["obs_mae"]) == len(now["obs_mae"])
        assert fit["obs_mae"] != now["obs_mae"]  # other episodes, other errors
    for h, recorded in result["recorded"].items():
        now = result["now"][h]
        assert now["windows"] == recorded["windows"]
        np.testing.assert_allclose(now["obs_mae"], recorded["obs_mae"], rtol=1e-4)
        np.testing.assert_allclose(now["position_error"], recorded["position_error"], rtol=1e-4)
        assert min(now["persistence_obs_mae"]) > 10 * max(now["obs_mae"])  # the model beats "nothing moves" by far
    assert '"now"' in capsys.readouterr().out
    for argv, named in ((["wall", "--evaluate", "--steps", "5"], "--steps"),
                        (["pusht-pixels-20k", "--evaluate"], "--out"),
                        (["wall", "--evaluate", "--out", str(tmp_path)], "--out")):
        with pytest.raises(SystemExit):
            train_lib.main(argv)
        assert named in capsys.readouterr().err


def test_set_trains_a_changed_recipe_by_name_and_evaluate_takes_its_record(tmp_path, capsys):
    """`train NAME --set FIELD=VALUE ...` trains the recipe with those fields changed (typed as the
    field), into --out only; the record keeps the changed recipe and the command; `--evaluate --out`
    then recomputes its held-out error on the data the record names (here another data seed and the
    quick run's 40 episodes, not the recipe's 2000 of seed 0). Unknown fields, values that do not
    parse, no --out, `all`, and --set with --evaluate are refused by name."""
    out = str(tmp_path / "w")
    train_lib.main(["wall", "--quick", "--set", "hidden=8", "depth=1", "data_seed=3", "--out", out])
    wm = gj.models.load(os.path.join(out, "wall"))
    config = wm.meta["train_config"]
    assert (config["hidden"], config["depth"], config["data_seed"], config["episodes"]) == (8, 1, 3, 40)
    assert wm.meta["command"] == "python -m grasp_jax.models.train wall --quick --set hidden=8 depth=1 data_seed=3"
    assert {leaf.shape[-1] for leaf in jax.tree_util.tree_leaves(wm.params["net"])} >= {8}
    result = train_lib.main(["wall", "--evaluate", "--out", out])["wall"]
    for h, recorded in result["recorded"].items():
        assert result["now"][h]["windows"] == recorded["windows"]
        np.testing.assert_allclose(result["now"][h]["obs_mae"], recorded["obs_mae"], rtol=1e-4)
    capsys.readouterr()
    for argv, named in ((["wall", "--set", "hidden=8"], "--out"),
                        (["all", "--set", "hidden=8", "--out", out], "one NAME (not all)"),
                        (["wall", "--set", "nope=1", "--out", out], "'nope=1'"),
                        (["wall", "--set", "hidden", "--out", out], "FIELD=VALUE"),
                        (["wall", "--set", "hidden=eight", "--out", out], "hidden must be an integer; got 'eight'"),
                        (["wall", "--set", "exact_agent=maybe", "--out", out], "exact_agent must be true or false"),
                        (["wall", "--evaluate", "--set", "hidden=8"], "--set")):
        with pytest.raises(SystemExit):
            train_lib.main(argv)
        assert named in capsys.readouterr().err, argv


@pytest.mark.slow
def test_encoder_from_trains_latent_dynamics_on_a_frozen_encoder(tmp_path, monkeypatch):
    """A pixel recipe with encoder_from (pusht-pixels-10k-4x) takes that recipe's trained encoder, built
    earlier in the run (or, an unshipped recipe, built now), frozen: no phase 1, the encoder bit-identical,
    the dynamics and the readout trained on its own data; the record names the source. A mismatched source,
    an unknown one or a missing encoder is refused."""
    pytest.importorskip("gym_pusht")
    import dataclasses

    tiny = dict(episodes=3, length=12, steps=2, hidden=8, depth=1, unroll=1, ensemble=2, ae_steps=2, ae_batch=4)
    source = dataclasses.replace(train_lib.SPECS["pusht-pixels-10k"], **tiny)
    taker = dataclasses.replace(source, episodes=4, encoder_from="src")
    phase1 = []
    real_ae = train_lib.train_autoencoder
    monkeypatch.setattr(train_lib, "train_autoencoder", lambda *a, **k: phase1.append(1) or real_ae(*a, **k))
    shared = {}
    src, _ = train_lib.build("src", source, None, progress=False, trained=shared)
    wm, rec = train_lib.build("taker", taker, str(tmp_path), progress=False, trained=shared)
    assert len(phase1) == 1 and rec["encoder_from"].startswith("src:") and "autoencoder" not in rec
    chex.assert_trees_all_equal(wm.params["encoder"], src.params["encoder"])
    assert not np.allclose(wm.params["readout"]["weight"], src.params["readout"]["weight"])  # refitted on its own episodes
    loaded = gj.models.load(str(tmp_path / "taker"))
    chex.assert_trees_all_equal(loaded.params["encoder"], src.params["encoder"])
    # a source recipe neither built in this run nor shipped (UNSHIPPED) is built first, into the same folder
    monkeypatch.setitem(train_lib.SPECS, "src", source)
    again, _ = train_lib.build("taker", taker, str(tmp_path / "b"), progress=False, trained={})
    assert len(phase1) == 2 and (tmp_path / "b" / "src.json").exists()
    chex.assert_trees_all_equal(again.params["encoder"], gj.models.load(str(tmp_path / "b" / "src")).params["encoder"])
    with pytest.raises(ValueError, match="encoder_from: 'nope' is neither a shipped model nor a recipe"):
        train_lib.build("t", dataclasses.replace(taker, encoder_from="nope"), None, progress=False, trained={})
    fresh = train_lib.init_model("x", taker, {})
    with pytest.raises(ValueError, match="encoder_from is 'src'.*take_encoder"):
        train_lib.train(fresh, train_lib.collect("pusht", 2, 12, 0), taker)
    other = train_lib.init_model("y", dataclasses.replace(source, latent_dim=16), {})
    with pytest.raises(ValueError, match="take_encoder: 'y' has encoded_dim 16; the model being built expects 32"):
        train_lib.take_encoder(fresh, other)
    with pytest.raises(ValueError, match="encoder_from is for pixel models"):
        train_lib.init_model("z", dataclasses.replace(train_lib.SPECS["pusht"], encoder_from="src"),
                             train_lib.collect("pusht", 2, 12, 0))


def test_pusht_agent_pd_fit_is_exact_on_other_episodes_and_round_trips(tmp_path):
    """gym-pusht's agent is a kinematic body under a PD controller with a clipped target: fitted on
    a few episodes, the wrapped model's agent after one model step (5 env steps) matches pymunk on
    other episodes to 0.01 units, clipped steps at the walls included; the block and the
    disagreement are the inner ensemble's; the model saves and loads."""
    pytest.importorskip("gym_pusht")
    import dataclasses

    from grasp_jax.models.networks import PushTAgentDynamics

    config = dataclasses.replace(train_lib.SPECS["pusht-ensemble-pd"], episodes=6, length=60, steps=2, hidden=16,
                                 depth=1, ensemble=2)
    data = train_lib.collect("pusht", 6, 60, seed=3)
    inner = train_lib.init_model("tiny-pd", config, data)
    # an untrained residual network is the identity (last layer 0): perturb it so the block moves
    # and the members disagree, and the checks below can tell the network's outputs from z
    keys = iter(jax.random.split(jax.random.key(5), 64))
    net = jax.tree.map(lambda x: x + 0.05 * jax.random.normal(next(keys), x.shape, x.dtype), inner.params["net"])
    inner = inner.replace(params={**inner.params, "net": net})
    wm = train_lib.fit_agent_pd(inner, data)
    assert isinstance(wm.dynamics, PushTAgentDynamics) and wm.meta["agent_pd_fit"]["max_residual"] < 1e-3
    held = train_lib.collect("pusht", 3, 60, seed=4)
    obs, act = held["obs"], held["actions"]
    target = obs[:, :-1, :2] + act
    assert np.any((target < 0) | (target > 512)), "no clipped step in the held-out episodes: the check is weaker"
    k = wm.frame_skip
    z0 = wm.encode(obs[:, :-1:k][:, : act.shape[1] // k])
    a = jnp.asarray(act.reshape(act.shape[0], -1, k * 2))
    pred = wm.dynamics(wm.params, z0, a)
    true = obs[:, k::k]
    got = np.asarray(wm.decode(pred))
    np.testing.assert_allclose(got[..., :2], true[..., :2], atol=1e-2)  # agent position
    np.testing.assert_allclose(got[..., 5:7], true[..., 5:7], atol=1e-2)  # agent velocity
    base = inner.dynamics(inner.params, z0, a)
    assert float(jnp.min(jnp.abs(base[..., 2:4] - z0[..., 2:4]))) > 0 and float(jnp.min(base[..., -1])) > 0
    np.testing.assert_array_equal(np.asarray(pred[..., 2:6]), np.asarray(base[..., 2:6]))  # block: the network's
    np.testing.assert_array_equal(np.asarray(pred[..., -1]), np.asarray(base[..., -1]))  # disagreement
    wm.save(str(tmp_path / "tiny-pd"))
    loaded = gj.models.load(str(tmp_path / "tiny-pd"))
    assert loaded.dynamics == wm.dynamics
    np.testing.assert_array_equal(np.asarray(loaded.dynamics(loaded.params, z0, a)), np.asarray(pred))
    assert wm.meta["agent_pd_fit"]["clipped_steps"] > 0
    with pytest.raises(ValueError, match="train: train the model inside PushTAgentDynamics"):
        train_lib.train(wm, data, config)
    with pytest.raises(ValueError, match="fit_agent_pd: needs a Push-T state model"):
        train_lib.fit_agent_pd(gj.models.pretrained("wall"), data)


@pytest.mark.slow
def test_pusht_pixel_agent_is_exact_leaves_the_block_and_trains(tmp_path):
    """PushTPixelAgentDynamics (pusht-pixels-10k-4x-pd): the readout's agent after one model step is the PD
    update of the readout's agent now, so its motion matches pymunk's on unclipped steps (the PD increment
    does not depend on where the agent is); the velocity is carried; the keypoints move least and leave the
    readout's block and the members' disagreement as they were; the goal cost skips velocity and charges
    the disagreement; training runs the members through the correction; the model saves and loads."""
    pytest.importorskip("gym_pusht")
    import dataclasses

    from grasp_jax.envs.pusht import render_states
    from grasp_jax.models.networks import (
        EnsembleDynamics,
        PushTPixelAgentDynamics,
        ResidualDynamics,
        WeightedGoalCost,
        pusht_agent_pd,
    )

    config = dataclasses.replace(train_lib.SPECS["pusht-pixels-10k-4x-pd"], episodes=4, length=30, steps=4, hidden=16,
                                 depth=1, ensemble=2, unroll=2)
    data = train_lib.collect("pusht", 4, 30, seed=3)
    data["images"] = train_lib.images("pusht", data["obs"], 64)
    wm = train_lib.take_encoder(train_lib.init_model("tiny-px-pd", config, data), gj.models.pretrained("pusht-pixels-10k"))
    assert isinstance(wm.dynamics, PushTPixelAgentDynamics) and (wm.latent_dim, wm.encoded_dim, wm.extra_dims) == (35, 32, 3)
    assert wm.meta["agent_pd_fit"]["max_residual"] < 1e-3
    wm, log = train_lib.train(wm, data, config, log_every=2)
    assert len(log["loss"]) == 2 and np.all(np.isfinite(log["loss"])) and "readout" in wm.params
    # perturb the members so that they move the agent's keypoints and disagree (an untrained last layer is 0)
    keys = iter(jax.random.split(jax.random.key(5), 64))
    net = jax.tree.map(lambda x: x + 0.05 * jax.random.normal(next(keys), x.shape, x.dtype), wm.params["net"])
    wm = wm.replace(params={**wm.params, "net": net})

    held = train_lib.collect("pusht", 3, 30, seed=4)
    obs, act = held["obs"], held["actions"]
    k = wm.frame_skip
    start = obs[:, :-1:k][:, : act.shape[1] // k]
    z0 = wm.encode(render_states(start, 64))
    assert float(jnp.max(jnp.abs(z0[..., 32:]))) == 0.0  # a frame shows no velocity
    v0 = start[..., 5:7]
    z0 = z0.at[..., 32:34].set(v0 / wm.params["velocity_std"])
    a = jnp.asarray(act.reshape(act.shape[0], -1, k * 2))
    pred = wm.dynamics(wm.params, z0, a)
    inner = wm.dynamics.inner(wm.params, z0, a)
    read0, read1, read_inner = wm.readout(z0), wm.readout(pred), wm.readout(inner)
    p, v = pusht_agent_pd(wm.params["agent_pd"], read0[..., :2], v0, a, k)
    np.testing.assert_allclose(read1[..., :2], p, atol=1e-2)
    np.testing.assert_allclose(pred[..., 32:34] * wm.params["velocity_std"], v, atol=1e-3)
    true = obs[:, k::k]
    target = obs[:, :-1, :2] + act
    unclipped = ~np.any((target < 0) | (target > 512), axis=(-1,)).reshape(act.shape[0], -1, k).any(-1)
    assert unclipped.sum() >= 10
    np.testing.assert_allclose((read1 - read0)[..., :2][unclipped], (true - start)[..., :2][unclipped], atol=1e-2)
    np.testing.assert_allclose((pred[..., 32:34] * wm.params["velocity_std"])[unclipped], true[..., 5:7][unclipped], atol=1e-2)
    # the correction moved every window's agent (by > 30 units here), so a leak into the block would show
    assert float(jnp.min(jnp.max(jnp.abs(read_inner[..., :2] - read1[..., :2]), -1))) > 1.0
    np.testing.assert_allclose(read1[..., 2:4], read_inner[..., 2:4], atol=1e-2)  # block position: the members'
    np.testing.assert_allclose(read1[..., 4], read_inner[..., 4], atol=1e-4)  # block angle
    np.testing.assert_array_equal(np.asarray(pred[..., -1]), np.asarray(inner[..., -1]))  # disagreement
    assert float(jnp.min(pred[..., -1])) > 0
    one = wm.dynamics.member_step({**wm.params, "net": jax.tree.map(lambda x: x[0], wm.params["net"])}, z0[..., :34], a)
    assert one.shape == z0[..., :34].shape
    # the default cost: keypoints against the goal, velocity skipped, disagreement charged
    cost = wm.problem(2).cost
    assert isinstance(cost, WeightedGoalCost) and cost.extra_dims == 3 and cost.extra_weight == 3.0
    states = jnp.zeros((3, 35)).at[-1, 32:34].set(7.0).at[-1, -1].set(0.5)
    assert float(cost(states, None, jnp.zeros(35))) == pytest.approx(1.5)
    wm.save(str(tmp_path / "tiny-px-pd"))
    loaded = gj.models.load(str(tmp_path / "tiny-px-pd"))
    assert loaded.dynamics == wm.dynamics
    np.testing.assert_array_equal(np.asarray(loaded.dynamics(loaded.params, z0, a)), np.asarray(pred))
    with pytest.raises(ValueError, match="inner must be an EnsembleDynamics"):
        PushTPixelAgentDynamics(ResidualDynamics(34, 10))
    with pytest.raises(ValueError, match="inner.action_dim must be 2 \\* frame_skip = 10"):
        PushTPixelAgentDynamics(EnsembleDynamics(ResidualDynamics(34, 4), 2))
    with pytest.raises(ValueError, match="params has no 'readout'"):
        wm.dynamics({k_: p_ for k_, p_ in wm.params.items() if k_ != "readout"}, z0, a)
    with pytest.raises(ValueError, match="exact_agent on a pixel model needs ensemble >= 2; got 1"):
        train_lib.init_model("x", dataclasses.replace(config, ensemble=1, disagreement_weight=0.0), data)
    with pytest.raises(ValueError, match="exact_agent is for Push-T models; got env='wall'"):
        train_lib.init_model("x", _tiny_config(exact_agent=True), {})


def test_world_model_track_carries_only_what_a_frame_cannot_show():
    """``WorldModel.track``: a Push-T pixel model with the agent exact takes the agent's
    velocity from the prediction and everything else (keypoints, disagreement) from the
    observation; a model without unobserved entries returns the observation unless told
    which entries to carry; bad shapes are refused by name."""
    pix = gj.models.pretrained("pusht-pixels-10k-4x-pd")
    k = pix.dynamics.keypoint_dim
    assert pix.unobserved == slice(k, k + 2) and pix.latent_dim == k + 3
    observed = jnp.arange(2 * pix.latent_dim, dtype=jnp.float32).reshape(2, -1)
    predicted = -1.0 - observed
    z = pix.track(observed, predicted)
    np.testing.assert_array_equal(z[:, k:k + 2], predicted[:, k:k + 2])
    np.testing.assert_array_equal(z[:, :k], observed[:, :k])
    np.testing.assert_array_equal(z[:, k + 2:], observed[:, k + 2:])
    state = gj.models.pretrained("pusht-ensemble-pd-4x")
    assert state.unobserved is None
    s = jnp.ones(state.latent_dim)
    np.testing.assert_array_equal(state.track(s, 2 * s), s)
    np.testing.assert_array_equal(state.track(s, 2 * s, unobserved=slice(6, 8)), s.at[6:8].set(2.0))
    with pytest.raises(TypeError, match="track: unobserved must be None or a slice .* got list"):
        state.track(s, 2 * s, unobserved=[6, 7])
    with pytest.raises(ValueError, match=r"track: predicted must have shape \[..., latent_dim = 35\]"):
        pix.track(observed, predicted[:, :4])
    with pytest.raises(ValueError, match="observed and predicted must have the same shape"):
        pix.track(observed, predicted[0])
