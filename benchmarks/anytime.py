"""Anytime curves: success versus planning time (and sequential depth) at equal budgets.

    python -m benchmarks.anytime --quick                      # a few minutes on 2 CPU cores
    python -m benchmarks.anytime --models pusht --horizons 40 80 --num-tasks 100
    python -m benchmarks.anytime --models wall --horizons 60 80 --no-sim

Every planner, single- and multi-start, runs the same ``N`` seeded tasks
(``env.sample_task(seed, steps=H)``, as :mod:`benchmarks.sweep`) at several budgets: its
default iteration count times each ``--factors`` value (default 1/8 .. 4), through the
``iterations=`` override (one compiled program per budget, compiled ahead of time and
timed apart). For every (planner, budget) it records the batch's wall time (median of
``--repeats`` runs after the compile, ``block_until_ready``), the **sequential depth** (model
calls on the critical path, from the planner's own cost model: the GPU wall-time proxy
when the batch fits the device), the model calls, and the success rate under the model and,
unless ``--no-sim``, open loop in the real simulator.

Planners (``planner_set``; ``variants`` adds ``grasp x8`` and ``bptt x8`` when ``--planners``
names them): GRASP's default (16 particles), BPTT single-start and from 16
starts (``gj.multistart(gj.bptt(), 16)``: the box centre and 15 uniform in the box, best by
true cost), CEM, MPPI and random shooting (population methods: their samples are their
starts). The summary per cell answers "did the baselines get the same budget?": each
planner's success at GRASP-default's wall time and at its sequential depth (the best of
its budgets that fit, a conservative step interpolation), and the time each needs to reach
50% / 80% success.

``--models`` also takes the analytic tasks of :mod:`benchmarks.compare`, ``cup`` (the
non-greedy cup: the straight line to the goal runs into a wall) and ``linear`` (unstable
linear dynamics, spectral radius 1.05): exact dynamics, so success "under the model" is the
truth, with no simulator runs; their horizons are model steps.

Writes ``anytime.json``, ``anytime.md`` and ``anytime_<model>.png`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax.numpy as jnp
import numpy as np

import grasp_jax as gj
from benchmarks import worlds
from benchmarks.compare import ANALYTIC_TASKS, command_line, machine_record, model_calls, sequential_depth, time_cell
from benchmarks.sweep import rescaled

FACTORS = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0)
QUICK_FACTORS = (0.25, 1.0)
HORIZONS = {"pusht": (40, 60, 80), "wall": (40, 60, 80), "wall-pixels": (40, 60), "pointmaze": (100, 200),
            "cup": (40, 50, 60), "linear": (50, 100)}
QUICK_HORIZONS = {"pusht": (25,), "wall": (20,), "wall-pixels": (20,), "pointmaze": (50,), "cup": (50,), "linear": (25,)}
REFERENCE = "grasp"  # the planner whose default budget defines "equal time" and "equal depth"


def _sized(planners: dict, quick: bool) -> dict:
    """Quick mode runs every planner at a sixth of its default budget."""
    return {k: rescaled(p, 1 / 6) for k, p in planners.items()} if quick else planners


def planner_set(quick: bool = False) -> dict:
    """The compared planners at their default budgets (``quick``: a fraction of them)."""
    starts = 4 if quick else 16
    return _sized({
        "grasp": gj.grasp(num_particles=starts),
        "bptt": gj.bptt(),
        f"bptt x{starts}": gj.multistart(gj.bptt(), starts),
        "cem": gj.cem(),
        "mppi": gj.mppi(),
        "random_shooting": gj.random_shooting(iterations=30),
    }, quick)  # fmt: skip


def variants(quick: bool = False) -> dict:
    """Opt-in entries, run only when ``--planners`` names them: the particle-economy pair,
    GRASP and BPTT from half the starts (8; quick: 2), to compare at equal starts and time;
    the lifted Gauss-Newton planner ``gj.collocation`` at its default and with
    augmented-Lagrangian multipliers (``collocation al``: 60 steps, multipliers every 5)."""
    starts = 2 if quick else 8
    return _sized({f"grasp x{starts}": gj.grasp(num_particles=starts),
                   f"bptt x{starts}": gj.multistart(gj.bptt(), starts),
                   "collocation": gj.collocation(num_particles=4 if quick else 16),
                   "collocation al": gj.collocation(iterations=60, multiplier_every=5, num_particles=4 if quick else 16)},
                  quick)


def budgets(planner: gj.Planner, factors) -> list[int]:
    return sorted({max(1, int(round(planner.iterations * f))) for f in factors})


def _cell_problem(name: str, h_env: int, n: int, sim: bool):
    """``(problem, params, starts, goals, horizon, judge, sim)`` of one cell: a shipped world model's
    tasks (``env.sample_task(seed, steps=h_env)``) or an analytic task's (``task.sample(seed, h_env)``).
    ``judge(result)`` returns per-task arrays ``model_ok`` (and ``real_ok`` with ``sim``)."""
    if name in ANALYTIC_TASKS:
        task = ANALYTIC_TASKS[name]()
        pairs = [task.sample(seed, h_env) for seed in range(n)]
        z0, zg = (jnp.asarray(np.stack([p[i] for p in pairs])) for i in (0, 1))

        def judge(result):
            return dict(model_ok=np.asarray(task.success(result.states, zg)))

        return task.problem(h_env), task.params, z0, zg, h_env, judge, False
    wm = gj.models.pretrained(name)
    env = gj.envs.make(wm.env)
    if h_env % wm.frame_skip:
        raise SystemExit(f"--horizons: {h_env} is not a multiple of {name}'s frame_skip {wm.frame_skip}")
    horizon = h_env // wm.frame_skip
    pairs = worlds.tasks_for(env, h_env, n)
    z0 = worlds.latents(wm, np.stack([p[0] for p in pairs]))
    zg = worlds.latents(wm, np.stack([p[1] for p in pairs]))
    return wm.problem(horizon), wm.params, z0, zg, horizon, lambda result: worlds.judge(wm, env, pairs, result, sim=sim), sim


def run_cell(name: str, h_env: int, n: int, planners: dict, factors, repeats: int, sim: bool, bar=None,
             on_row=None) -> list[dict]:
    problem, params, z0, zg, horizon, judge, sim = _cell_problem(name, h_env, n, sim)
    rows = []
    for pname, planner in planners.items():
        for iterations in budgets(planner, factors):
            if bar is not None:
                bar.set_postfix_str(f"{name} H={h_env} {pname} n={iterations}")
            result, compile_s, wall_s = time_cell(planner, problem, params, z0, zg, repeats, iterations=iterations)
            verdict = judge(result)
            rows.append(
                dict(
                    model=name,
                    env_steps=h_env,
                    horizon=horizon,
                    planner=pname,
                    iterations=iterations,
                    default_iterations=planner.iterations,
                    num_tasks=n,
                    batch_wall_s=wall_s,
                    compile_s=compile_s,
                    sequential_depth=sequential_depth(planner, horizon, iterations),
                    model_calls=model_calls(planner, horizon, iterations),
                    success_model=float(verdict["model_ok"].mean()),
                    success_real=float(verdict["real_ok"].mean()) if sim else None,
                    median_cost=float(np.median(np.asarray(result.cost))),
                )
            )
            if on_row is not None:
                on_row(rows[-1])
            if bar is not None:
                bar.update(1)
    return rows


def _best_within(rows, key: str, limit: float, metric: str):
    fit = [r[metric] for r in rows if r[key] <= limit * (1 + 1e-9) and r[metric] is not None]
    return max(fit) if fit else None


def _time_to(rows, metric: str, level: float):
    ok = [r["batch_wall_s"] for r in rows if r[metric] is not None and r[metric] >= level]
    return min(ok) if ok else None


def summarise(rows) -> list[dict]:
    """Per cell and planner: success at the reference's default time / depth, and the time
    to reach 50% / 80% success (``None``: not within the budgets run)."""
    out = []
    cells = dict.fromkeys((r["model"], r["env_steps"]) for r in rows)
    for model, h in cells:
        cell = [r for r in rows if r["model"] == model and r["env_steps"] == h]
        ref = [r for r in cell if r["planner"] == REFERENCE and r["iterations"] == r["default_iterations"]]
        if not ref:
            continue
        ref_time, ref_depth = ref[0]["batch_wall_s"], ref[0]["sequential_depth"]
        for pname in dict.fromkeys(r["planner"] for r in cell):
            mine = [r for r in cell if r["planner"] == pname]
            entry = dict(model=model, env_steps=h, planner=pname, reference_time_s=ref_time, reference_depth=ref_depth,
                         largest_budget_time_s=max(r["batch_wall_s"] for r in mine),
                         largest_budget_depth=max(r["sequential_depth"] for r in mine))
            for metric in ("success_model", "success_real"):
                entry[f"{metric}_at_equal_time"] = _best_within(mine, "batch_wall_s", ref_time, metric)
                entry[f"{metric}_at_equal_depth"] = _best_within(mine, "sequential_depth", ref_depth, metric)
                entry[f"{metric}_time_to_50"] = _time_to(mine, metric, 0.5)
                entry[f"{metric}_time_to_80"] = _time_to(mine, metric, 0.8)
            out.append(entry)
    return out


def markdown(summary, metric: str = "success_model") -> str:
    pct = lambda x: "-" if x is None else f"{100 * x:.0f}%"  # noqa: E731
    sec = lambda x: "never" if x is None else f"{x:.3g} s"  # noqa: E731
    short = lambda e, k, ref: "" if e[k] >= e[ref] * (1 - 1e-9) else " *"  # noqa: E731
    lines = [
        f"| model | H env | planner | {metric} at GRASP's time | at GRASP's depth | time to 50% | time to 80% |",
        "|---|---|---|---|---|---|---|",
    ]
    for e in summary:
        lines.append(
            f"| {e['model']} | {e['env_steps']} | {e['planner']} "
            f"| {pct(e[f'{metric}_at_equal_time'])}{short(e, 'largest_budget_time_s', 'reference_time_s')} "
            f"| {pct(e[f'{metric}_at_equal_depth'])}{short(e, 'largest_budget_depth', 'reference_depth')} "
            f"| {sec(e[f'{metric}_time_to_50'])} | {sec(e[f'{metric}_time_to_80'])} |"
        )
    lines.append("")
    lines.append("\\* its largest budget took less time (depth) than GRASP's default: it was not run up to the reference.")
    return "\n".join(lines)


def plot(rows, meta, out: Path) -> list[Path]:
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for model in dict.fromkeys(r["model"] for r in rows):
        hs = list(dict.fromkeys(r["env_steps"] for r in rows if r["model"] == model))
        metrics = ["success_model"] + (["success_real"] if any(r["success_real"] is not None for r in rows) else [])
        fig, axes = plt.subplots(len(hs), 2 * len(metrics), figsize=(5.2 * 2 * len(metrics), 3.6 * len(hs)), squeeze=False)
        for i, h in enumerate(hs):
            cell = [r for r in rows if r["model"] == model and r["env_steps"] == h]
            for j, metric in enumerate(metrics):
                for k, (xkey, xlabel) in enumerate((("batch_wall_s", f"planning wall time for {cell[0]['num_tasks']} tasks [s]"),
                                                     ("sequential_depth", "sequential depth [model calls on the critical path]"))):
                    ax = axes[i, 2 * j + k]
                    for pname in dict.fromkeys(r["planner"] for r in cell):
                        pts = sorted((r[xkey], 100 * r[metric], r["iterations"] == r["default_iterations"])
                                     for r in cell if r["planner"] == pname)
                        (line,) = ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", ms=4, label=pname,
                                          lw=2.2 if pname == REFERENCE else 1.2)
                        ax.plot([p[0] for p in pts if p[2]], [p[1] for p in pts if p[2]], "o", ms=9, mfc="none",
                                color=line.get_color())
                    ax.set_xscale("log")
                    # plain numbers at 1, 2, 5 x 10^k, none on the other ticks (they overlapped)
                    ax.xaxis.set_major_locator(matplotlib.ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
                    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda x, _: f"{x / 1000:g}k" if x >= 10000 else f"{x:g}"))
                    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
                    ax.set_ylim(-3, 103)
                    ax.set_xlabel(xlabel, fontsize=8)
                    where = "in the simulator" if metric == "success_real" else "(exact dynamics)" if model in ANALYTIC_TASKS else "under the model"
                    ax.set_ylabel(f"success {where} [%]", fontsize=8)
                    ax.set_title(f"{model}, H = {h} steps" if model in ANALYTIC_TASKS else
                                 f"{model}, goal {h} env steps away ({cell[0]['horizon']} model steps)", fontsize=9)
                    ax.grid(alpha=0.3)
        axes[0, 0].legend(fontsize=7, title="planner (ring: default budget)", title_fontsize=7)
        fig.suptitle(f"Anytime curves, {meta.get('device_kinds', meta['devices'])[0]}, {meta['date']}: each point one budget "
                     f"({', '.join(f'{f:g}x' for f in meta['factors'])} the default)", fontsize=9)
        fig.tight_layout()
        path = out / f"anytime_{model}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)
    return paths


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", default=None, help="any shipped model (--horizons needed beyond pusht, wall, wall-pixels, pointmaze), or the analytic tasks cup / linear (default: pusht wall; quick: wall)")
    parser.add_argument("--horizons", nargs="*", type=int, default=None, help="horizons in environment steps")
    parser.add_argument("--num-tasks", type=int, default=None, help="tasks per cell (default 100; quick 4)")
    parser.add_argument("--factors", nargs="*", type=float, default=None, help="budgets as multiples of each default")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs per budget (median)")
    parser.add_argument("--planners", nargs="*", default=None, help="a subset of the planners (default: all of planner_set; the variants grasp x8 and bptt x8 only when named)")
    parser.add_argument("--no-sim", action="store_true", help="judge under the model only (no simulator runs)")
    parser.add_argument("--quick", action="store_true", help="one small cell, two budgets, small planners (smoke run)")
    parser.add_argument("--out", type=Path, default=Path("results"))
    args = parser.parse_args(argv)
    from tqdm import tqdm

    names = args.models or (["wall"] if args.quick else ["pusht", "wall"])
    known_models = sorted(set(HORIZONS) | set(gj.models.available()))
    unknown = sorted(set(names) - set(known_models))
    if unknown:
        raise SystemExit(f"--models: each must be one of {known_models}; got {unknown}")
    no_default = sorted(set(names) - set(HORIZONS))
    if no_default and not args.horizons:
        raise SystemExit(f"--horizons: needed for {no_default} (no default horizons; e.g. --horizons 25)")
    factors = tuple(args.factors or (QUICK_FACTORS if args.quick else FACTORS))
    n = args.num_tasks or (4 if args.quick else 100)
    planners = planner_set(args.quick)
    if args.planners:
        known = {**planners, **variants(args.quick)}
        unknown = sorted(set(args.planners) - set(known))
        if unknown:
            raise SystemExit(f"--planners: each must be one of {sorted(known)}; got {unknown}")
        planners = {k: v for k, v in known.items() if k in args.planners}
    cells = [(m, h) for m in names for h in (args.horizons or (QUICK_HORIZONS if args.quick else HORIZONS)[m])]
    total = len(cells) * sum(len(budgets(p, factors)) for p in planners.values())
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    meta = dict(
        **machine_record(),
        command=command_line("benchmarks.anytime", argv),
        factors=factors,
        seeds=f"tasks: env.sample_task(seed, steps=H) (analytic tasks: task.sample(seed, H)) for seed in range({n}); "
        "planner key jax.random.key(0)",
        planners={k: dict(name=p.name, default_iterations=p.iterations) for k, p in planners.items()},
    )
    rows = []

    def save_partial(row):  # after every budget: an interrupted run keeps what it measured
        rows.append(row)
        partial = dict(meta=dict(meta, partial=True, total_s=time.perf_counter() - t0), rows=rows)
        (args.out / "anytime.json").write_text(json.dumps(partial, indent=1))

    with tqdm(total=total, desc="anytime", unit="run") as bar:
        for m, h in cells:
            run_cell(m, h, n, planners, factors, args.repeats, not args.no_sim, bar, on_row=save_partial)
    meta["total_s"] = time.perf_counter() - t0
    summary = summarise(rows)
    simulated = any(r["success_real"] is not None for r in rows)
    tables = markdown(summary) + ("\n\n" + markdown(summary, "success_real") if simulated else "")
    (args.out / "anytime.json").write_text(json.dumps(dict(meta=meta, rows=rows, summary=summary), indent=1))
    (args.out / "anytime.md").write_text(tables + "\n")
    pngs = plot(rows, meta, args.out)
    print(tables)
    print(f"wrote {args.out}/anytime.json, anytime.md, {', '.join(p.name for p in pngs)} in {meta['total_s']:.0f} s")


if __name__ == "__main__":
    main()
