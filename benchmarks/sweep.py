"""Horizon sweep: GRASP, BPTT, random shooting, CEM and MPPI on the shipped world models.

    python -m benchmarks.sweep --quick                  # a few minutes on 2 CPU cores
    python -m benchmarks.sweep                          # full: N = 100 tasks per cell
    python -m benchmarks.sweep --models pusht --equal-time
    python -m benchmarks.sweep --models pusht --horizons 40 80 --ablations
    python -m benchmarks.sweep --models wall --mpc 40 80   # closed loop too, at H = 40 and 80

For every model and horizon ``H`` (in environment steps; the model plans ``H / frame_skip``
model steps), ``N`` seeded tasks ``env.sample_task(seed, steps=H)`` (the goal is where the
exploration policy ended ``H`` steps after the start) are planned by each planner at its
fixed default budget, one ``plan_batch`` call over all tasks, no early stopping. Each plan
is judged (see :mod:`benchmarks.worlds`):

* **under the model** (what the paper's table reports) and
* **open loop in the real simulator** (pymunk Push-T, MuJoCo PointMaze, JAX Wall).

Time: the median of ``--repeats`` timed ``plan_batch`` runs of the program compiled ahead
of time (compile time reported separately), divided by ``N``, is the per-task planning time; "time to success"
is that time over the success rate (expected planning time per solved task), as batch
planning has no per-task stopping time. ``--equal-time`` also runs every planner again
with its iteration count scaled so that its batch takes CEM's measured batch time in that
cell, and reports the success at that common wall-clock budget. ``--mpc`` also runs every
planner closed loop in the real simulator (:func:`mpc_success`: warm-started re-plans every
``max(1, H // 4)`` model steps at a quarter of the budget each, the horizon shrinking to the
steps left (4 plans where 4 divides H, 5 at H = 5 or 10); ``--mpc-full``: a re-plan after every model step at the whole
budget, as DINO-WM's MPC).

Writes ``sweep.json`` (machine, versions, seeds, budgets), ``sweep.md`` and
``sweep_success.png`` / ``sweep_time.png`` to ``--out``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import grasp_jax as gj
from benchmarks import worlds
from benchmarks.compare import ablation_planners, baseline_planners, machine_record

# environment -> horizons in environment steps (model steps = H / frame_skip): every model of an
# environment (its ``WorldModel.env``) gets them unless MODEL_HORIZONS names it, so a new model
# needs no entry here.
HORIZONS = {
    "pusht": (25, 50),
    "pointmaze": (25, 50, 100, 150, 200),
    "wall": (10, 20, 40, 60, 80),
}
QUICK_HORIZONS = {"pusht": (25,), "pointmaze": (50,), "wall": (40,)}
MODEL_HORIZONS = {"pusht": (10, 20, 30, 40, 50, 60, 70, 80), "wall-pixels": (20, 40, 60)}
MODEL_QUICK_HORIZONS = {"pusht": (25, 50)}


def default_horizons(model: str, quick: bool) -> tuple:
    """The horizons ``model`` is swept over without ``--horizons``: its own entry in
    ``MODEL_HORIZONS`` (``MODEL_QUICK_HORIZONS``), else its environment's."""
    own = (MODEL_QUICK_HORIZONS if quick else MODEL_HORIZONS).get(model)
    return own if own is not None else (QUICK_HORIZONS if quick else HORIZONS)[gj.models.pretrained(model).env]


# The paper's Push-T table (docs/paper.md): success under the world model (DINO-WM, 500 trials).
PAPER_PUSHT = {
    40: dict(cem=61.4, bptt=51.0, grasp=59.0),
    50: dict(cem=30.2, bptt=37.6, grasp=43.4),
    60: dict(cem=7.2, bptt=16.4, grasp=26.2),
    70: dict(cem=7.8, bptt=12.0, grasp=16.0),
    80: dict(cem=2.8, bptt=6.4, grasp=10.4),
}


def rescaled(planner: gj.Planner, factor: float) -> gj.Planner:
    """The same planner with ``factor`` times its default budget (``iterations``)."""
    return planner._replace(iterations=max(1, int(round(planner.iterations * factor))))


