"""The ``grasp-jax`` command (also ``python -m grasp_jax``): model training and, in a source
checkout, every benchmark script behind one name.

usage: grasp-jax COMMAND [ARGS...]      (grasp-jax COMMAND --help for a command's options)

    grasp-jax train wall-pixels         # = python -m grasp_jax.models.train wall-pixels

Benchmarks (scripts of a source checkout: `python -m benchmarks.X` there):

    grasp-jax worlds --quick            # = python -m benchmarks.worlds --quick
    grasp-jax sweep --quick             # horizon sweep, five planners
    grasp-jax compare --ablations       # analytic tasks
    grasp-jax speed --quick             # time per iteration, FLOP/s, memory
    grasp-jax conditioning              # shooting vs lifted Hessian conditioning
    grasp-jax anytime --quick           # success against wall time
    grasp-jax peers --quick             # our CEM/MPPI vs mbrl and pytorch-mppi (extra: peers)
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

__all__ = ["COMMANDS", "BENCHMARKS", "checkout_root", "main"]

BENCHMARKS = ("worlds", "sweep", "compare", "speed", "conditioning", "anytime", "peers")
"""Subcommands that run ``benchmarks.<name>`` of a source checkout."""

COMMANDS = {"train": "grasp_jax.models.train", **{name: f"benchmarks.{name}" for name in BENCHMARKS}}
"""Subcommand -> the module whose ``main(argv)`` it runs."""


def checkout_root() -> Path | None:
    """The source checkout this ``grasp_jax`` was imported from (the directory holding both
    ``grasp_jax/`` and ``benchmarks/__init__.py``), or ``None`` for an installed copy."""
    root = Path(__file__).resolve().parent.parent
    return root if (root / "benchmarks" / "__init__.py").is_file() else None


def _load(command: str):
    module = COMMANDS[command]
    if command in BENCHMARKS:
        root = checkout_root()
        if root is None:
            raise SystemExit(
                f"grasp-jax {command}: benchmarks are scripts of a source checkout: clone the "
                f"repository and run `python -m {module}` there."
            )
        if str(root) not in sys.path:
            sys.path.insert(0, str(root))
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name not in (module, "benchmarks"):
            raise  # a missing dependency of the script: its own message says which
        raise SystemExit(f"grasp-jax {command}: this checkout has no {module.replace('.', '/')}.py.") from e


def main(argv=None) -> None:
    """Runs ``grasp-jax COMMAND ARGS...`` (``argv`` defaults to ``sys.argv[1:]``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return
    command, args = argv[0], argv[1:]
    if command not in COMMANDS:
        print(__doc__, file=sys.stderr)
        raise SystemExit(f"grasp-jax: command must be one of {sorted(COMMANDS)}; got {command!r}")
    module = _load(command)
    # argparse names the program after basename(sys.argv[0]): usage lines read `grasp-jax COMMAND`.
    saved = sys.argv[0]
    sys.argv[0] = f"grasp-jax {command}"
    try:
        module.main(args)
    finally:
        sys.argv[0] = saved


if __name__ == "__main__":
    main()
