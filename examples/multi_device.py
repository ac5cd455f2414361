"""plan_batch over several devices (here: 4 CPU devices simulated by XLA).

    python examples/multi_device.py

``gj.plan_batch(..., mesh="auto")`` (the default) splits the batch of goals over all
devices when there are several; ``mesh=`` takes your own ``jax.sharding.Mesh``.
``chunk_size`` bounds memory by planning the batch in sequential chunks. On one GPU/CPU
nothing changes. XLA_FLAGS must be set before JAX starts, hence the top of this file.
"""

import os

_FLAG = "--xla_force_host_platform_device_count=4"
if _FLAG not in os.environ.get("XLA_FLAGS", ""):  # keep any flags the caller set
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {_FLAG}".strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import time  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import grasp_jax as gj  # noqa: E402


def main():
    print("devices:", jax.devices())
    wm = gj.models.pretrained("pointmaze")
    env = gj.envs.make("pointmaze")
    pairs = [env.sample_task(seed, steps=50) for seed in range(8)]
    starts = wm.encode(np.stack([p[0] for p in pairs]))
    goals = wm.encode(np.stack([p[1] for p in pairs]))
    planner, problem = gj.cem(iterations=10), wm.problem(horizon=10)
    for label, kwargs in (("sharded (auto)", {}), ("one device", dict(mesh=None)), ("chunks of 4", dict(chunk_size=4))):
        out = gj.plan_batch(planner, problem, wm.params, starts, goals, jax.random.key(0), **kwargs)
        jax.block_until_ready(out)
        t0 = time.perf_counter()
        out = jax.block_until_ready(gj.plan_batch(planner, problem, wm.params, starts, goals, jax.random.key(0), **kwargs))
        devices = len(out.cost.sharding.device_set)
        print(f"{label:15s}: {time.perf_counter() - t0:.3f} s, result on {devices} device(s), "
              f"median cost {float(jnp.median(out.cost)):.4f}")


if __name__ == "__main__":
    main()
