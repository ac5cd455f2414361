"""Draws docs/img/grasp_idea.png, the README's one-picture explanation of GRASP.

    python docs/make_figure.py
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def main(out=Path(__file__).parent / "img" / "grasp_idea.png"):
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    t = np.linspace(0, 1, 9)
    path = np.stack([t * 8, 1.6 * np.sin(np.pi * t)], 1)
    # shooting / BPTT
    ax = axes[0]
    ax.plot(path[:, 0], path[:, 1], "-", color="0.6", lw=1)
    for i in range(len(path) - 1):
        ax.annotate("", path[i + 1], path[i], arrowprops=dict(arrowstyle="->", color="C0", lw=1.6))
        ax.text(*(path[i] + path[i + 1]) / 2 + [0, 0.25], "F", color="C0", fontsize=8, ha="center")
    ax.plot(*path[0], "ks", ms=8)
    ax.plot(8, 0, "*", color="C3", ms=16, mec="k")
    ax.set_title("Shooting / BPTT: $s_H = F(F(\\dots F(s_0, a_0)\\dots), a_{H-1})$\n"
                 "H sequential model calls; gradients multiply H state Jacobians", fontsize=9)
    # lifted
    ax = axes[1]
    rng = np.random.default_rng(0)
    virtual = path + np.concatenate([[[0, 0]], rng.normal(0, 0.25, (len(path) - 2, 2)), [[0, 0]]])
    virtual[-1] = [8, 0]
    pred = path[1:] + rng.normal(0, 0.12, (len(path) - 1, 2))
    for i in range(len(path) - 1):
        ax.annotate("", pred[i], virtual[i], arrowprops=dict(arrowstyle="->", color="C0", lw=1.2, alpha=0.8))
        ax.plot([pred[i, 0], virtual[i + 1, 0]], [pred[i, 1], virtual[i + 1, 1]], ":", color="C1", lw=2)
    ax.plot(virtual[1:-1, 0], virtual[1:-1, 1], "o", color="C2", ms=8, mec="k", label="virtual states $s_t$ (optimised, + noise)")
    ax.plot(*virtual[0], "ks", ms=8)
    ax.plot(8, 0, "*", color="C3", ms=16, mec="k", label="goal $s_H = g$")
    ax.plot([], [], ":", color="C1", lw=2, label="consistency $\\|F(\\mathrm{sg}(s_t), a_t) - s_{t+1}\\|^2$")
    ax.plot([], [], "-", color="C0", label="one model call per step, all in parallel")
    ax.legend(fontsize=7, loc="lower center")
    ax.set_title("GRASP: lifted states, one batched model call over all t;\n"
                 "stop-gradient on the state input; periodic BPTT sync", fontsize=9)
    for ax in axes:
        ax.set_xlim(-0.7, 8.7)
        ax.set_ylim(-1.6, 2.4)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
