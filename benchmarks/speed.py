"""Speed and scaling: time per iteration of GRASP and BPTT vs horizon and batch size.

    python -m benchmarks.speed --quick        # a couple of minutes on 2 CPU cores
    python -m benchmarks.speed                # horizons 16..512, batches 1..1024

On the shipped Push-T world model (residual MLP, 256 wide, 3 blocks), one iteration of

* **GRASP** (``sync=None``, one particle: the relaxed step alone) is one batched model
  call over all ``H`` time steps, its backward pass, and an Adam step;
* **BPTT** is a ``lax.scan`` rollout of ``H`` sequential model calls and its backward pass.

Per-iteration time is measured as ``(t(n2) - t(n1)) / (n2 - n1)`` from the medians of
``--repeats`` timed runs of the ``plan_batch`` programs with ``n1`` and ``n2`` iterations
(compiled ahead of time, one untimed run first; ``block_until_ready``), so set-up and the
final rollout cancel. Also reported: world model evaluations per second, achieved FLOP/s
(model FLOPs counted analytically, as XLA's cost analysis skips loop bodies) against the
machine's measured float32 matmul peak, and the compiled program's memory (XLA's buffer assignment: arguments + outputs + temporaries).
GRASP's full default (16 particles, BPTT sync every 50) is timed too, per iteration, over
whole sync periods (FLOPs from the planner's own cost model, syncs included).

Writes ``speed.json``, ``speed.md`` and ``speed.png`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import grasp_jax as gj
from benchmarks.compare import command_line, machine_record

HORIZONS = (16, 32, 64, 128, 256, 512)
BATCHES = (1, 4, 16, 64, 256, 1024)
QUICK_HORIZONS = (16, 64, 256)
QUICK_BATCHES = (1, 16, 128)


def matmul_peak(n: int = 2048, repeats: int = 5) -> float:
    """Measured float32 matmul FLOP/s on the default device (median of ``repeats``)."""
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    f = jax.jit(lambda x: x @ x)
    jax.block_until_ready(f(a))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(f(a))
        times.append(time.perf_counter() - t0)
    return 2 * n**3 / float(np.median(times))


def _compile_and_time(planner, problem, params, s0, g, repeats: int, iterations: int) -> dict:
    """Compiles ``plan_batch`` ahead of time, then times ``repeats`` runs of the executable.

    Returns compile seconds, the median run seconds, and the buffer sizes (arguments +
    outputs + temporaries) XLA assigned to that same compiled program.
    """
    run, compile_s, compiled = gj.compile_plan_batch(
        planner, problem, params, s0, g, jax.random.key(0), iterations=iterations, mesh=None
    )
    jax.block_until_ready(run())  # first run: allocations, caches
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(run())
        times.append(time.perf_counter() - t0)
    try:
        m = compiled.memory_analysis()
        mem = int(m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes)
    except Exception:  # pragma: no cover - backend without memory analysis
        mem = -1
    return dict(compile_s=compile_s, seconds=float(np.median(times)), bytes=mem)


def model_flops(wm) -> float:
    """Forward FLOPs of one world-model evaluation: 2 per weight of every dense kernel."""
    leaves = jax.tree_util.tree_leaves_with_path(wm.params["net"])
    return float(sum(2 * x.size for path, x in leaves if "kernel" in jax.tree_util.keystr(path)))


METHODS = {
    # method: (planner, iteration counts to difference, or None for the run's n1, n2)
    # the relaxed step alone: no sync, one particle (scored once, at the last iteration)
    "grasp": (gj.grasp(sync=None, num_particles=1), None),
    "bptt": (gj.bptt(), None),
    # the full default: 16 particles, a BPTT sync every 50 iterations; timed over whole sync
    # periods, so the syncs' cost is in the difference
    "grasp (default)": (gj.grasp(), (50, 100)),
}


def measure(method: str, wm, horizon: int, batch: int, n1: int, n2: int, repeats: int, peak: float) -> dict:
    planner, counts = METHODS[method]
    n1, n2 = counts or (n1, n2)
    problem = wm.problem(horizon)
    rng = np.random.default_rng(0)
    s0 = jnp.asarray(rng.normal(size=(batch, wm.latent_dim)), jnp.float32)
    g = jnp.asarray(rng.normal(size=(batch, wm.latent_dim)), jnp.float32)
    r1, r2 = (_compile_and_time(planner, problem, wm.params, s0, g, repeats, n) for n in (n1, n2))
    per_iter = (r2["seconds"] - r1["seconds"]) / (n2 - n1)
    method_of_timing = "difference"
    if per_iter <= 0:  # timing noise larger than the extra iterations: an upper bound instead
        per_iter, method_of_timing = r2["seconds"] / n2, "total / n2 (upper bound)"
    # XLA's cost analysis does not count the FLOPs inside while loops (the iterations), so
    # FLOPs are counted analytically from the planner's own cost model: 2 per weight per
    # model evaluation (a backward pass counts as 2 evaluations).
    # per iteration of the difference n2 - n1 (what the time difference measures)
    c1, c2 = planner.iteration_cost(horizon, n1), planner.iteration_cost(horizon, n2)
    cost = gj.IterationCost(*((n2 * b - n1 * a) / (n2 - n1) for a, b in zip(c1, c2)))
    flops_iter = cost.model_calls * model_flops(wm) * batch
    c1, mem = r1["compile_s"], r2["bytes"]
    return dict(
        method=method,
        horizon=horizon,
        batch=batch,
        seconds_per_iteration=per_iter,
        compile_s=c1,
        model_evals_per_s=batch * cost.model_calls / per_iter,
        sequential_depth_per_iteration=cost.depth,
        flops_per_iteration=flops_iter,
        flop_per_s=flops_iter / per_iter,
        fraction_of_peak=flops_iter / per_iter / peak,
        program_bytes=mem,
        iterations=(n1, n2),
        timing=method_of_timing,
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="three horizons and batches, few iterations")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", default="pusht", help="shipped state model to time (default pusht)")
    parser.add_argument("--horizons", nargs="*", type=int, default=None, help="horizons (default: the grid of the mode)")
    parser.add_argument("--batches", nargs="*", type=int, default=None, help="batch sizes (default: the grid of the mode)")
    parser.add_argument("--iterations", nargs=2, type=int, default=None, help="the two iteration counts n1 n2")
    parser.add_argument("--methods", nargs="*", default=None, help=f"a subset of {sorted(METHODS)} (default: all)")
    parser.add_argument("--out", type=Path, default=Path("results"))
    args = parser.parse_args(argv)
    from tqdm import tqdm

    args.out.mkdir(parents=True, exist_ok=True)
    wm = gj.models.pretrained(args.model)
    horizons = args.horizons or (QUICK_HORIZONS if args.quick else HORIZONS)
    batches = args.batches or (QUICK_BATCHES if args.quick else BATCHES)
    n1, n2 = args.iterations or ((2, 6) if args.quick else (5, 25))
    t0 = time.perf_counter()
    peak = matmul_peak()
    base_batch, base_h = min(batches), 64 if 64 in horizons else horizons[len(horizons) // 2]
    cells = [("grasp", h, base_batch) for h in horizons] + [("bptt", h, base_batch) for h in horizons]
    cells += [("grasp", base_h, b) for b in batches if b != base_batch] + [("bptt", base_h, b) for b in batches if b != base_batch]
    cells += [("grasp (default)", h, base_batch) for h in horizons]
    if args.methods:
        unknown = sorted(set(args.methods) - set(METHODS))
        if unknown:
            raise SystemExit(f"--methods: each must be one of {sorted(METHODS)}; got {unknown}")
        cells = [c for c in cells if c[0] in args.methods]
    rows = []
    for method, h, b in tqdm(cells, desc="speed", unit="cell"):
        rows.append(measure(method, wm, h, b, n1, n2, args.repeats, peak))
        partial = dict(meta=dict(machine_record(), partial=True, matmul_peak_flop_per_s=peak), rows=rows)
        (args.out / "speed.json").write_text(json.dumps(partial, indent=1))  # survives an interrupted run
    meta = dict(
        **machine_record(),
        model=args.model,
        matmul_peak_flop_per_s=peak,
        iterations=(n1, n2),
        repeats=args.repeats,
        total_s=time.perf_counter() - t0,
        command=command_line("benchmarks.speed", argv),
    )
    lines = [
        f"Measured float32 matmul peak: {peak / 1e9:.1f} GFLOP/s ({meta['devices'][0]}, {meta['cpu_count']} cores).",
        "",
        "| method | H | batch | ms / iteration | BPTT / GRASP time | model evals / s | GFLOP/s | % of peak | program MiB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ratio = ""
        g = [x for x in rows if x["method"] == "grasp" and x["horizon"] == r["horizon"] and x["batch"] == r["batch"]]
        if r["method"] == "bptt" and g:
            ratio = f"{r['seconds_per_iteration'] / g[0]['seconds_per_iteration']:.2f}x"
        gflops = "-" if r["flop_per_s"] is None else f"{r['flop_per_s'] / 1e9:.3g}"
        pct = "-" if r["fraction_of_peak"] is None else f"{100 * r['fraction_of_peak']:.1f}"
        lines.append(
            f"| {r['method']} | {r['horizon']} | {r['batch']} | {1e3 * r['seconds_per_iteration']:.3g} | {ratio} "
            f"| {r['model_evals_per_s']:.3g} | {gflops} | {pct} "
            f"| {r['program_bytes'] / 2**20:.3g} |"
        )
    table = "\n".join(lines)
    (args.out / "speed.json").write_text(json.dumps(dict(meta=meta, rows=rows), indent=1))
    (args.out / "speed.md").write_text(table + "\n")
    plot(rows, meta, args.out, base_batch, base_h)
    print(table)
    print(f"wrote {args.out}/speed.json, speed.md, speed.png in {meta['total_s']:.0f} s")


def plot(rows, meta, out: Path, base_batch: int = 1, base_h: int = 64) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for method in dict.fromkeys(r["method"] for r in rows):
        by_h = [r for r in rows if r["method"] == method and r["batch"] == base_batch]
        axes[0].plot([r["horizon"] for r in by_h], [1e3 * r["seconds_per_iteration"] for r in by_h], "o-", label=method)
        axes[2].plot([r["horizon"] for r in by_h], [r["program_bytes"] / 2**20 for r in by_h], "o-", label=method)
        by_b = [r for r in rows if r["method"] == method and r["horizon"] == base_h]
        if len(by_b) > 1:
            axes[1].plot([r["batch"] for r in by_b], [r["model_evals_per_s"] for r in by_b], "o-", label=method)
    for ax, (xl, yl) in zip(axes, ((f"horizon H [model steps] (batch {base_batch})", "time per iteration [ms]"),
                                   (f"batch [goals] (H = {base_h})", "model evaluations per second"),
                                   (f"horizon H [model steps] (batch {base_batch})", "compiled program memory [MiB]"))):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel(xl)
        ax.set_ylabel(yl)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{meta['model']} world model, {meta['devices'][0]}, {meta['cpu_count']} cores, {meta['date']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "speed.png", dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
