#!/usr/bin/env bash
# The GPU run: the speed grid and anytime curves at reduced N, and the lifted collocation
# planner against GRASP and multi-start BPTT, JSON + markdown + PNG in $1 (default
# results/gpu). Sized for under 8 minutes on one H100/H200-class GPU (measured: the speed
# grid 124 s on an H100, the anytime curves 177 s on an H200, collocation 93 s on an H100); on a CPU,
# GRASP_JAX_SMOKE=1 runs the speed and anytime steps at a tiny size (tests/test_benchmarks.py does;
# the collocation step is the anytime command with other planners).
#
#     bash benchmarks/gpu.sh results/gpu
set -euo pipefail
out=${1:-results/gpu}
mkdir -p "$out"
python -c "import jax; print('devices:', jax.devices())"
if [ "${GRASP_JAX_SMOKE:-0}" = "1" ]; then
  python -m benchmarks.speed --horizons 8 --batches 1 --iterations 2 4 --repeats 1 --methods grasp bptt --out "$out"
  python -m benchmarks.anytime --quick --num-tasks 2 --planners grasp cem --factors 1 --no-sim --out "$out"
  exit 0
fi
# speed: horizons 16, 64, 256 at batch 1, batch 256 at H = 64 (two compiled programs per cell)
python -m benchmarks.speed --horizons 16 64 256 --batches 1 256 --iterations 10 50 --repeats 3 --out "$out"
# anytime: Push-T, goals 80 then 40 env steps away, 32 tasks, budgets 1/4x..2x, under the model
python -m benchmarks.anytime --models pusht --horizons 80 40 --num-tasks 32 --factors 0.25 0.5 1 2 --no-sim --out "$out/pusht"
# collocation vs GRASP vs BPTT from 16 starts: Push-T, goals 80 env steps away, N = 100, 1/4..1x
python -m benchmarks.anytime --models pusht --horizons 80 --num-tasks 100 --factors 0.25 0.5 1 --no-sim --planners grasp "bptt x16" collocation --repeats 3 --out "$out/collocation"
