"""Smoke test of the benchmark scripts' quick mode (tiny settings): they run, write JSON,
markdown and PNG, and report the fields the README quotes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks import worlds


@pytest.mark.slow
def test_worlds_quick_smoke(tmp_path):
    worlds.main(["--models", "wall", "--quick", "--num-tasks", "2", "--repeats", "1", "--out", str(tmp_path)])
    out = json.loads((tmp_path / "worlds.json").read_text())
    rows = out["rows"]
    assert {r["planner"] for r in rows} == {"grasp", "cem"}
    for r in rows:
        assert r["num_tasks"] == 2
        assert 0.0 <= r["success_model"] <= 1.0 and 0.0 <= r["success_real"] <= 1.0
        assert r["batch_wall_s"] > 0 and r["compile_s"] >= 0
    assert out["meta"]["quick"] is True
    assert (tmp_path / "worlds.md").read_text().startswith("| model |")
    assert list(tmp_path.glob("worlds_wall_*.png"))


@pytest.mark.slow
def test_sweep_quick_smoke_with_mpc(tmp_path):
    from benchmarks import sweep

    sweep.main(["--models", "wall", "--quick", "--horizons", "8", "--num-tasks", "2", "--mpc", "--planners", "grasp", "cem",
                "--budget", "0.5", "--out", str(tmp_path)])
    out = json.loads((tmp_path / "sweep.json").read_text())
    rows = out["rows"]
    assert {r["planner"] for r in rows} == {"grasp", "cem"}
    for r in rows:
        assert r["horizon_env_steps"] == 8 and r["num_tasks"] == 2
        assert 0.0 <= r["success_mpc"] <= 1.0 and 0.0 <= r["success_real"] <= 1.0
        assert r["seconds_per_task"] > 0
    assert out["meta"]["budgets"]["grasp"]["iterations"] == 50 and out["meta"]["budget_factor"] == 0.5  # quick's 100, halved
    assert out["meta"]["budgets"]["cem"]["iterations"] == 5  # quick's 10, halved
    assert "| 8 (8) |" in (tmp_path / "sweep.md").read_text()
    assert (tmp_path / "sweep_success.png").exists() and (tmp_path / "sweep_time.png").exists()
    assert not (tmp_path / "sweep_partial.json").exists()


@pytest.mark.slow
def test_mpc_success_on_a_host_simulator_matches_its_tasks():
    """Host MPC (PointMaze in MuJoCo, one simulator per episode, each reset to its task's
    seed): tasks 10 steps away are solved closed loop; with the goals swapped between the
    episodes (each goal 10 steps from the *other* start) they are not."""
    import grasp_jax as gj
    from benchmarks import sweep

    wm = gj.models.pretrained("pointmaze")
    env = gj.envs.make(wm.env)
    pairs = worlds.tasks_for(env, 10, 2)
    cem = gj.cem(iterations=8, num_samples=64, num_elites=8)
    success, seconds, tracked = sweep.mpc_success(wm, cem, 2, pairs, env)
    assert success == 1.0 and seconds > 0 and not tracked  # a state model without a reader observes everything
    swapped = [(pairs[0][0], pairs[1][1]), (pairs[1][0], pairs[0][1])]
    assert min(np.linalg.norm(s[:2] - g[:2]) for s, g in swapped) > 2 * env.success_threshold
    assert sweep.mpc_success(wm, cem, 2, swapped, env)[0] == 0.0


def test_sweep_disagreement_needs_an_ensemble_model(tmp_path):
    from benchmarks import sweep

    with pytest.raises(SystemExit, match="--disagreement: 'pusht' is not an ensemble model"):
        sweep.main(["--models", "pusht", "--disagreement", "0", "--quick", "--out", str(tmp_path)])
    assert not (tmp_path / "sweep.json").exists()
    with pytest.raises(SystemExit, match="--mpc-full: needs --mpc"):
        sweep.main(["--models", "wall", "--mpc-full", "--quick", "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="--track: needs --mpc"):
        sweep.main(["--models", "wall", "--track", "--quick", "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="--budget: must be > 0; got 0.0"):
        sweep.main(["--models", "wall", "--budget", "0", "--quick", "--out", str(tmp_path)])


def test_tracker_carries_the_velocity_only_where_a_frame_hides_it():
    """The sweep's state estimate for ``--track``: the pixel model's own ``track``; a state
    model read from frames gets its velocity features from the prediction; a state model
    observed directly (or Wall) needs none."""
    import jax.numpy as jnp

    import grasp_jax as gj

    pix, state = gj.models.pretrained("pusht-pixels-10k-4x-pd"), gj.models.pretrained("pusht-ensemble-pd-4x")
    assert worlds.tracker(pix) == pix.track
    assert worlds.tracker(state) is None and worlds.tracker(gj.models.pretrained("wall")) is None
    observed, predicted = jnp.zeros((3, state.latent_dim)), jnp.ones((3, state.latent_dim))
    z = worlds.tracker(state, reader=pix)(observed, predicted)
    np.testing.assert_array_equal(z[:, 6:8], 1.0)
    np.testing.assert_array_equal(z[:, :6], 0.0)
    np.testing.assert_array_equal(z[:, 8:], 0.0)


def test_sweep_read_with_needs_a_pixel_reader_and_state_models(tmp_path):
    from benchmarks import sweep

    cases = [
        (["--models", "pusht", "--read-with", "pusht-pixelz"], r"--read-with: must be one of the shipped models .*got 'pusht-pixelz'"),
        (["--models", "pusht", "--read-with", "pusht-ensemble"],
         r"--read-with: reader: must be a pixel model with a state readout .*got 'pusht-ensemble' \(kind 'state'"),
        (["--models", "pusht-pixels", "--read-with", "pusht-pixels-10k"],
         r"--read-with: reader: 'pusht-pixels-10k' reads 'pusht' frames for state models of 'pusht'; got 'pusht-pixels' \(kind 'pixel'"),
        (["--models", "wall", "--read-with", "pusht-pixels-10k"], r"got 'wall' \(kind 'state', env 'wall'\)"),
    ]
    for argv, message in cases:
        with pytest.raises(SystemExit, match=message):
            sweep.main(argv + ["--quick", "--out", str(tmp_path)])
    assert not (tmp_path / "sweep.json").exists()


def test_a_state_model_plans_from_what_a_pixel_model_reads():
    """``--read-with``: the state model's latents are those of the pixel model's reading of
    each observation's frame (velocities 0), close to the truth; a cell records its reader
    and judges against the true goals."""
    import grasp_jax as gj

    state, reader = gj.models.pretrained("pusht-ensemble-pd-4x"), gj.models.pretrained("pusht-pixels-10k-4x")
    env = gj.envs.make("pusht")
    pairs = worlds.tasks_for(env, 25, 4)
    goals = np.stack([p[1] for p in pairs])
    read = np.asarray(reader.readout(worlds.latents(reader, goals)))
    np.testing.assert_array_equal(read[:, 5:], 0.0)  # no frame shows a velocity
    assert np.median(np.linalg.norm(read[:, 2:4] - goals[:, 2:4], axis=-1)) < 15.0  # block: ~6 units
    from_frames = worlds.latents(state, goals, reader)
    np.testing.assert_allclose(from_frames, worlds.latents(state, read), rtol=1e-6, atol=1e-6)
    assert not np.allclose(from_frames, worlds.latents(state, goals), atol=1e-2)
    rows, _, _ = worlds.evaluate("pusht-ensemble-pd-4x", 25, 5, 4, {"cem": gj.cem(iterations=2, num_samples=8, num_elites=2)},
                                 1, env=env, pairs=pairs, reader=reader)
    assert rows[0]["read_with"] == "pusht-pixels-10k-4x" and rows[0]["num_tasks"] == 4
    from benchmarks import sweep

    rows[0]["horizon_env_steps"] = 25
    assert "start and goal read off the frames by **pusht-pixels-10k-4x**" in sweep.markdown(dict(rows=rows, meta={}))
    rows[0].update(success_mpc=0.5, mpc_tracked=True)  # --track: the table says the MPC column was tracked
    assert "; MPC tracked 50 (" in sweep.markdown(dict(rows=rows, meta={}))


def test_tasks_judging_and_mpc_follow_first_seed(monkeypatch):
    """``--first-seed S`` (tuning on tasks the benchmark does not use): the tasks are seeds S, S + 1, ...,
    and a plan for pair i is executed (open loop) and re-planned (host MPC) from ``reset(S + i)``."""
    import types

    import grasp_jax as gj
    from benchmarks import sweep

    wm = gj.models.pretrained("pointmaze")
    env = gj.envs.make(wm.env)
    pairs = worlds.tasks_for(env, 10, 2, first_seed=1000)
    for (start, goal), seed in zip(pairs, (1000, 1001)):
        expected = env.sample_task(seed, steps=10)
        np.testing.assert_array_equal(start, expected[0])
        np.testing.assert_array_equal(goal, expected[1])
    assert not np.array_equal(pairs[0][0], worlds.tasks_for(env, 10, 1)[0][0])
    executed = []
    monkeypatch.setattr(worlds, "execute", lambda e, seed, actions: executed.append(seed) or np.stack([pairs[0][0]] * 2))
    result = types.SimpleNamespace(states=np.zeros((2, 3, wm.latent_dim)), actions=np.zeros((2, 2, wm.action_dim)))
    worlds.judge(wm, env, pairs, result, first_seed=1000)
    assert executed == [1000, 1001]
    resets = []
    monkeypatch.setattr(gj.mpc, "mpc_host_batch", lambda planner, problem, params, sims, starts, *a, **k: [
        types.SimpleNamespace(observations=[s]) for s in starts])
    monkeypatch.setattr(gj.envs, "make", lambda name: types.SimpleNamespace(reset=resets.append))
    sweep.mpc_success(wm, gj.cem(iterations=4), 2, pairs, env, first_seed=1000)
    assert resets == [1000, 1001]
    row = dict(model="pointmaze", planner="cem", num_tasks=2, horizon=2, horizon_env_steps=10, success_model=1.0,
               success_real=0.5, seconds_per_task=0.1, time_to_success_s=0.2)
    assert "task seeds 1000-1001;" in sweep.markdown(dict(rows=[row], meta=dict(first_seed=1000)))  # the table says so
    assert "task seeds 0-1;" in sweep.markdown(dict(rows=[row], meta={}))


def test_mpc_success_protocols_reach_the_library_loop(monkeypatch):
    """What mpc_success asks of gj.mpc.mpc_host_batch: by default a re-plan every H // 4 model
    steps at a quarter of the budget; with full=True a re-plan every model step at the whole
    budget; the ensemble's disagreement weight reaches the problem's cost; a reader (``--read-with``)
    is what encodes the observed frames."""
    import types

    import grasp_jax as gj
    from benchmarks import sweep

    calls, encoders, tracks = [], [], []

    def fake(planner, problem, params, sims, starts, goals, key, *, execute, deadline, **kw):
        calls.append((planner.iterations, execute, deadline, problem.horizon, problem.cost))
        encoders.append(kw["encode"])
        tracks.append(kw["track"])
        return [types.SimpleNamespace(observations=[s]) for s in starts]

    monkeypatch.setattr(gj.mpc, "mpc_host_batch", fake)
    wm = gj.models.pretrained("pusht-ensemble")
    env = types.SimpleNamespace(is_success=lambda obs, goal: True)
    monkeypatch.setattr(gj.envs, "make", lambda name: types.SimpleNamespace(reset=lambda seed: None))
    pairs = [(np.zeros(7), np.zeros(7))] * 2
    cem = gj.cem(iterations=40, num_samples=64, num_elites=8)
    assert sweep.mpc_success(wm, cem, 8, pairs, env)[0] == 1.0
    assert sweep.mpc_success(wm, cem, 8, pairs, env, disagreement=0.0, full=True)[0] == 1.0
    (it, execute, deadline, horizon, cost), (it_full, execute_full, _, _, cost_full) = calls[:2]
    assert (it, execute, deadline, horizon) == (10, 2, True, 8)
    assert (it_full, execute_full) == (40, 1)
    assert cost.extra_weight == wm.disagreement_weight == 3.0 and cost_full.extra_weight == 0.0
    reader = gj.models.pretrained("pusht-pixels-10k-4x")
    sweep.mpc_success(wm, cem, 8, pairs, env, reader=reader)
    obs = np.array([[200.0, 300.0, 260.0, 240.0, 0.7, 0.0, 0.0]])
    np.testing.assert_array_equal(encoders[0](obs), worlds.latents(wm, obs))
    np.testing.assert_array_equal(encoders[2](obs), worlds.latents(wm, obs, reader))
    assert not np.allclose(encoders[2](obs), encoders[0](obs), atol=1e-3)
    # --track: a state estimate reaches the loop only where a frame hides something the model carries
    # (the exact agent's velocity of a model read from frames); this ensemble has no exact agent
    pd = gj.models.pretrained("pusht-ensemble-pd-4x")
    assert sweep.mpc_success(pd, cem, 8, pairs, env, reader=reader, track=True)[2] is True
    assert sweep.mpc_success(pd, cem, 8, pairs, env, track=True)[2] is False
    assert sweep.mpc_success(wm, cem, 8, pairs, env, reader=reader, track=True)[2] is False
    assert tracks[:3] == [None] * 3 and callable(tracks[3]) and tracks[4:] == [None] * 2


def test_rescaled_planners_keep_their_settings():
    import grasp_jax as gj
    from benchmarks.sweep import rescaled

    base = gj.grasp(num_particles=4, sync_every=50)
    g = rescaled(base, 0.1)
    assert g.iterations == 30 and g.config is base.config and g.step is base.step
    c = rescaled(gj.cem(num_samples=64), 2.0)
    assert c.iterations == 60 and c.config.num_samples == 64


@pytest.mark.slow
def test_conditioning_matches_theory():
    """Linear dynamics: the dense shooting loss's Hessian condition number grows
    geometrically with the horizon for an expanding system; the lifted loss's stays bounded."""
    import jax

    from benchmarks.conditioning import condition_numbers

    with jax.enable_x64(True):
        short, long = condition_numbers(1.1, 8), condition_numbers(1.1, 32)
        assert long["shooting"] > 100 * short["shooting"]
        assert long["lifted"] < 1.2 * short["lifted"] < 100
        assert abs(long["lifted_stop_gradient"] - short["lifted_stop_gradient"]) < 1e-6 * short["lifted_stop_gradient"]
        # rho = 0: the states forget the past; shooting's Hessian is 2 * I (condition 1)
        assert abs(condition_numbers(0.0, 8)["shooting"] - 1.0) < 1e-9