MPC_SPLIT = 4  # MPC: max(1, H // 4) steps executed per plan, each plan with 1/4 of the planner's budget


@dataclasses.dataclass(frozen=True)
class _WallObserve:
    """Model state of a Wall state (hashable, for ``gj.mpc.mpc``): the state model's
    normalisation, or the pixel model's encoder applied to the JAX render."""

    wm: object

    def __call__(self, xy):
        from grasp_jax.models.world_model import encode

        if self.wm.kind == "pixel":
            return encode(self.wm, self.wm.params, gj.envs.wall.render_float(xy, self.wm.image_size))
        return encode(self.wm, self.wm.params, xy)


def mpc_success(wm, planner: gj.Planner, horizon: int, pairs, env, disagreement=None, full=False,
                reader=None, track=False, first_seed: int = 0) -> tuple[float, float, bool]:
    """Closed-loop success in the real simulator: plans of ``planner.iterations / MPC_SPLIT``
    iterations, each executing ``max(1, horizon // MPC_SPLIT)`` model steps (4 plans where 4
    divides ``horizon``; 5 for ``horizon`` 5 or 10), all episodes in one ``plan_batch`` per
    re-plan: the iterations of one to 1.25 open-loop plans (``full``:
    instead a re-plan after every model step at the planner's whole budget, as DINO-WM's MPC
    does, ``horizon`` times the compute of one plan). The
    library's loops run it: Wall, a JAX simulator, through :func:`grasp_jax.mpc.mpc` under
    ``vmap`` (all episodes in one program); Push-T and PointMaze through
    :func:`grasp_jax.mpc.mpc_host_batch` (one host simulator per episode, ``len(pairs)``
    instances, each reset to its task's seed). The task
    has a fixed duration, so the horizon shrinks to the steps left (a fixed receding horizon
    keeps the goal ``horizon`` steps away and never arrives: measured, GRASP 10% vs 100% open
    loop on H=10 Wall tasks); each re-plan is warm-started from the previous plan, shifted
    (:func:`grasp_jax.mpc.warm_start`) and cut to the new horizon. Success is judged after
    exactly ``horizon`` executed model steps. ``pairs`` are the cell's tasks
    (:func:`benchmarks.worlds.tasks_for`, seed ``first_seed + i`` for pair ``i``); ``disagreement`` as in
    :func:`benchmarks.worlds.evaluate`; ``reader`` (host simulators): a pixel model that reads
    every observed frame and the goal frame for the state model ``wm``
    (:func:`benchmarks.worlds.latents`). ``track`` (host simulators): each re-plan starts from
    :func:`benchmarks.worlds.tracker`'s estimate where it has one (what a frame cannot show,
    the agent's velocity, carried from the model's prediction) instead of the encoded
    observation alone. Returns ``(success rate, seconds, tracked)``: ``tracked``, whether a
    state estimate was used (``track`` and the model has one)."""
    if reader is not None:
        worlds.check_reader(reader, [wm])  # Push-T state models only: Wall's MPC observes in JAX
    execute = 1 if full else max(1, horizon // MPC_SPLIT)
    small = planner if full else rescaled(planner, 1.0 / MPC_SPLIT)
    starts, goals = np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])
    problem = wm.problem(horizon, disagreement=disagreement)
    estimate = worlds.tracker(wm, reader) if track and wm.env != "wall" else None
    key = jax.random.key(0)
    t0 = time.perf_counter()
    if wm.env == "wall":  # the JAX simulator: every episode in one program (gj.mpc.mpc under vmap)
        observe = _WallObserve(wm)
        z_goals = jax.vmap(observe)(jnp.asarray(goals, jnp.float32))

        def episode(start, goal, k):
            return gj.mpc.mpc(small, problem, wm.params, gj.envs.wall.step, observe, start, goal, k,
                              execute=execute, deadline=True)

        out = jax.vmap(episode)(jnp.asarray(starts, jnp.float32), z_goals, jax.random.split(key, len(pairs)))
        finals = np.asarray(out.env_states[:, -1])
    else:  # host simulators: one instance per episode, one plan_batch per re-plan
        sims = [gj.envs.make(wm.env) for _ in pairs]
        for i, e in enumerate(sims):
            e.reset(first_seed + i)
        outs = gj.mpc.mpc_host_batch(small, problem, wm.params, sims, starts, goals, key, execute=execute,
                                     deadline=True, encode=lambda obs: worlds.latents(wm, obs, reader),
                                     to_env=wm.env_actions, track=estimate)
        finals = np.stack([o.observations[-1] for o in outs])
    seconds = time.perf_counter() - t0
    return float(np.mean([env.is_success(f, g) for f, g in zip(finals, goals)])), seconds, estimate is not None


