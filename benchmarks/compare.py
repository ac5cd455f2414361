"""GRASP vs BPTT, random shooting, CEM and MPPI on the built-in analytic tasks.

    python -m benchmarks.compare --quick            # a few minutes on 2 CPU cores
    python -m benchmarks.compare                    # the full run
    python -m benchmarks.compare --ablations        # GRASP ablations instead of baselines

Tasks (``grasp_jax.tasks``): the unstable linear system (spectral radius 1.05) at
H in {25, 50, 100} and the non-greedy cup at H in {40, 50, 60}. Every planner sees the
same seeded start/goal pairs and its fixed default budget (no early stopping); success is
judged on the real rollout of the returned plan through the (here exact) model.

Timing: each cell is one ``plan_batch`` over all its problems; the first call (compile +
run) is reported as compile time, then the median of ``--repeats`` timed calls
(``block_until_ready``). Writes ``results/compare.json``, ``results/compare.md`` and
PNG plots to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import grasp_jax as gj
from grasp_jax.planners.grasp import PAPER_RECIPE

LINEAR_RHO = 1.05
WALL_LINEWIDTH = 11  # points: roughly the cup walls' thickness (2 * radius 0.3) at the plot's scale


def command_line(module: str, argv=None) -> str:
    """The command that reproduces a run: ``python -m <module> <arguments>``, each argument
    quoted for a POSIX shell where it needs it (``--planners "bptt x16"``)."""
    import shlex
    import sys

    return " ".join(["python -m", module] + [shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv)])


def machine_record() -> dict:
    """When and where a benchmark ran: date, machine, cores, devices and versions (JSON)."""
    return dict(
        date=time.strftime("%Y-%m-%d %H:%M"),
        machine=f"{platform.machine()} {platform.processor() or ''}".strip(),
        cpu_count=os.cpu_count(),
        devices=[str(d) for d in jax.devices()],
        device_kinds=sorted({d.device_kind for d in jax.devices()}),  # e.g. "NVIDIA H100 80GB HBM3"
        versions=dict(jax=jax.__version__, grasp_jax=gj.__version__, python=platform.python_version()),
    )


def baseline_planners(quick: bool = False) -> dict:
    """The five planners at their fixed default budgets (``quick``: a fraction of them)."""
    if quick:
        return {
            "grasp": gj.grasp(iterations=100, sync_every=25),
            "bptt": gj.bptt(iterations=50),
            "random_shooting": gj.random_shooting(iterations=5),
            "cem": gj.cem(iterations=10),
            "mppi": gj.mppi(iterations=10),
        }
    return {
        "grasp": gj.grasp(),
        "bptt": gj.bptt(),
        "random_shooting": gj.random_shooting(iterations=30),
        "cem": gj.cem(),
        "mppi": gj.mppi(),
    }


def ablation_planners():
    return {
        "grasp (ours)": gj.grasp(),
        "paper recipe": gj.grasp(**PAPER_RECIPE),
        "no sync": gj.grasp(sync=None),
        "no noise": gj.grasp(noise_scale=0.0),
        "no stop-gradient": gj.grasp(stop_gradient=False),
        "goal shaping (gamma=1)": gj.grasp(goal_weight=1.0),
        "cem sync": gj.grasp(sync=gj.cem(iterations=5, num_samples=64, num_elites=8)),
        "1 particle": gj.grasp(num_particles=1, init_noise=0.0),
    }


def model_calls(planner: gj.Planner, horizon: int, iterations: int | None = None) -> int:
    """World-model evaluations of one plan (a backward pass counts as 2), from the
    planner's own cost model."""
    n = planner.iterations if iterations is None else iterations
    return int(round(n * planner.iteration_cost(horizon, n).model_calls))


def sequential_depth(planner: gj.Planner, horizon: int, iterations: int | None = None) -> int:
    """Model calls on one plan's critical path: the GPU wall-time proxy."""
    n = planner.iterations if iterations is None else iterations
    return int(round(n * planner.iteration_cost(horizon, n).depth))


# The analytic tasks as this benchmark configures them (also benchmarks.anytime --models cup / linear).
ANALYTIC_TASKS = {"linear": lambda: gj.tasks.linear_task(rho=LINEAR_RHO), "cup": gj.tasks.cup_task}


def tasks(quick: bool):
    linear, cup = ANALYTIC_TASKS["linear"](), ANALYTIC_TASKS["cup"]()
    if quick:
        return [(linear, (25, 100)), (cup, (50,))]
    return [(linear, (25, 50, 100)), (cup, (40, 50, 60))]


def time_cell(planner, problem, params, starts, goals, repeats, iterations=None):
    """``(result, compile seconds, median run seconds)`` of ``gj.plan_batch`` with key 0.

    The program is compiled ahead of time (:func:`grasp_jax.compile_plan_batch`, timed on
    its own), then run ``max(1, repeats)`` times (``block_until_ready``); the result is the
    first run's, identical to ``gj.plan_batch(planner, problem, params, starts, goals,
    jax.random.key(0), iterations=iterations)``.
    """
    run, compile_s, _ = gj.compile_plan_batch(planner, problem, params, starts, goals, jax.random.key(0), iterations=iterations)
    times, result = [], None
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        out = jax.block_until_ready(run())
        times.append(time.perf_counter() - t0)
        result = out if result is None else result
    return result, compile_s, float(np.median(times))