def test_speed_flop_count_agrees_with_xla_and_cost_models_with_the_algorithms():
    """The speed benchmark's analytic FLOPs per model call agree with XLA's own count for
    one call (XLA cannot count inside the planners' loops), and each planner's cost model
    says what its algorithm does: GRASP's relaxed step is one batched call (depth 2:
    forward + backward), BPTT's a scan of H calls (depth 2H)."""
    import jax
    import jax.numpy as jnp

    import grasp_jax as gj
    from benchmarks import speed

    wm = gj.models.pretrained("pusht")
    z, a = jnp.zeros(wm.latent_dim), jnp.zeros(wm.action_dim)
    analysis = jax.jit(lambda z, a: wm.dynamics(wm.params, z, a)).lower(z, a).compile().cost_analysis()
    xla = float((analysis[0] if isinstance(analysis, (list, tuple)) else analysis)["flops"])
    assert 0.85 * xla <= speed.model_flops(wm) <= 1.15 * xla, (speed.model_flops(wm), xla)
    relaxed, bptt = (speed.METHODS[m][0].iteration_cost(64, 300) for m in ("grasp", "bptt"))
    # (GRASP also scores its particles by a rollout once at the end: amortised, a fraction of a call.)
    assert 2 <= relaxed.depth < 3 and bptt.depth == 128
    assert bptt.model_calls == 3 * 64 and 3 * 64 <= relaxed.model_calls < 1.01 * 3 * 64


