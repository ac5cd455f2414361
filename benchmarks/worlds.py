"""Open-loop GRASP vs CEM on the reference environments with the shipped world models.

    python -m benchmarks.worlds                  # 20 start/goal pairs per environment
    python -m benchmarks.worlds --quick          # 4 pairs, fewer iterations (smoke run)
    python -m benchmarks.worlds --models wall pusht

For every model in ``--models`` (default: every shipped model but ``pusht-ensemble`` and ``pusht-pixels``), seeded tasks
``env.sample_task(seed)`` for ``seed in range(N)`` are planned in one ``plan_batch`` call
per planner (compile time reported separately from the median of timed repeats). Each
plan is judged twice:

* **under the model**: the model's own prediction of the final state (state models: the
  decoded final latent; pixel models: the agent position read off the decoded final image,
  :func:`grasp_jax.envs.wall.locate_agent`) against the environment's success test;
* **in the real simulator**: the plan's environment actions executed open loop from the
  start, the final observation judged by ``env.is_success`` (Push-T also reports the
  package's coverage-based success, coverage > 0.95).

Tasks and horizons (``SETTINGS``, per environment: every model runs its environment's): Wall, start and goal in different rooms (through the
door), H = 40 steps; PointMaze U-maze, goals 50 exploration steps away with H = 10 model
steps (frame-skip 5), and the package's own random start/goal cells with H = 25; Push-T,
goals 25 and 50 exploration steps away with H = 5 and 10 model steps (frame-skip 5; 25 steps
is DINO-WM's setting); ``--models pusht-ensemble`` runs the same Push-T tasks on the ensemble
model (four members, their disagreement charged by the cost), ``--models pusht-pixels`` on the
pixel model (plans from the package's 64 x 64 frames of the start and the goal; "under the
model" reads the final latent through its linear state probe). Writes ``worlds.json``, ``worlds.md`` (with the shipped models'
training records) and ``worlds_<model>_<task>.png`` (executed paths) to ``--out``.
"""

from __future__ import annotations

import argparse
import functools
import json
import time
from pathlib import Path

import numpy as np

import grasp_jax as gj
from benchmarks.compare import baseline_planners, command_line, machine_record, time_cell

# environment -> [(goal distance in environment steps, or None for the environment's own task
#                  distribution; planning horizon in model steps), ...]: every model of an
# environment (its ``WorldModel.env``) is run on that environment's tasks, so a new model
# needs no entry here.
SETTINGS = {
    "wall": [(None, 40)],
    "pointmaze": [(50, 10), (None, 25)],
    "pusht": [(25, 5), (50, 10)],
}
DEFAULT_MODELS = ("wall", "wall-pixels", "pointmaze", "pusht")  # the main job; --models adds pusht-ensemble, pusht-pixels


def settings_for(name: str) -> list:
    """The tasks and horizons model ``name`` is run on: its environment's ``SETTINGS``."""
    return SETTINGS[gj.models.pretrained(name).env]


def planners(quick: bool):
    """GRASP and CEM at the budgets every benchmark uses (:func:`benchmarks.compare.baseline_planners`)."""
    both = baseline_planners(quick)
    return {"grasp": both["grasp"], "cem": both["cem"]}


def tasks_for(env, steps, n: int, first_seed: int = 0):
    """``n`` seeded tasks ``(start, goal)``, seeds ``first_seed .. first_seed + n - 1`` (the benchmarks'
    tasks: seeds from 0; tune on others, e.g. from 1000)."""
    seeds = range(first_seed, first_seed + n)
    return [env.sample_task(seed, steps=steps) if steps is not None else env.sample_task(seed) for seed in seeds]


def latents(wm, obs, reader=None):
    """Model states of observations ``[N, obs_dim]`` (pixel models: of their frames, Wall's
    JAX renders or Push-T's package frames).

    ``reader``: a pixel model with a state readout (Push-T pixel models) for a state model
    ``wm`` of the same environment: ``wm`` is then given what ``reader`` reads off each
    observation's frame (positions and angle; the velocities, which no frame shows, 0)
    instead of the true observation: planning to image goals with a state model."""
    from grasp_jax.models.train import latents as encode_observations

    if reader is None:
        return encode_observations(wm, obs)
    return encode_observations(wm, np.asarray(reader.readout(encode_observations(reader, obs))))


