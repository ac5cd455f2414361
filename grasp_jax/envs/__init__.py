"""Reference environments: ``grasp_jax.envs.make(name)``.

* ``"wall"``: two rooms and a door, pure JAX (:mod:`grasp_jax.envs.wall`).
* ``"pusht"``: Push-T from ``gym-pusht`` (pymunk), host only (:mod:`grasp_jax.envs.pusht`;
  ``pusht.render_states(obs)``: the package's 64 x 64 pixel observation of any state;
  ``env.render(64)``: of the current one).
* ``"pointmaze"`` / ``"pointmaze-medium"``: PointMaze U-maze / medium maze from
  ``gymnasium-robotics`` (MuJoCo), host only (:mod:`grasp_jax.envs.pointmaze`).

The simulators behind Push-T and PointMaze run on the host: never call them inside ``jit``.
"""

from __future__ import annotations

from grasp_jax.envs import pusht, wall  # pusht imports gym-pusht only when an environment is built
from grasp_jax.envs.base import Env

__all__ = ["Env", "make", "NAMES", "wall", "pusht"]

NAMES = ("wall", "pusht", "pointmaze", "pointmaze-medium")


def make(name: str, **kwargs) -> Env:
    """Builds the environment ``name`` (one of :data:`NAMES`)."""
    if name == "wall":
        from grasp_jax.envs.wall import WallEnv

        return WallEnv(**kwargs)
    if name == "pusht":
        from grasp_jax.envs.pusht import PushTEnv

        return PushTEnv(**kwargs)
    if name in ("pointmaze", "pointmaze-medium"):
        from grasp_jax.envs.pointmaze import PointMazeEnv

        return PointMazeEnv(maze="UMaze" if name == "pointmaze" else "Medium", **kwargs)
    raise ValueError(f"envs.make: name must be one of {NAMES}; got {name!r}.")