def test_peers_torch_export_matches_the_jax_model():
    """benchmarks.peers runs the PyTorch peers on our model exported to PyTorch (optional
    extra; skipped where torch is not installed, as in CI)."""
    import numpy as np
    import pytest

    torch = pytest.importorskip("torch")
    import jax

    import grasp_jax as gj
    from benchmarks.peers import torch_dynamics

    wm = gj.models.pretrained("pusht")
    rng = np.random.default_rng(0)
    z = rng.normal(size=(5, wm.latent_dim)).astype(np.float32)
    a = rng.uniform(-64, 64, size=(5, wm.action_dim)).astype(np.float32)
    ours = np.asarray(jax.vmap(lambda z, a: wm.dynamics(wm.params, z, a))(z, a))
    theirs = torch_dynamics(wm)(torch.tensor(z), torch.tensor(a)).numpy()
    np.testing.assert_allclose(theirs, ours, atol=1e-4)


def test_time_cell_returns_what_plan_batch_returns():
    import jax
    import jax.numpy as jnp
    import numpy as np

    import grasp_jax as gj
    from benchmarks.compare import time_cell

    problem = gj.Problem(lambda p, s, a: s + 0.1 * a, horizon=6, action_dim=2)
    s0, g = jnp.zeros((3, 2)), jnp.ones((3, 2))
    for planner in (gj.cem(iterations=3, num_samples=16, num_elites=4), gj.grasp(iterations=10, sync_every=5, num_particles=2)):
        result, compile_s, run_s = time_cell(planner, problem, None, s0, g, repeats=2)
        expected = gj.plan_batch(planner, problem, None, s0, g, jax.random.key(0))
        np.testing.assert_array_equal(result.actions, expected.actions)
        assert compile_s > 0 and run_s > 0


