"""Builds the API reference (HTML, from the docstrings) with warnings as errors.

    python docs/build.py                  # writes docs/api/ (git-ignored)
    python docs/build.py --out /tmp/api

Needs ``pip install -e '.[docs]'`` (pdoc). Exits non-zero on any warning, so a docstring
or annotation that pdoc cannot render fails CI (``tests/test_notebooks.py`` runs this).
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

MODULES = [
    "grasp_jax",
    "grasp_jax.problem",
    "grasp_jax.plan",
    "grasp_jax.planners",
    "grasp_jax.planners.base",
    "grasp_jax.planners.grasp",
    "grasp_jax.planners.bptt",
    "grasp_jax.planners.cem",
    "grasp_jax.planners.collocation",
    "grasp_jax.planners.mppi",
    "grasp_jax.planners.shooting",
    "grasp_jax.mpc",
    "grasp_jax.tasks",
    "grasp_jax.envs",
    "grasp_jax.envs.base",
    "grasp_jax.envs.wall",
    "grasp_jax.envs.pusht",
    "grasp_jax.envs.pointmaze",
    "grasp_jax.models",
    "grasp_jax.models.networks",
    "grasp_jax.models.world_model",
    "grasp_jax.models.train",
    "grasp_jax.cli",
]


def build(out: Path) -> list[Path]:
    import pdoc

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # third-party deprecations raised while importing the simulators are not ours
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"(?!grasp_jax)")
        # a module both listed here and reached from a package's __all__: one page, as wanted
        warnings.filterwarnings("ignore", message=r"The module specification .* has already been added")
        pdoc.pdoc(*MODULES, output_directory=out)
    return sorted(out.rglob("*.html"))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "api")
    args = parser.parse_args(argv)
    pages = build(args.out)
    print(f"wrote {len(pages)} pages to {args.out} (open {args.out / 'index.html'})")


if __name__ == "__main__":
    main()