def budget_record(planner: gj.Planner) -> dict:
    """The planner's configuration as JSON: numbers as they are, nested planners (GRASP's
    sync, a multistart's inner planner) recursively, other objects by type name."""
    out = {}
    for f in dataclasses.fields(planner.config):
        v = getattr(planner.config, f.name)
        if isinstance(v, gj.Planner):
            out[f.name] = dict(name=v.name, **budget_record(v))
        else:
            out[f.name] = v if isinstance(v, (int, float, str, bool, type(None))) else type(v).__name__
    out["iterations"] = planner.iterations
    return out


def run(args) -> dict:
    from tqdm import tqdm

    names = args.models
    hz = {m: tuple(args.horizons or default_horizons(m, args.quick)) for m in names}
    pset = baseline_planners(args.quick)
    if args.ablations:  # GRASP with one part of the recipe removed at a time (benchmarks.compare)
        pset = ablation_planners()
        if args.quick:
            pset = {k: rescaled(v, 1 / 3) for k, v in pset.items()}
    if args.budget != 1.0:  # every planner alike: F times its iterations
        pset = {k: rescaled(v, args.budget) for k, v in pset.items()}
    if args.planners:
        unknown = sorted(set(args.planners) - set(pset))
        if unknown:
            raise SystemExit(f"--planners: each must be one of {sorted(pset)}; got {unknown}")
        pset = {k: v for k, v in pset.items() if k in args.planners}
    n = args.num_tasks or (4 if args.quick else 100)
    repeats = args.repeats or (1 if args.quick else 2)  # timed runs after an ahead-of-time compile
    cells = [(m, h) for m in names for h in hz[m]]
    bar = tqdm(total=len(cells) * len(pset) * (2 if args.equal_time else 1), desc="sweep", unit="plan")
    rows, phases, envs = [], {}, {}
    reader = gj.models.pretrained(args.read_with) if args.read_with else None
    for name in names:
        wm = gj.models.pretrained(name)
        envs[name] = gj.envs.make(wm.env)
        t_model = time.perf_counter()
        for h_env in hz[name]:
            if h_env % wm.frame_skip:
                raise SystemExit(f"--horizons: {h_env} is not a multiple of {name}'s frame_skip {wm.frame_skip}")
            horizon = h_env // wm.frame_skip
            pairs = worlds.tasks_for(envs[name], h_env, n, args.first_seed)  # one sample of the tasks for every column
            cell, _, _ = worlds.evaluate(name, h_env, horizon, n, pset, repeats, bar, env=envs[name], pairs=pairs,
                                         disagreement=args.disagreement, reader=reader, first_seed=args.first_seed)
            if args.mpc is not None and (not args.mpc or h_env in args.mpc):
                for r in cell:
                    r["success_mpc"], r["mpc_seconds_incl_compile"], r["mpc_tracked"] = mpc_success(
                        wm, pset[r["planner"]], horizon, pairs, envs[name], args.disagreement, args.mpc_full, reader,
                        args.track, args.first_seed)
            if args.equal_time:
                if "cem" not in pset:
                    raise SystemExit("--equal-time needs cem among the planners (not with --ablations)")
                budget = next(r["batch_wall_s"] for r in cell if r["planner"] == "cem")
                scaled = {p: rescaled(pl, budget / next(r["batch_wall_s"] for r in cell if r["planner"] == p)) for p, pl in pset.items()}
                timed, _, _ = worlds.evaluate(name, h_env, horizon, n, scaled, repeats, bar, env=envs[name], pairs=pairs,
                                              disagreement=args.disagreement, reader=reader, first_seed=args.first_seed)
                for r, t in zip(cell, timed):
                    r.update(equal_time_budget_s=budget, equal_time_iterations=t["iterations"],
                             equal_time_batch_s=t["batch_wall_s"], equal_time_success_model=t["success_model"],
                             equal_time_success_real=t["success_real"])
            for r in cell:
                r["horizon_env_steps"] = h_env
                r["time_to_success_s"] = r["seconds_per_task"] / r["success_model"] if r["success_model"] > 0 else None
            rows += cell
            if args.partial is not None:  # results so far, in case a long run is cut short
                args.partial.write_text(json.dumps(dict(rows=rows), indent=1))
        phases[name] = time.perf_counter() - t_model
        bar.write(f"{name}: {phases[name]:.0f} s")
    bar.close()
    meta = dict(
        **machine_record(),
        seeds=(f"tasks: env.sample_task(seed, steps=H) for seed in range({args.first_seed}, {args.first_seed + n}); "
               "planner key jax.random.key(0)"),
        first_seed=args.first_seed,
        budgets={p: budget_record(pl) for p, pl in pset.items()},
        budget_factor=args.budget,
        horizons=hz,
        num_tasks=n,
        repeats=repeats,
        quick=args.quick,
        disagreement=args.disagreement,
        read_with=args.read_with,
        mpc_protocol=None if args.mpc is None else (
            "a re-plan every model step, whole budget" if args.mpc_full
            else f"a re-plan every max(1, H // {MPC_SPLIT}) model steps, 1/{MPC_SPLIT} budget each"),
        mpc_track=None if args.mpc is None else args.track,
        phase_seconds=phases,
        command="python -m benchmarks.sweep " + " ".join(args.argv),
    )
    return dict(meta=meta, rows=rows)


