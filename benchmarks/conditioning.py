"""Conditioning of the shooting loss vs the lifted (GRASP) loss as the horizon grows.

    python -m benchmarks.conditioning --quick     # seconds
    python -m benchmarks.conditioning             # horizons up to 128

For linear dynamics ``s' = A s + B a`` (``A = rho * R(theta)``, a scaled 2-D rotation,
``B = I``) every loss below is quadratic, so its Hessian is a constant matrix and its
condition number (largest / smallest eigenvalue) says how hard it is for gradient descent:
the number of iterations plain gradient descent needs grows linearly with it.

* **shooting (dense)**: ``sum_t ||s_t(a) - g||^2`` over the actions, ``s_t`` the rollout.
  Its Jacobian holds the products ``A^k B``, so the condition number grows like
  ``rho^(2H)`` for ``rho > 1`` (and the small eigenvalues vanish for ``rho < 1``).
* **lifted**: ``sum_t ||A s_t + B a_t - s_{t+1}||^2 + gamma ||A s_t + B a_t - g||^2`` over
  the actions and the virtual states ``s_1..s_{H-1}`` (``s_H = g``), no stop-gradient.
* **lifted, stop-gradient**: GRASP's update field (the state input of the model detached),
  which is not a gradient: the condition number of its Jacobian (ratio of extreme
  singular values) is reported.

The paper's theory: the lifted losses replace the product of ``H`` state Jacobians by a sum
of local terms, so their conditioning stays bounded as ``H`` grows. Writes
``conditioning.json``, ``conditioning.md`` and ``conditioning.png`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import grasp_jax as gj

HORIZONS = (4, 8, 16, 32, 64, 128)
QUICK_HORIZONS = (4, 8, 16, 32)
RHOS = (0.9, 1.0, 1.05, 1.1)
THETA = 0.3
GAMMA = 1.0


def system(rho: float, theta: float = THETA):
    c, s = np.cos(theta), np.sin(theta)
    return jnp.asarray(rho * np.array([[c, -s], [s, c]])), jnp.eye(2)


def shooting_loss(A, B, s0, g, a):
    def step(s, a_t):
        s = A @ s + B @ a_t
        return s, s

    _, states = jax.lax.scan(step, s0, a)
    return jnp.sum((states - g) ** 2)


def _linear(params, s, a):
    return params["A"] @ s + params["B"] @ a


def lifted_loss(A, B, s0, g, s_virtual, a, stop_gradient: bool):
    """The library's own lifted loss (:func:`grasp_jax.relaxed_loss`) on ``s' = A s + B a``."""
    problem = gj.Problem(_linear, horizon=a.shape[0], action_dim=a.shape[1])
    return gj.relaxed_loss(problem, {"A": A, "B": B}, s_virtual, a, s0, g, goal_weight=GAMMA,
                           stop_gradient=stop_gradient)[0]


def condition_numbers(rho: float, horizon: int) -> dict:
    A, B = system(rho)
    s0, g = jnp.array([1.0, 0.0]), jnp.array([0.0, 1.0])
    H = horizon
    a0 = jnp.zeros((H, 2))
    hs = jax.hessian(lambda a: shooting_loss(A, B, s0, g, a.reshape(H, 2)))(a0.ravel())
    x0 = jnp.zeros(((H - 1) * 2 + H * 2,))

    def unpack(x):
        return x[: (H - 1) * 2].reshape(H - 1, 2), x[(H - 1) * 2 :].reshape(H, 2)

    hl = jax.hessian(lambda x: lifted_loss(A, B, s0, g, *unpack(x), stop_gradient=False))(x0)
    field = jax.grad(lambda x: lifted_loss(A, B, s0, g, *unpack(x), stop_gradient=True))
    js = jax.jacfwd(field)(x0)
    ev_s, ev_l = np.linalg.eigvalsh(np.asarray(hs)), np.linalg.eigvalsh(np.asarray(hl))
    sv = np.linalg.svd(np.asarray(js), compute_uv=False)
    return dict(
        rho=rho,
        horizon=H,
        shooting=float(ev_s[-1] / max(ev_s[0], 1e-300)),
        lifted=float(ev_l[-1] / ev_l[0]),
        lifted_stop_gradient=float(sv[0] / sv[-1]),
        shooting_eig_min=float(ev_s[0]),
        shooting_eig_max=float(ev_s[-1]),
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="horizons up to 32")
    parser.add_argument("--out", type=Path, default=Path("results"))
    args = parser.parse_args(argv)
    jax.config.update("jax_enable_x64", True)  # condition numbers up to ~1e16 need float64
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    horizons = QUICK_HORIZONS if args.quick else HORIZONS
    rows = [condition_numbers(rho, h) for rho in RHOS for h in horizons]
    lines = [
        "| rho | H | shooting (dense) | lifted | lifted, stop-gradient |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['rho']} | {r['horizon']} | {r['shooting']:.3g} | {r['lifted']:.3g} | {r['lifted_stop_gradient']:.3g} |")
    table = "\n".join(lines)
    from benchmarks.compare import command_line

    meta = dict(date=time.strftime("%Y-%m-%d %H:%M"), machine=platform.machine(), theta=THETA, gamma=GAMMA,
                command=command_line("benchmarks.conditioning", argv),
                jax=jax.__version__, seconds=time.perf_counter() - t0, dtype="float64")
    (args.out / "conditioning.json").write_text(json.dumps(dict(meta=meta, rows=rows), indent=1))
    (args.out / "conditioning.md").write_text(table + "\n")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(RHOS), figsize=(3.6 * len(RHOS), 3.3), sharey=True)
    for ax, rho in zip(axes, RHOS):
        mine = [r for r in rows if r["rho"] == rho]
        hs = [r["horizon"] for r in mine]
        for key, label in (("shooting", "shooting"), ("lifted", "lifted"), ("lifted_stop_gradient", "lifted + stop-grad")):
            ax.plot(hs, [r[key] for r in mine], "o-", label=label)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_title(f"A = {rho} R({THETA})", fontsize=10)
        ax.set_xlabel("horizon H")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("condition number")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out / "conditioning.png", dpi=110)
    plt.close(fig)
    print(table)
    print(f"wrote {args.out}/conditioning.json, conditioning.md, conditioning.png in {meta['seconds']:.1f} s")


if __name__ == "__main__":
    main()