def tracker(wm, reader=None):
    """Closed-loop control's state estimate for ``wm`` (``track=`` of
    :func:`grasp_jax.mpc.mpc_host_batch`), or ``None`` when every latent entry is observed.
    Pixel models: :meth:`grasp_jax.models.WorldModel.track` (the entries no frame shows,
    a Push-T pixel model's agent velocity, from the model's prediction). A state model
    read from frames by ``reader`` (see :func:`latents`): its agent velocity (the
    ``VELOCITY`` entries of :class:`grasp_jax.models.networks.PushTAgentDynamics`, whose
    velocity is exact) from the prediction, the rest read."""
    if reader is None:
        return wm.track if wm.unobserved is not None else None
    velocity = getattr(wm.dynamics, "VELOCITY", None)
    return None if velocity is None else functools.partial(wm.track, unobserved=velocity)


def check_reader(reader, models) -> None:
    """``reader`` can read frames for each of ``models`` (see :func:`latents`); else ``ValueError``."""
    if reader.kind != "pixel" or "readout" not in reader.params:
        raise ValueError(f"reader: must be a pixel model with a state readout (a Push-T pixel model); got "
                         f"{reader.name!r} (kind {reader.kind!r}, readout {'readout' in reader.params})")
    for wm in models:
        if wm.kind != "state" or wm.env != reader.env:
            raise ValueError(f"reader: {reader.name!r} reads {reader.env!r} frames for state models of {reader.env!r}; "
                             f"got {wm.name!r} (kind {wm.kind!r}, env {wm.env!r})")


def model_final_obs(wm, final_latents) -> np.ndarray:
    """What the model believes the final observation is (Push-T pixel models: their state
    readout, a linear probe of the latent; Wall pixel models: the agent drawn by the decoder)."""
    if wm.kind == "pixel" and "readout" in wm.params:
        return np.asarray(wm.readout(final_latents))
    if wm.kind == "pixel":
        from grasp_jax.envs import wall

        return np.asarray(wall.locate_agent(wm.decode(final_latents)))
    return np.asarray(wm.decode(final_latents))


def execute(env, seed: int, env_actions: np.ndarray) -> np.ndarray:
    """Runs the plan open loop in the real simulator from ``reset(seed)``; returns observations."""
    obs = [env.reset(seed)]
    for a in env_actions:
        obs.append(env.step(a))
    return np.stack(obs)


def judge(wm, env, pairs, result, sim: bool = True, first_seed: int = 0) -> dict:
    """Success of a batch of plans (``result`` of ``plan_batch`` on ``pairs``; pair ``i``
    is task seed ``first_seed + i``): under the model, and (``sim``) open loop in the real simulator.

    Returns a dict of per-task arrays: ``model_ok``, and with ``sim`` also ``real_ok``,
    ``real`` (observation paths) and, for Push-T, ``coverage``.
    """
    goals = np.stack([p[1] for p in pairs])
    believed = model_final_obs(wm, result.states[:, -1])
    out = dict(model_ok=np.array([np.all(np.isfinite(b)) and env.is_success(b, g) for b, g in zip(believed, goals)]))
    if sim:
        env_actions = wm.env_actions(np.asarray(result.actions))
        real = [execute(env, first_seed + i, env_actions[i]) for i in range(len(pairs))]
        out.update(real=real, real_ok=np.array([env.is_success(r[-1], g) for r, g in zip(real, goals)]))
        if wm.env == "pusht":
            out["coverage"] = np.array([env.coverage(r[-1], g) for r, g in zip(real, goals)])
    return out


