"""The ``grasp-jax`` command: every benchmark script (and model training) behind one name.

    grasp-jax worlds --quick            # = python -m benchmarks.worlds --quick
    grasp-jax sweep --quick             # horizon sweep, five planners
    grasp-jax compare --ablations       # analytic tasks
    grasp-jax speed --quick             # time per iteration, FLOP/s, memory
    grasp-jax conditioning              # shooting vs lifted Hessian conditioning
    grasp-jax peers --quick             # our CEM/MPPI vs mbrl and pytorch-mppi (extra: peers)
    grasp-jax train wall-pixels         # = python -m grasp_jax.models.train wall-pixels
"""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "worlds": "benchmarks.worlds",
    "sweep": "benchmarks.sweep",
    "compare": "benchmarks.compare",
    "speed": "benchmarks.speed",
    "conditioning": "benchmarks.conditioning",
    "peers": "benchmarks.peers",
    "train": "grasp_jax.models.train",
}


def main(argv=None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        print(__doc__)
        if argv and argv[0] not in ("-h", "--help"):
            raise SystemExit(f"grasp-jax: command must be one of {sorted(COMMANDS)}; got {argv[0]!r}")
        return
    importlib.import_module(COMMANDS[argv[0]]).main(argv[1:])


if __name__ == "__main__":
    main()