@pytest.mark.slow
def test_gpu_script_and_anytime_curves_at_tiny_size(tmp_path):
    """benchmarks/gpu.sh at its smoke size (what a GPU run does, tiny): the speed grid and an
    anytime cell; the anytime JSON holds each budget as run, depth from the cost model, and
    an equal-time summary against GRASP's default."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, GRASP_JAX_SMOKE="1", PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    subprocess.run(["bash", str(root / "benchmarks" / "gpu.sh"), str(tmp_path)], cwd=root, env=env, check=True,
                   capture_output=True, text=True)
    speed = json.loads((tmp_path / "speed.json").read_text())
    assert {r["method"] for r in speed["rows"]} == {"grasp", "bptt"}
    data = json.loads((tmp_path / "anytime.json").read_text())
    assert data["meta"]["command"].startswith("python -m benchmarks.anytime --quick")
    rows = {r["planner"]: r for r in data["rows"]}
    assert set(rows) == {"grasp", "cem"} and all(r["iterations"] == r["default_iterations"] for r in rows.values())
    assert rows["cem"]["sequential_depth"] == rows["cem"]["iterations"] * rows["cem"]["horizon"]
    summary = {e["planner"]: e for e in data["summary"]}
    assert summary["grasp"]["success_model_at_equal_time"] == rows["grasp"]["success_model"]
    assert summary["cem"]["reference_time_s"] == rows["grasp"]["batch_wall_s"]
    assert (tmp_path / "anytime_wall.png").exists() and (tmp_path / "speed.png").exists()


def test_anytime_variants_run_only_when_named():
    """The particle-economy pair (GRASP and BPTT from 8 starts) and the lifted Gauss-Newton
    planner are opt-in: not in the default set, accepted by ``--planners``, and an unknown
    name is refused with the choices."""
    from benchmarks import anytime

    default, extra = anytime.planner_set(), anytime.variants()
    assert set(extra) == {"grasp x8", "bptt x8", "collocation", "collocation al"} and set(extra).isdisjoint(default)
    assert extra["grasp x8"].config.num_particles == 8 and extra["bptt x8"].config.num_starts == 8
    import grasp_jax as gj

    assert extra["collocation"].config == gj.collocation().config
    assert extra["collocation al"].config.multiplier_every == 5
    assert set(anytime.variants(quick=True)) == {"grasp x2", "bptt x2", "collocation", "collocation al"}
    with pytest.raises(SystemExit, match=r"--planners: each must be one of .*'grasp x8'.*got \['nope'\]"):
        anytime.main(["--planners", "nope"])


def test_anytime_runs_the_analytic_tasks(tmp_path):
    """``--models cup`` runs the analytic cup task (exact dynamics: success under the model is
    the truth, no simulator column), and an unknown model is refused with the choices."""
    import json

    from benchmarks import anytime

    anytime.main(["--quick", "--models", "cup", "--horizons", "12", "--num-tasks", "2", "--factors", "1",
                  "--planners", "grasp", "bptt", "--out", str(tmp_path)])
    data = json.loads((tmp_path / "anytime.json").read_text())
    assert {(r["model"], r["horizon"], r["planner"]) for r in data["rows"]} == {("cup", 12, "grasp"), ("cup", 12, "bptt")}
    assert all(r["success_real"] is None and r["num_tasks"] == 2 for r in data["rows"])
    assert "success_real" not in (tmp_path / "anytime.md").read_text()
    assert (tmp_path / "anytime_cup.png").exists()
    with pytest.raises(SystemExit, match=r"--models: each must be one of .*'cup'.*got \['cupp'\]"):
        anytime.main(["--models", "cupp"])
    # every shipped model is known (the ensembles too); those without default horizons need --horizons
    with pytest.raises(SystemExit, match=r"--horizons: needed for \['pusht-ensemble-pd-4x'\] \(no default horizons"):
        anytime.main(["--models", "pusht-ensemble-pd-4x"])


def test_command_line_quotes_arguments_with_spaces():
    from benchmarks.compare import command_line

    line = command_line("benchmarks.anytime", ["--planners", "grasp", "bptt x16", "--num-tasks", "4"])
    assert line == "python -m benchmarks.anytime --planners grasp 'bptt x16' --num-tasks 4"


def test_every_shipped_model_gets_its_environments_tasks():
    """The worlds and sweep benchmarks run a model on its environment's tasks and horizons, so
    a newly shipped model needs no benchmark table entry; an unknown name is refused with the
    shipped ones."""
    import grasp_jax as gj
    from benchmarks import sweep

    for m in gj.models.available():
        wm = gj.models.pretrained(m)
        assert worlds.settings_for(m) == worlds.SETTINGS[wm.env]
        for quick in (False, True):  # every default horizon is one the sweep accepts for this model
            horizons = sweep.default_horizons(m, quick)
            assert horizons and all(h % wm.frame_skip == 0 for h in horizons), (m, quick, horizons)
    assert sweep.default_horizons("pusht-ensemble-pd-4x", quick=False) == (25, 50)
    assert sweep.default_horizons("pusht", quick=True) == (25, 50)
    assert sweep.default_horizons("wall-pixels", quick=True) == (40,)
    for main in (sweep.main, worlds.main):
        with pytest.raises(SystemExit, match=r"--models: each must be one of the shipped models .*'pusht-ensemble-pd-4x'.*got 'pushtt'"):
            main(["--models", "pushtt"])


def test_models_table_puts_the_nothing_moves_baseline_beside_the_block_error(monkeypatch):
    """Push-T rows show the held-out block error beside that of predicting that nothing moves,
    where the record has it; records from before the field keep their row as it was."""
    import types

    entry = dict(windows=10, latent_rmse=0.5, obs_mae=[1.0, 2.0, 90.0, 110.0, 0.5, 3.0, 4.0], position_error=2.5)
    records = {
        "new": dict(entry, persistence_obs_mae=[5.0, 6.0, 150.0, 160.0, 0.9, 7.0, 8.0]),
        "old": entry,
    }

    def pretrained(name):
        data = dict(episodes=2, length=3, transitions=6, seed=0, collect_seconds=1.0)
        return types.SimpleNamespace(meta=dict(data=data, train_seconds=2.0, prediction_error={"25": records[name]}))

    monkeypatch.setattr(worlds.gj.models, "pretrained", pretrained)
    new, old = worlds.models_table(["new", "old"]).splitlines()[2:]
    assert "block 100 (nothing moving: 155), angle 0.50 rad" in new
    assert "block 100, angle 0.50 rad" in old and "nothing moving" not in old
