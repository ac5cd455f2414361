"""Our CEM / MPPI against the PyTorch peers on the same world model, in one run.

    pip install -e '.[peers]'          # torch, pytorch-mppi, mbrl (mbrl-lib)
    python -m benchmarks.peers --quick
    python -m benchmarks.peers         # 20 Push-T tasks

The shipped Push-T state model is exported to PyTorch (same weights; the two models agree
to float32 rounding, checked at start-up), and every planner gets the same tasks (goals 50
environment steps away, H = 10 model steps), the same number of samples and iterations
(256 x 30), the same cost (weighted terminal latent distance), the same action box and the
same noise scales (CEM initial std half the box half-width, MPPI noise 0.3 of it; the peers'
MPPI temperature, which they apply to raw costs, is 0.3 x the cost spread of the first
iteration's samples, as our MPPI normalises by that spread):

* ``grasp_jax``: ``gj.cem`` and ``gj.mppi`` (one task per call, and all tasks in one
  ``plan_batch``);
* ``mbrl`` (mbrl-lib): ``CEMOptimizer`` and ``MPPIOptimizer``;
* ``pytorch_mppi``: ``MPPI``, iterated ``command(..., shift_nominal_trajectory=False)``
  30 times on the same state (each call is one MPPI update of the nominal plan).

Each plan is scored by rolling it out through the JAX model (success under the model,
DINO-WM's Push-T test). Time: per task, the median over tasks of one call each after a
warm-up (compile) call; PyTorch runs eagerly, as its users run it. Writes ``peers.json``
and ``peers.md`` to ``--out``.
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

H, SAMPLES, ITERATIONS, ELITES = 10, 256, 30, 32


def torch_dynamics(wm):
    """The world model's ``dynamics`` as a batched PyTorch function ``(z [B, S], a [B, A]) -> z'``."""
    import torch

    p = jax.tree.map(lambda x: torch.tensor(np.asarray(x)), wm.params)
    net = p["net"]["params"]
    depth = wm.dynamics.depth
    center, half = p["action_center"], p["action_half_width"]

    def dense(i, x):
        return x @ net[f"Dense_{i}"]["kernel"] + net[f"Dense_{i}"]["bias"]

    def gelu(x):
        return torch.nn.functional.gelu(x, approximate="tanh")  # flax's default gelu

    def layer_norm(i, x):
        ln = net[f"LayerNorm_{i}"]
        return torch.nn.functional.layer_norm(x, x.shape[-1:], ln["scale"], ln["bias"], eps=1e-6)

    @torch.no_grad()
    def f(z, a):
        u = (a - center) / half
        h = dense(0, torch.cat([z, u], -1))
        for b in range(depth):
            y = layer_norm(b, h)
            # flax names the outer Dense of `Dense(gelu(Dense(y)))` first: the inner one is 2b+2
            y = dense(2 * b + 1, gelu(dense(2 * b + 2, y)))
            h = h + y
        return z + dense(2 * depth + 1, gelu(h))

    return f


def _median_time(fn, items) -> tuple[list, float]:
    fn(items[0])  # warm-up / compile
    out, times = [], []
    for it in items:
        t0 = time.perf_counter()
        out.append(fn(it))
        times.append(time.perf_counter() - t0)
    return out, float(np.median(times))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-tasks", type=int, default=None, help="tasks (default 20; quick 4)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("results"))
    args = parser.parse_args(argv)
    try:
        import torch
    except ImportError:
        raise SystemExit("benchmarks.peers needs the peers extra: pip install -e '.[peers]'") from None
    args.out.mkdir(parents=True, exist_ok=True)
    n = args.num_tasks or (4 if args.quick else 20)
    wm = gj.models.pretrained("pusht")
    env = gj.envs.make("pusht")
    pairs = [env.sample_task(seed, steps=50) for seed in range(n)]
    goals_obs = np.stack([p[1] for p in pairs])
    z0 = np.asarray(wm.encode(np.stack([p[0] for p in pairs])))
    zg = np.asarray(wm.encode(goals_obs))
    weights = np.asarray(wm.goal_weights, np.float32)
    low, high = wm.action_low.astype(np.float32), wm.action_high.astype(np.float32)
    problem = wm.problem(H)

    f = torch_dynamics(wm)
    check = np.asarray(jax.vmap(lambda z, a: wm.dynamics(wm.params, z, a))(jnp.asarray(z0), jnp.zeros((n, wm.action_dim))))
    got = f(torch.tensor(z0), torch.zeros(n, wm.action_dim)).numpy()
    agreement = float(np.max(np.abs(check - got)))
    if agreement > 1e-3:
        raise SystemExit(f"exported PyTorch model disagrees with the JAX model: max |diff| = {agreement}")

    def torch_cost(actions, z, g):  # actions [P, H, A] -> terminal weighted distance [P]
        zz = z.expand(actions.shape[0], -1)
        for t in range(actions.shape[1]):
            zz = f(zz, actions[:, t])
        return ((zz - g) ** 2 * torch.tensor(weights)).sum(-1)

    rollout_final = jax.jit(jax.vmap(lambda z, acts: jax.lax.scan(lambda s, a: (wm.dynamics(wm.params, s, a), None), z, acts)[0]))

    def success(plans) -> float:
        final = np.asarray(wm.decode(rollout_final(jnp.asarray(z0), jnp.asarray(np.stack(plans), jnp.float32))))
        return float(np.mean([env.is_success(b, g) for b, g in zip(final, goals_obs)]))

    rows = []
    ours = {"cem": gj.cem(iterations=ITERATIONS, num_samples=SAMPLES, num_elites=ELITES),
            "mppi": gj.mppi(iterations=ITERATIONS, num_samples=SAMPLES)}
    for name, planner in ours.items():
        one = jax.jit(lambda s, g, k, planner=planner: gj.plan(planner, problem, wm.params, s, g, k).actions)
        plans, t = _median_time(lambda i: np.asarray(jax.block_until_ready(one(z0[i], zg[i], jax.random.key(i)))), list(range(n)))
        rows.append(dict(library="grasp_jax", planner=name, seconds_per_task=t, success_model=success(plans)))
        batch = lambda: jax.block_until_ready(gj.plan_batch(planner, problem, wm.params, jnp.asarray(z0), jnp.asarray(zg), jax.random.key(0)))  # noqa: E731
        batch()
        t0 = time.perf_counter()
        res = batch()
        rows.append(dict(library="grasp_jax (plan_batch)", planner=name, seconds_per_task=(time.perf_counter() - t0) / n,
                         success_model=success(list(np.asarray(res.actions)))))

    torch.manual_seed(0)
    from mbrl.planning import CEMOptimizer, MPPIOptimizer

    lb, ub = np.tile(low, (H, 1)).tolist(), np.tile(high, (H, 1)).tolist()
    half = float((high - low)[0] / 2)
    # Our MPPI divides costs by their spread; the peers take a raw temperature, so theirs is set
    # to 0.3 x the cost spread of the first iteration's samples on task 0 (the same at the start).
    probe = torch.tensor(np.clip(np.random.default_rng(0).normal(0, 0.3 * half, (SAMPLES, H, len(low))), low, high), dtype=torch.float32)
    temperature = 0.3 * float(torch_cost(probe, torch.tensor(z0[:1]), torch.tensor(zg[0])).std())
    cem = CEMOptimizer(num_iterations=ITERATIONS, elite_ratio=ELITES / SAMPLES, population_size=SAMPLES, lower_bound=lb,
                       upper_bound=ub, alpha=0.0, device=torch.device("cpu"), return_mean_elites=True)
    mppi_m = MPPIOptimizer(num_iterations=ITERATIONS, population_size=SAMPLES, gamma=1 / temperature, sigma=0.3 * half, beta=0.0,
                           lower_bound=lb, upper_bound=ub, device=torch.device("cpu"))
    x0 = torch.tensor(np.tile((low + high) / 2, (H, 1)))
    for name, opt in (("cem", cem), ("mppi", mppi_m)):
        def run(i, opt=opt):
            z, g = torch.tensor(z0[i : i + 1]), torch.tensor(zg[i])
            return opt.optimize(lambda acts: -torch_cost(acts.float(), z, g), x0=x0.clone()).numpy()

        plans, t = _median_time(run, list(range(n)))
        rows.append(dict(library="mbrl", planner=name, seconds_per_task=t, success_model=success(plans)))

    from pytorch_mppi import MPPI

    def run_pm(i):
        g = torch.tensor(zg[i])
        ctrl = MPPI(lambda z, a: f(z, a), lambda z, a: torch.zeros(z.shape[0]), nx=wm.latent_dim,
                    noise_sigma=torch.eye(wm.action_dim) * (0.3 * half) ** 2, num_samples=SAMPLES, horizon=H, lambda_=temperature,
                    u_min=torch.tensor(low), u_max=torch.tensor(high),
                    terminal_state_cost=lambda zs, acts: ((zs[..., -1, :] - g) ** 2 * torch.tensor(weights)).sum(-1).reshape(-1))
        z = torch.tensor(z0[i])
        for _ in range(ITERATIONS):
            ctrl.command(z, shift_nominal_trajectory=False)
        return ctrl.U.numpy()

    plans, t = _median_time(run_pm, list(range(n)))
    rows.append(dict(library="pytorch_mppi", planner="mppi", seconds_per_task=t, success_model=success(plans)))

    base = {r["planner"]: r["seconds_per_task"] for r in rows if r["library"] == "grasp_jax"}
    for r in rows:
        r["time_vs_grasp_jax"] = r["seconds_per_task"] / base[r["planner"]]
    meta = dict(date=time.strftime("%Y-%m-%d %H:%M"), machine=platform.machine(), cpu_count=os.cpu_count(),
                devices=[str(d) for d in jax.devices()], torch=torch.__version__, torch_threads=torch.get_num_threads(),
                jax=jax.__version__, num_tasks=n, horizon=H, samples=SAMPLES, iterations=ITERATIONS,
                model_agreement_max_abs=agreement, peer_mppi_temperature=temperature, command="python -m benchmarks.peers" + (" --quick" if args.quick else ""))
    lines = ["| library | planner | s per task | time vs grasp_jax (one task) | success under model |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['library']} | {r['planner']} | {r['seconds_per_task']:.4g} | {r['time_vs_grasp_jax']:.2f}x "
                     f"| {100 * r['success_model']:.0f}% |")
    table = "\n".join(lines)
    (args.out / "peers.json").write_text(json.dumps(dict(meta=meta, rows=rows), indent=1))
    (args.out / "peers.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
