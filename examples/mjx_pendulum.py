"""Plan through a simulator we did not write: MuJoCo MJX (``pip install -e '.[mjx]'``).

A torque-limited pendulum swing-up, defined in MJCF and stepped by ``mujoco.mjx``: the
world model handed to ``gj.plan`` *is* the simulator (``mjx.step`` is a differentiable JAX
function), so this is how a JAX user calls the planner from their own pipeline. The motor's
torque is 0.4 of what holding the pole horizontal needs, so the pole cannot be lifted
directly: a plan must pump energy by swinging back and forth first (non-greedy).

Each plan is then judged in MuJoCo itself (the C simulator, ``mujoco.mj_step``, not MJX and
not our code): the executed final angle must be within 0.3 rad of upright and the speed
below 1 rad/s. Run: ``python examples/mjx_pendulum.py`` (about a minute on 2 CPU cores,
most of it compiling); ``--quick`` for a smaller budget (what the test runs).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import time

import jax
import jax.numpy as jnp
import mujoco
import numpy as np

import grasp_jax as gj

with contextlib.redirect_stdout(io.StringIO()):  # MJX prints that its optional Warp backend is absent
    from mujoco import mjx

XML = """
<mujoco model="pendulum">
  <option timestep="0.01" integrator="Euler"/>
  <worldbody>
    <body name="pole">
      <joint name="hinge" type="hinge" axis="0 1 0" damping="0.02"/>
      <geom type="capsule" fromto="0 0 0 0 0 -0.5" size="0.03" mass="1"/>
    </body>
  </worldbody>
  <actuator>
    <motor joint="hinge" gear="1" ctrllimited="true" ctrlrange="-1 1"/>
  </actuator>
</mujoco>
"""
FRAME_SKIP = 5  # one planning step = 5 simulator steps = 0.05 s
UPRIGHT = np.pi  # qpos = 0 hangs down; +pi is upright (the goal)


def make_dynamics(mj_model):
    """``s' = F(s, a)`` with ``s = (qpos, qvel)``, ``a = ctrl``: FRAME_SKIP ``mjx.step`` calls."""
    model = mjx.put_model(mj_model)
    data0 = mjx.make_data(model)

    def dynamics(params, state, action):
        data = data0.replace(qpos=state[:1], qvel=state[1:], ctrl=action)
        data = jax.lax.fori_loop(0, FRAME_SKIP, lambda _, d: mjx.step(model, d), data)
        return jnp.concatenate([data.qpos, data.qvel])

    return dynamics


def swing_up_cost(states, actions, goal):
    """Upright and still at the end (angle error through its cosine: no wrapping issues)."""
    final = states[-1]
    return 10.0 * (1.0 - jnp.cos(final[0] - goal[0])) + 0.1 * (final[1] - goal[1]) ** 2


def execute_in_mujoco(mj_model, start, actions) -> np.ndarray:
    """Runs a plan open loop in MuJoCo's C simulator; returns the final ``(qpos, qvel)``."""
    data = mujoco.MjData(mj_model)
    data.qpos[:], data.qvel[:] = start[:1], start[1:]
    for a in np.asarray(actions, np.float64):
        data.ctrl[:] = a
        for _ in range(FRAME_SKIP):
            mujoco.mj_step(mj_model, data)
    return np.concatenate([data.qpos, data.qvel])


def swung_up(final) -> bool:
    angle_error = np.abs((final[0] - UPRIGHT + np.pi) % (2 * np.pi) - np.pi)
    return bool(angle_error < 0.3 and abs(final[1]) < 1.0)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller budget (the test's setting)")
    parser.add_argument("--num-starts", type=int, default=4, help="start angles near hanging down")
    parser.add_argument("--planners", nargs="*", default=["grasp", "bptt", "cem"], help="which planners to run")
    parser.add_argument("--out", default=None, help="write the results as JSON to this file")
    args = parser.parse_args(argv)

    mj_model = mujoco.MjModel.from_xml_string(XML)
    horizon = 60  # 3 s
    problem = gj.Problem(make_dynamics(mj_model), horizon=horizon, action_dim=1, action_low=-1.0,
                         action_high=1.0, cost=swing_up_cost)
    # seeded starts: hanging down, small random angle and speed
    rng = np.random.default_rng(0)
    starts = np.stack([rng.uniform(-0.2, 0.2, args.num_starts), rng.uniform(-0.5, 0.5, args.num_starts)], -1)
    goals = np.tile([UPRIGHT, 0.0], (args.num_starts, 1))
    iterations = 100 if args.quick else 300
    factories = {
        "grasp": lambda: gj.grasp(iterations=iterations),
        "bptt": lambda: gj.bptt(iterations=iterations),
        "cem": lambda: gj.cem(iterations=max(iterations // 10, 10)),
    }
    unknown = sorted(set(args.planners) - set(factories))
    if unknown:
        raise SystemExit(f"--planners: each must be one of {sorted(factories)}; got {unknown}")
    planners = {name: factories[name]() for name in args.planners}
    print(f"pendulum swing-up in MJX, H = {horizon} steps of {FRAME_SKIP * mj_model.opt.timestep:.2f} s, "
          f"{args.num_starts} starts; judged in MuJoCo (C)")
    results, seconds = {}, {}
    s0, g = jnp.asarray(starts, jnp.float32), jnp.asarray(goals, jnp.float32)
    for name, planner in planners.items():
        t0 = time.perf_counter()
        batch = jax.block_until_ready(gj.plan_batch(planner, problem, None, s0, g, jax.random.key(0)))
        t1 = time.perf_counter()  # the same call again: compiled once, reused (no recompilation)
        batch = jax.block_until_ready(gj.plan_batch(planner, problem, None, s0, g, jax.random.key(0)))
        run_s = time.perf_counter() - t1
        finals = [execute_in_mujoco(mj_model, s, a) for s, a in zip(starts, batch.actions)]
        ok = [swung_up(f) for f in finals]
        model_ok = [swung_up(np.asarray(s[-1])) for s in batch.states]
        results[name] = dict(success_mujoco=float(np.mean(ok)), success_mjx=float(np.mean(model_ok)))
        seconds[name] = dict(compile_s=round(t1 - t0 - run_s, 2), run_s=round(run_s, 2), iterations=planner.iterations)
        print(f"  {name:6s} swung up in MuJoCo: {sum(ok)}/{len(ok)}   (under MJX: {sum(model_ok)}/{len(ok)}; "
              f"plan {run_s:.1f} s for the batch, compile {t1 - t0 - run_s:.0f} s)")
    if args.out:
        import json
        import platform
        import sys

        meta = dict(command=" ".join(["python examples/mjx_pendulum.py"] + (sys.argv[1:] if argv is None else list(argv))),
                    date=time.strftime("%Y-%m-%d %H:%M"), machine=platform.machine(), cpu_count=os.cpu_count(),
                    devices=[str(d) for d in jax.devices()], versions=dict(jax=jax.__version__, mujoco=mujoco.__version__),
                    horizon=horizon, num_starts=args.num_starts, seeds="starts: numpy default_rng(0); planner key 0")
        rows = [dict(planner=n, **results[n], **seconds[n]) for n in results]
        with open(args.out, "w") as f:
            json.dump(dict(meta=meta, rows=rows), f, indent=1)
        print(f"wrote {args.out}")
    return results


if __name__ == "__main__":
    main()