def evaluate(name: str, steps, horizon: int, n: int, planner_set: dict, repeats: int, bar=None, env=None, pairs=None,
             disagreement=None, reader=None, first_seed: int = 0):
    """One cell: every planner in ``planner_set`` on the same ``n`` seeded tasks of model
    ``name`` at ``horizon`` model steps (seeds ``first_seed ..``; ``pairs``: those tasks, if already
    sampled with :func:`tasks_for`; ``disagreement``: an ensemble's weight on its disagreement, default
    the model's own; ``reader``: a pixel model that reads the start and goal frames for the
    state model ``name``, see :func:`latents`); returns ``(rows, trajectories, env)``.
    Success is judged against the true goal either way."""
    wm = gj.models.pretrained(name)
    if reader is not None:
        check_reader(reader, [wm])
    env = env if env is not None else gj.envs.make(wm.env)
    pairs = pairs if pairs is not None else tasks_for(env, steps, n, first_seed)
    starts = np.stack([p[0] for p in pairs])
    goals = np.stack([p[1] for p in pairs])
    z0, zg = latents(wm, starts, reader), latents(wm, goals, reader)
    problem = wm.problem(horizon, disagreement=disagreement)
    rows, trajectories = [], {}
    for pname, planner in planner_set.items():
        if bar is not None:
            bar.set_postfix_str(f"{name} {pname}")
        result, compile_s, wall_s = time_cell(planner, problem, wm.params, z0, zg, repeats)
        verdict = judge(wm, env, pairs, result, first_seed=first_seed)
        model_ok, real_ok, real = verdict["model_ok"], verdict["real_ok"], verdict["real"]
        row = dict(
            model=name,
            env=wm.env,
            planner=pname,
            task="env task" if steps is None else f"goal {steps} steps away",
            horizon=horizon,
            env_steps=horizon * wm.frame_skip,
            num_tasks=n,
            success_model=float(model_ok.mean()),
            success_real=float(real_ok.mean()),
            model_real_agreement=float((model_ok == real_ok).mean()),
            final_distance_real=float(np.median([np.linalg.norm(r[-1][:2] - g[:2]) for r, g in zip(real, goals)])),
            batch_wall_s=wall_s,
            seconds_per_task=wall_s / n,
            compile_s=compile_s,
            iterations=planner.iterations,
        )
        if reader is not None:
            row["read_with"] = reader.name
        if "coverage" in verdict:
            row["coverage_real_median"] = float(np.median(verdict["coverage"]))
            row["success_real_coverage"] = float((verdict["coverage"] > 0.95).mean())
        rows.append(row)
        xy = slice(2, 4) if wm.env == "pusht" else slice(0, 2)  # Push-T: draw the block
        trajectories[pname] = dict(
            paths=np.stack([r[:, xy] for r in real]), goals=goals[:, xy], starts=starts[:, xy], success=real_ok
        )
        if wm.env == "pusht":
            trajectories[pname]["tee"] = (np.stack([r[-1, 2:5] for r in real]), goals[:, 2:5])
        if bar is not None:
            bar.update(1)
    return rows, trajectories, env