def markdown(results: dict) -> str:
    rows = results["rows"]
    planners = list(dict.fromkeys(r["planner"] for r in rows))
    eq = any("equal_time_success_real" in r for r in rows)
    lines, first = [], results["meta"].get("first_seed", 0)
    for name in dict.fromkeys(r["model"] for r in rows):
        mine = [r for r in rows if r["model"] == name]
        n = mine[0]["num_tasks"]
        lines += [
            f"**{name}**" + (f", start and goal read off the frames by **{mine[0]['read_with']}**" if "read_with" in mine[0] else "")
            + f" (N = {n} tasks per cell, task seeds {first}-{first + n - 1}; success in %: under the model / open loop in the simulator"
            + ("; at CEM's wall time: under the model / in the simulator" if eq else "")
            + ("; closed-loop MPC in the simulator" if any("success_mpc" in r for r in mine) else "")
            + "; seconds per task, amortised over the batch)",
            "",
            "| H env steps (model steps) | " + " | ".join(planners) + " |",
            "|---|" + "---|" * len(planners),
        ]
        for h in sorted(set(r["horizon_env_steps"] for r in mine)):
            cells, model_h = [], next(x["horizon"] for x in mine if x["horizon_env_steps"] == h)
            for p in planners:
                r = next(x for x in mine if x["horizon_env_steps"] == h and x["planner"] == p)
                s = f"{100 * r['success_model']:.0f} / {100 * r['success_real']:.0f}"
                if eq:
                    s += f"; CEM time {100 * r['equal_time_success_model']:.0f} / {100 * r['equal_time_success_real']:.0f}"
                if "success_mpc" in r:
                    s += f"; MPC{' tracked' if r.get('mpc_tracked') else ''} {100 * r['success_mpc']:.0f}"
                cells.append(f"{s} ({r['seconds_per_task']:.2g} s)")
            lines.append(f"| {h} ({model_h}) | " + " | ".join(cells) + " |")
        lines.append("")
    pusht = [r for r in rows if r["model"] == "pusht" and r["horizon_env_steps"] in PAPER_PUSHT
             and r["planner"] in ("cem", "bptt", "grasp")]
    if pusht:
        lines += [
            "**Push-T beside the paper** (success under the world model, %; paper: DINO-WM, 500 trials)",
            "",
            "| H | paper CEM | paper GD | paper GRASP | our CEM | our BPTT | our GRASP | our GRASP in sim |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for h, paper in PAPER_PUSHT.items():
            mine = {r["planner"]: r for r in pusht if r["horizon_env_steps"] == h}
            if not mine:
                continue
            ours = [f"{100 * mine[p]['success_model']:.0f}" if p in mine else "-" for p in ("cem", "bptt", "grasp")]
            sim = f"{100 * mine['grasp']['success_real']:.0f}" if "grasp" in mine else "-"
            lines.append(f"| {h} | {paper['cem']} | {paper['bptt']} | {paper['grasp']} | " + " | ".join(ours) + f" | {sim} |")
        lines.append("")
    return "\n".join(lines)


def plot(results: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = results["rows"]
    names = list(dict.fromkeys(r["model"] for r in rows))
    planners = list(dict.fromkeys(r["planner"] for r in rows))
    for kind, keys in (("success", ("success_model", "success_real")), ("time", ("seconds_per_task", "time_to_success_s"))):
        fig, axes = plt.subplots(len(keys), len(names), figsize=(4.3 * len(names), 3.4 * len(keys)), squeeze=False)
        for j, name in enumerate(names):
            for i, key in enumerate(keys):
                ax = axes[i, j]
                for p in planners:
                    mine = sorted((r for r in rows if r["model"] == name and r["planner"] == p), key=lambda r: r["horizon_env_steps"])
                    hs = [r["horizon_env_steps"] for r in mine]
                    vals = [np.nan if r[key] is None else (100 * r[key] if kind == "success" else r[key]) for r in mine]
                    line, = ax.plot(hs, vals, "o-", label=p, lw=2 if p == "grasp" else 1.2)
                    mpc = [(r["horizon_env_steps"], 100 * r["success_mpc"]) for r in mine if "success_mpc" in r]
                    if key == "success_real" and mpc:  # closed loop beside open loop, same colour
                        tracked = " (tracked)" if any(r.get("mpc_tracked") for r in mine) else ""
                        ax.plot(*zip(*mpc), "s--", color=line.get_color(), lw=1, ms=5, label=f"{p} MPC{tracked}")
                if kind == "success" and name == "pusht" and key == "success_model":
                    ph = sorted(PAPER_PUSHT)
                    ax.plot(ph, [PAPER_PUSHT[h]["grasp"] for h in ph], "k--", label="paper GRASP")
                if kind == "time":
                    ax.set_yscale("log")
                label = {"success_model": "success under model (%)", "success_real": "success in simulator (%)",
                         "seconds_per_task": "planning s / task", "time_to_success_s": "s per solved task"}[key]
                ax.set_xlabel("horizon (env steps)")
                ax.set_ylabel(label)
                reader = results["meta"].get("read_with")
                ax.set_title(name + (f", frames read by {reader}" if reader else ""), fontsize=10 if not reader else 8)
                ax.grid(alpha=0.3)
                ax.legend(fontsize=6)  # every panel: its own lines (MPC, the paper's) named
        m = results["meta"]
        first = m.get("first_seed", 0)
        fig.suptitle(f"N={m['num_tasks']} tasks/cell (seeds {first}-{first + m['num_tasks'] - 1}), {m['machine']} ({m['cpu_count']} cores), {m['date']}", fontsize=9)
        fig.tight_layout()
        fig.savefig(out / f"sweep_{kind}.png", dpi=110)
        plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", default=["pusht", "pointmaze", "wall"], help="shipped models to sweep")
    parser.add_argument("--horizons", type=int, nargs="*", default=None,
                        help="horizons in env steps (all models), run in the order given")
    parser.add_argument("--num-tasks", type=int, default=None, help="tasks per cell (default 100; quick 4)")
    parser.add_argument("--first-seed", type=int, default=0, metavar="S",
                        help="task seeds S .. S + N - 1 (default 0: the benchmark's tasks; tune on others, e.g. 1000)")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats per cell (median; default 2, quick 1)")
    parser.add_argument("--equal-time", action="store_true", help="also run every planner at CEM's wall time")
    parser.add_argument("--mpc", type=int, nargs="*", default=None, metavar="H",
                        help="also closed-loop MPC success in the real simulator (Wall: JAX, all episodes in one "
                             "program; Push-T / PointMaze: one host simulator per episode); "
                             "with horizons, only in those cells")
    parser.add_argument("--mpc-full", action="store_true",
                        help="with --mpc: re-plan after every model step at the planner's whole budget (DINO-WM's "
                             "MPC; H plans) instead of every max(1, H // 4) steps at a quarter of it")
    parser.add_argument("--track", action="store_true",
                        help="with --mpc: carry what a frame cannot show, the agent's velocity, from the model's "
                             "prediction across re-plans where the model has it (benchmarks.worlds.tracker; default: "
                             "every re-plan starts from the encoded observation alone, velocity 0 for frames)")
    parser.add_argument("--ablations", action="store_true",
                        help="GRASP ablations (no sync, no noise, no stop-gradient, goal shaping, CEM sync, ...) "
                             "instead of the five planners; e.g. --models pusht --horizons 40 80")
    parser.add_argument("--planners", nargs="*", default=None, help="a subset of the planners (default: all)")
    parser.add_argument("--budget", type=float, default=1.0, metavar="F",
                        help="every planner at F times its default iterations (default 1; with --quick, F times the "
                             "quick budgets)")
    parser.add_argument("--disagreement", type=float, default=None, metavar="W",
                        help="ensemble models (pusht-ensemble): the cost's weight on the members' disagreement "
                             "(default: the model's own; 0: the members' mean alone)")
    parser.add_argument("--read-with", default=None, metavar="PIXEL_MODEL",
                        help="plan the state models from what this Push-T pixel model reads off the start and goal "
                             "frames (and, with --mpc, every observed frame) instead of the true states: image goals "
                             "for a state model; success is judged against the true goal")
    parser.add_argument("--quick", action="store_true", help="few tasks, two horizons, reduced budgets")
    parser.add_argument("--out", type=Path, default=Path("results"))
    args = parser.parse_args(argv)
    args.argv = list(argv if argv is not None else __import__("sys").argv[1:])
    for m in args.models:
        if m not in gj.models.available():
            raise SystemExit(f"--models: each must be one of the shipped models {list(gj.models.available())}; got {m!r}")
        if args.disagreement is not None and not gj.models.pretrained(m).extra_dims:
            raise SystemExit(f"--disagreement: {m!r} is not an ensemble model")
    if args.read_with is not None:
        if args.read_with not in gj.models.available():
            raise SystemExit(f"--read-with: must be one of the shipped models {list(gj.models.available())}; "
                             f"got {args.read_with!r}")
        try:
            worlds.check_reader(gj.models.pretrained(args.read_with), [gj.models.pretrained(m) for m in args.models])
        except ValueError as e:
            raise SystemExit(f"--read-with: {e}") from None
    if args.first_seed < 0:
        raise SystemExit(f"--first-seed: must be >= 0; got {args.first_seed}")
    if not args.budget > 0:
        raise SystemExit(f"--budget: must be > 0; got {args.budget}")
    if args.mpc_full and args.mpc is None:
        raise SystemExit("--mpc-full: needs --mpc")
    if args.track and args.mpc is None:
        raise SystemExit("--track: needs --mpc")
    args.out.mkdir(parents=True, exist_ok=True)
    args.partial = args.out / "sweep_partial.json"
    t0 = time.perf_counter()
    results = run(args)
    results["meta"]["total_s"] = time.perf_counter() - t0
    (args.out / "sweep.json").write_text(json.dumps(results, indent=1))
    table = markdown(results)
    (args.out / "sweep.md").write_text(table + "\n" + json.dumps(results["meta"]) + "\n")
    plot(results, args.out)
    args.partial.unlink(missing_ok=True)
    print(table)
    print(f"wrote {args.out}/sweep.json, sweep.md, sweep_success.png, sweep_time.png in {results['meta']['total_s']:.0f} s")


if __name__ == "__main__":
    main()