def run(args) -> dict:
    from tqdm import tqdm

    planners = ablation_planners() if args.ablations else baseline_planners()
    cells = [(task, h) for task, hs in tasks(args.quick) for h in hs]
    rows = []
    examples = {}
    bar = tqdm(total=len(cells) * len(planners), desc="cells", unit="cell")
    for task, horizon in cells:
        pairs = [task.sample(seed, horizon) for seed in range(args.num_problems)]
        starts = jnp.asarray(np.stack([p[0] for p in pairs]))
        goals = jnp.asarray(np.stack([p[1] for p in pairs]))
        problem = task.problem(horizon)
        for name, planner in planners.items():
            bar.set_postfix_str(f"{task.name} H={horizon} {name}")
            result, compile_s, wall_s = time_cell(planner, problem, task.params, starts, goals, args.repeats)
            success = np.asarray(task.success(result.states, goals))
            rows.append(
                dict(
                    task=task.name,
                    horizon=horizon,
                    planner=name,
                    success=float(success.mean()),
                    num_problems=int(len(success)),
                    median_cost=float(np.median(np.asarray(result.cost))),
                    batch_wall_s=wall_s,
                    wall_s_per_problem=wall_s / len(success),
                    compile_s=compile_s,
                    model_calls_per_plan=model_calls(planner, horizon),
                    sequential_depth=sequential_depth(planner, horizon),
                    iterations=planner.iterations,
                    nonfinite=int(np.asarray(result.nonfinite).sum()),
                )
            )
            if task.name == "cup":
                examples[(horizon, name)] = (np.asarray(result.states[0]), np.asarray(goals[0]), bool(success[0]))
            bar.update(1)
    bar.close()
    return dict(rows=rows, examples=examples)


def markdown(rows) -> str:
    lines = [
        "| task | H | planner | success | median cost | s / problem (batch) | compile s | model calls / plan |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['task']} | {r['horizon']} | {r['planner']} | {100 * r['success']:.0f}% ({r['num_problems']}) "
            f"| {r['median_cost']:.3g} | {r['wall_s_per_problem']:.3f} | {r['compile_s']:.1f} | {r['model_calls_per_plan']:,} |"
        )
    return "\n".join(lines)


def plot(rows, examples, out: Path, suffix: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    task_names = sorted({r["task"] for r in rows})
    fig, axes = plt.subplots(1, len(task_names), figsize=(5 * len(task_names), 3.6), squeeze=False)
    for ax, tname in zip(axes[0], task_names):
        for planner in dict.fromkeys(r["planner"] for r in rows):
            pts = sorted((r["horizon"], r["success"]) for r in rows if r["task"] == tname and r["planner"] == planner)
            ax.plot([p[0] for p in pts], [100 * p[1] for p in pts], marker="o", label=planner)
        ax.set_title(tname)
        ax.set_xlabel("horizon H")
        ax.set_ylabel("success %")
        ax.set_ylim(-5, 105)
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / f"success_vs_horizon{suffix}.png", dpi=120)
    plt.close(fig)

    if examples:
        horizon = sorted({h for h, _ in examples})[len({h for h, _ in examples}) // 2]
        fig, ax = plt.subplots(figsize=(5.5, 4.5))
        for seg in gj.tasks.CUP_WALLS:
            ax.plot(seg[:, 0], seg[:, 1], color="0.5", lw=WALL_LINEWIDTH, solid_capstyle="round", alpha=0.5)
        for (h, name), (states, goal, ok) in examples.items():
            if h == horizon:
                verdict = "success" if ok else "failure"
                (line,) = ax.plot(states[:, 0], states[:, 1], marker=".", ms=3, ls="-" if ok else "--",
                                  label=f"{name}: {verdict}")
                ax.plot(*states[-1], "o" if ok else "X", color=line.get_color(), ms=7, mec="k", mew=0.5)
        ax.plot(*states[0], "ks", label="start")
        ax.plot(*goal, "r*", ms=14, mfc="none", mew=1.5, label="goal", zorder=5)
        ax.set_aspect("equal")
        ax.set_xlabel("x (task units)")
        ax.set_ylabel("y (task units)")
        ax.set_title(f"cup, H={horizon}: each planner's plan for task seed 0\n"
                     "(solid + circle: ends within the threshold; dashed + cross: fails)", fontsize=9)
        ax.legend(fontsize=7, loc="lower left")
        fig.tight_layout()
        fig.savefig(out / f"cup_trajectories{suffix}.png", dpi=120)
        plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="few problems and horizons (minutes on 2 CPU cores)")
    parser.add_argument("--ablations", action="store_true", help="GRASP ablations instead of the baselines")
    parser.add_argument("--num-problems", type=int, default=None, help="start/goal pairs per cell")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats per cell (median reported)")
    parser.add_argument("--out", type=Path, default=Path("results"))
    args = parser.parse_args(argv)
    if args.num_problems is None:
        args.num_problems = 8 if args.quick else 32
    if args.repeats is None:
        args.repeats = 1 if args.quick else 3
    args.out.mkdir(parents=True, exist_ok=True)

    t0 = time.perf_counter()
    out = run(args)
    rows = out["rows"]
    suffix = "_ablations" if args.ablations else ""
    table = markdown(rows)
    meta = dict(
        **machine_record(),
        command=command_line("benchmarks.compare", argv),
        seeds=f"start/goal pairs: task.sample(seed) for seed in range({args.num_problems}); planner key jax.random.key(0)",
        quick=args.quick,
        repeats=args.repeats,
        linear_rho=LINEAR_RHO,
        total_s=time.perf_counter() - t0,
    )
    (args.out / f"compare{suffix}.json").write_text(json.dumps(dict(meta=meta, rows=rows), indent=1))
    (args.out / f"compare{suffix}.md").write_text(f"{table}\n\n{json.dumps(meta)}\n")
    plot(rows, out["examples"], args.out, suffix)
    print(table)
    print(f"\nwrote {args.out}/compare{suffix}.json, .md and PNG plots in {meta['total_s']:.0f} s on {meta['devices']}")


if __name__ == "__main__":
    main()