def markdown(rows) -> str:
    lines = [
        "| model | task | planner | H (env steps) | success under model | success in simulator | Push-T coverage>0.95 "
        "| median final dist (sim) | batch s (N tasks) | compile s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        cov = f"{100 * r['success_real_coverage']:.0f}%" if "success_real_coverage" in r else "-"
        lines.append(
            f"| {r['model']} | {r['task']} | {r['planner']} | {r['horizon']} ({r['env_steps']}) | {100 * r['success_model']:.0f}% "
            f"| {100 * r['success_real']:.0f}% ({r['num_tasks']}) | {cov} | {r['final_distance_real']:.3g} "
            f"| {r['batch_wall_s']:.2f} | {r['compile_s']:.1f} |"
        )
    return "\n".join(lines)


def models_table(names) -> str:
    """The shipped models' training records: data, time, and held-out open-loop prediction
    error after 1 / 25 / 50 model steps (frame-skip 5 for Push-T and PointMaze): mean agent
    position error in environment units (Push-T: also block position MAE, beside that of
    predicting that nothing moves where the record has it, and angle error), and the RMSE
    in the model's normalised latent."""
    lines = [
        "| model | data (episodes x env steps, seed) | collect s | train s | 1 model step | 25 model steps | 50 model steps |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in names:
        meta = gj.models.pretrained(name).meta
        d, pe = meta["data"], meta["prediction_error"]

        def err(h):
            if str(h) not in pe:
                return "-"
            e = pe[str(h)]
            if "obs_mae" in e:
                still = ""
                if "persistence_obs_mae" in e and len(e["obs_mae"]) == 7:  # records from before it lack the field
                    still = f" (nothing moving: {np.mean(e['persistence_obs_mae'][2:4]):.3g})"
                extra = (f", block {np.mean(e['obs_mae'][2:4]):.3g}{still}, angle {e['obs_mae'][4]:.2f} rad"
                         if len(e["obs_mae"]) == 7 else "")
                return f"pos {e['position_error']:.3g}{extra} (latent {e['latent_rmse']:.2f})"
            if "decoded_position_error" in e:
                return f"decoded pos {e['decoded_position_error']:.3g} (latent {e['latent_rmse']:.2f})"
            return f"latent {e['latent_rmse']:.2f}"

        lines.append(
            f"| {name} | {d['episodes']} x {d['length']} = {d['transitions']:,} (seed {d['seed']}) "
            f"| {d['collect_seconds']} | {meta['train_seconds']} | {err(1)} | {err(25)} | {err(50)} |"
        )
    return "\n".join(lines)


def plot(name, label, trajectories, env, out: Path):
    """One panel per planner: the executed (in-simulator) paths of the first 8 tasks,
    success solid, failure dashed; Push-T draws the block's path and pose."""
    from matplotlib.patches import Rectangle

    from benchmarks.plots import axis_labels, draw_paths, path_legend, pyplot

    plt = pyplot()
    fig, axes = plt.subplots(1, len(trajectories), figsize=(4.8 * len(trajectories), 4.6), squeeze=False)
    for ax, (pname, t) in zip(axes[0], trajectories.items()):
        if env.name == "wall":
            wall = gj.envs.wall
            width = wall.WALL_RIGHT - wall.WALL_LEFT
            ax.add_patch(Rectangle((wall.WALL_LEFT, 0), width, wall.DOOR_LOW, color="0.4"))
            ax.add_patch(Rectangle((wall.WALL_LEFT, wall.DOOR_HIGH), width, wall.SIZE - wall.DOOR_HIGH, color="0.4"))
            ax.set_xlim(0, wall.SIZE)
            ax.set_ylim(0, wall.SIZE)
        if hasattr(env, "wall_cells"):
            s = env.scale
            for cx, cy in env.wall_cells():
                ax.add_patch(Rectangle((cx - s / 2, cy - s / 2), s, s, color="0.4"))
            ax.autoscale_view()
        pusht = env.name == "pusht"
        if pusht:
            ax.set_xlim(0, 512)
            ax.set_ylim(0, 512)
        draw_paths(ax, t["paths"], t["starts"], t["goals"], t["success"], tee=t.get("tee"))
        ax.set_aspect("equal")
        axis_labels(ax, env.name)
        what = "block" if pusht else "agent"
        n_ok, n = int(np.sum(t["success"])), len(t["success"])
        shown = f", first {min(n, 8)} drawn" if n > 8 else ""
        ax.set_title(
            f"{name} ({label}): {pname}, open loop\n{what} path in the simulator; {n_ok}/{n} succeeded{shown}", fontsize=8
        )
    path_legend(axes[0][-1], tee=env.name == "pusht")
    fig.tight_layout()
    fig.savefig(out / f"worlds_{name}_{label.replace(' ', '_')}.png", dpi=110)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", default=None, help=f"shipped models to evaluate (default: {list(DEFAULT_MODELS)})")
    parser.add_argument("--num-tasks", type=int, default=None, help="start/goal pairs per model (default 20; 4 quick)")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats (median reported)")
    parser.add_argument("--quick", action="store_true", help="few tasks and iterations (smoke run)")
    parser.add_argument("--out", type=Path, default=Path("results"))
    args = parser.parse_args(argv)
    names = args.models or [m for m in DEFAULT_MODELS if m in gj.models.available()]
    for m in names:
        if m not in gj.models.available():
            raise SystemExit(f"--models: each must be one of the shipped models {list(gj.models.available())}; got {m!r}")
    n = args.num_tasks or (4 if args.quick else 20)
    repeats = args.repeats or (1 if args.quick else 3)
    args.out.mkdir(parents=True, exist_ok=True)
    from tqdm import tqdm

    t0 = time.perf_counter()
    rows = []
    settings = {m: settings_for(m) for m in names}
    bar = tqdm(total=sum(len(settings[m]) for m in names) * 2, desc="worlds", unit="cell")
    for name in names:
        for steps, horizon in settings[name]:
            r, traj, env = evaluate(name, steps, horizon, n, planners(args.quick), repeats, bar)
            rows += r
            plot(name, r[0]["task"], traj, env, args.out)
    bar.close()
    meta = dict(
        **machine_record(),
        command=command_line("benchmarks.worlds", argv),
        seeds=f"tasks: env.sample_task(seed) for seed in range({n}); planner key jax.random.key(0)",
        settings=settings,
        quick=args.quick,
        total_s=time.perf_counter() - t0,
    )
    table = markdown(rows)
    (args.out / "worlds.json").write_text(json.dumps(dict(meta=meta, rows=rows), indent=1))
    mtable = models_table(names)
    (args.out / "worlds.md").write_text(f"{table}\n\n{mtable}\n\n{json.dumps(meta)}\n")
    print(table)
    print()
    print(mtable)
    print(f"\nwrote {args.out}/worlds.json, worlds.md and worlds_*.png in {meta['total_s']:.0f} s")


if __name__ == "__main__":
    main()
