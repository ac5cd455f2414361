"""Speed and scaling: time per iteration of GRASP and BPTT vs horizon and batch size.

    python -m benchmarks.speed --quick        # a couple of minutes on 2 CPU cores
    python -m benchmarks.speed                # horizons 16..512, batches 1..1024

On the shipped Push-T world model (residual MLP, 256 wide, 3 blocks), one iteration of

* **GRASP** (``sync="none"``, one particle: the relaxed step alone) is one batched model
  call over all ``H`` time steps, its backward pass, and an Adam step;
* **BPTT** is a ``lax.scan`` rollout of ``H`` sequential model calls and its backward pass.

Per-iteration time is measured as ``(t(n2) - t(n1)) / (n2 - n1)`` from the medians of
``--repeats`` timed runs of the ``plan_batch`` programs with ``n1`` and ``n2`` iterations
(compiled ahead of time, one untimed run first; ``block_until_ready``), so set-up and the
final rollout cancel. Also reported: world model evaluations per second, achieved FLOP/s
(model FLOPs counted analytically, as XLA's cost analysis skips loop bodies) against the
machine's measured float32 matmul peak, and the compiled program's memory (XLA's buffer assignment: arguments + outputs + temporaries).
GRASP's full default (16 particles, BPTT sync every 50) is timed too, per iteration.

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
from benchmarks.compare import compile_plan_batch, machine_record

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


def _compile_and_time(planner, problem, params, s0, g, repeats: int) -> dict:
    """Compiles ``plan_batch`` ahead of time, then times ``repeats`` runs of the executable.

    Returns compile seconds, the median run seconds, and the buffer sizes (arguments +
    outputs + temporaries) XLA assigned to that same compiled program.
    """
    compiled, dynamic, compile_s = compile_plan_batch(planner, problem, params, s0, g, mesh=None)
    jax.block_until_ready(compiled(*dynamic))  # first run: allocations, caches
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(compiled(*dynamic))
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


def measure(method: str, wm, horizon: int, batch: int, n1: int, n2: int, repeats: int, peak: float) -> dict:
    make = {
        "grasp": lambda n: gj.grasp(iterations=n, sync="none", num_particles=1, sync_every=n),
        "bptt": lambda n: gj.bptt(iterations=n),
        "grasp (default: 16 particles, sync)": lambda n: gj.grasp(iterations=n, sync_every=min(50, n)),
    }[method]
    problem = wm.problem(horizon)
    rng = np.random.default_rng(0)
    s0 = jnp.asarray(rng.normal(size=(batch, wm.latent_dim)), jnp.float32)
    g = jnp.asarray(rng.normal(size=(batch, wm.latent_dim)), jnp.float32)
    r1, r2 = (_compile_and_time(make(n), problem, wm.params, s0, g, repeats) for n in (n1, n2))
    per_iter = max(r2["seconds"] - r1["seconds"], 1e-9) / (n2 - n1)
    # XLA's cost analysis does not count the FLOPs inside while loops (the iterations), so
    # FLOPs are counted analytically: 2 per weight per model evaluation forward, x3 with the
    # backward pass (both methods differentiate every evaluation once per iteration).
    # The default GRASP row also runs syncs (BPTT steps) that this count leaves out: None.
    particles = 16 if method.startswith("grasp (default") else 1
    flops_iter = None if particles > 1 else 3 * model_flops(wm) * batch * horizon
    c1, mem = r1["compile_s"], r2["bytes"]
    return dict(
        method=method,
        horizon=horizon,
        batch=batch,
        seconds_per_iteration=per_iter,
        compile_s=c1,
        model_evals_per_s=batch * particles * horizon / per_iter,
        flops_per_iteration=flops_iter,
        flop_per_s=None if flops_iter is None else flops_iter / per_iter,
        fraction_of_peak=None if flops_iter is None else flops_iter / per_iter / peak,
        program_bytes=mem,
        iterations=(n1, n2),
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="three horizons and batches, few iterations")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", default="pusht", help="shipped state model to time (default pusht)")
    parser.add_argument("--out", type=Path, default=Path("results"))
    args = parser.parse_args(argv)
    from tqdm import tqdm

    args.out.mkdir(parents=True, exist_ok=True)
    wm = gj.models.pretrained(args.model)
    horizons = QUICK_HORIZONS if args.quick else HORIZONS
    batches = QUICK_BATCHES if args.quick else BATCHES
    n1, n2 = (2, 6) if args.quick else (5, 25)
    t0 = time.perf_counter()
    peak = matmul_peak()
    base_batch, base_h = 1, 64
    cells = [("grasp", h, base_batch) for h in horizons] + [("bptt", h, base_batch) for h in horizons]
    cells += [("grasp", base_h, b) for b in batches if b != base_batch] + [("bptt", base_h, b) for b in batches if b != base_batch]
    cells += [("grasp (default: 16 particles, sync)", h, base_batch) for h in horizons]
    rows = []
    for method, h, b in tqdm(cells, desc="speed", unit="cell"):
        # BPTT at long horizons is slow per iteration: fewer iterations keep the run short
        rows.append(measure(method, wm, h, b, n1, n2, args.repeats, peak))
    meta = dict(
        **machine_record(),
        model=args.model,
        matmul_peak_flop_per_s=peak,
        iterations=(n1, n2),
        repeats=args.repeats,
        total_s=time.perf_counter() - t0,
        command="python -m benchmarks.speed" + (" --quick" if args.quick else ""),
    )
    lines = [
        f"Measured float32 matmul peak: {peak / 1e9:.1f} GFLOP/s ({meta['devices'][0]}, {meta['cpu_count']} cores).",
        "",
        "| method | H | batch | ms / iteration | BPTT / GRASP time | model evals / s | GFLOP/s | % of peak | program MiB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ratio = ""
        if r["method"] == "bptt":
            g = next(x for x in rows if x["method"] == "grasp" and x["horizon"] == r["horizon"] and x["batch"] == r["batch"])
            ratio = f"{r['seconds_per_iteration'] / g['seconds_per_iteration']:.2f}x"
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
    plot(rows, meta, args.out)
    print(table)
    print(f"wrote {args.out}/speed.json, speed.md, speed.png in {meta['total_s']:.0f} s")


def plot(rows, meta, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for method in dict.fromkeys(r["method"] for r in rows):
        by_h = [r for r in rows if r["method"] == method and r["batch"] == 1]
        axes[0].plot([r["horizon"] for r in by_h], [1e3 * r["seconds_per_iteration"] for r in by_h], "o-", label=method)
        axes[2].plot([r["horizon"] for r in by_h], [r["program_bytes"] / 2**20 for r in by_h], "o-", label=method)
        by_b = [r for r in rows if r["method"] == method and r["horizon"] == 64]
        if len(by_b) > 1:
            axes[1].plot([r["batch"] for r in by_b], [r["model_evals_per_s"] for r in by_b], "o-", label=method)
    for ax, (xl, yl) in zip(axes, (("horizon H (batch 1)", "ms per iteration"), ("batch (H = 64)", "model evals / s"),
                                   ("horizon H (batch 1)", "compiled program MiB"))):
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
