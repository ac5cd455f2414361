"""Shared drawing for the benchmarks' trajectory plots: labelled axes with units, a legend
for every marker, success and failure drawn differently, Push-T's block pose, and goal
markers that stay visible when several tasks share a goal."""

from __future__ import annotations

import numpy as np

# (x label, y label) per environment name
AXES = {
    "wall": ("x (arena pixels)", "y (arena pixels)"),
    "pusht": ("x (board units)", "y (board units)"),
    "pointmaze": ("x (m)", "y (m)"),
    "cup": ("x (task units)", "y (task units)"),
}


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def axis_labels(ax, env_name: str) -> None:
    x, y = AXES.get(env_name.split("-")[0], ("x", "y"))
    ax.set_xlabel(x, fontsize=8)
    ax.set_ylabel(y, fontsize=8)
    ax.tick_params(labelsize=7)


def draw_paths(ax, paths, starts, goals, success, *, tee=None, max_paths: int = 8) -> None:
    """Draws up to ``max_paths`` executed paths ``[N, T, 2]`` from ``starts [N, 2]`` to
    ``goals [N, 2]``: a solid line ending in a filled circle where ``success[i]``, a dashed
    line ending in a cross where not. Goals are hollow stars whose size shrinks with the
    task index, so stars of tasks that share a goal nest instead of hiding each other.

    ``tee``: Push-T only, ``(final_poses [N, 3], goal_poses [N, 3])`` (block x, y, angle): the
    block is drawn at the goal pose (dotted outline) and where it ended (filled, faint).
    """
    from grasp_jax.envs.pusht import tee_outline

    n = min(len(paths), max_paths)
    for i in range(n):
        ok = bool(success[i])
        (line,) = ax.plot(paths[i, :, 0], paths[i, :, 1], lw=1.3, ls="-" if ok else "--", zorder=2)
        color = line.get_color()
        if tee is not None:
            final_pose, goal_pose = tee[0][i], tee[1][i]
            ax.fill(*tee_outline(final_pose).T, color=color, alpha=0.18, lw=0, zorder=1)
            ax.fill(*tee_outline(goal_pose).T, fill=False, ec=color, ls=":", lw=1.0, zorder=1)
        ax.plot(*starts[i], "s", color=color, ms=4, zorder=3)
        ax.plot(*paths[i, -1], "o" if ok else "X", color=color, ms=6 if ok else 7, mec="k", mew=0.5, zorder=4)
        size = 15 - 7 * i / max(n - 1, 1)
        ax.plot(*goals[i], "*", mfc="none", mec=color, ms=size, mew=1.4, zorder=5 + i)


def path_legend(ax, *, tee: bool = False) -> None:
    """Legend naming every marker :func:`draw_paths` uses (colours pair a path with its goal)."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    k = dict(color="0.3", ls="none")
    handles = [
        Line2D([], [], marker="s", ms=4, **k, label="start"),
        Line2D([], [], marker="*", mfc="none", mec="0.3", ms=11, ls="none", label="goal (same colour as its path)"),
        Line2D([], [], color="0.3", lw=1.3, marker="o", ms=6, mec="k", mew=0.5, label="success: path, final state"),
        Line2D([], [], color="0.3", lw=1.3, ls="--", marker="X", ms=7, mec="k", mew=0.5, label="failure: path, final state"),
    ]
    if tee:
        handles += [
            Patch(facecolor="0.3", alpha=0.25, label="block where it ended"),
            Patch(facecolor="none", edgecolor="0.3", ls=":", label="block at the goal pose"),
        ]
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
