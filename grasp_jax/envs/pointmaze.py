"""PointMaze: the real one, from ``gymnasium-robotics`` (MuJoCo).

``grasp_jax.envs.make("pointmaze")`` is the U-maze (``PointMaze_UMaze-v3``);
``make("pointmaze-medium")`` the larger ``PointMaze_Medium-v3``.

* observation (4-D): ``[x, y, vx, vy]`` of the ball (the package's ``observation``).
* action (2-D): the force, in ``[-1, 1]^2``; one step is the package's step (0.01 s x 10).
* success (DINO-WM's threshold): ``||xy - goal_xy|| < 0.5``.
* ``sample_task(seed)``: the package's own random start and goal cells for that seed;
  the goal observation is the goal position at rest.
* ``render()`` draws the maze top-down from its map with numpy (MuJoCo's own renderer
  needs an OpenGL context, which headless machines lack).
"""

from __future__ import annotations

import numpy as np

from grasp_jax.envs.base import Env, check_action, check_render_size, quiet_imports

__all__ = ["PointMazeEnv"]

SUCCESS_THRESHOLD = 0.5


def _import_robotics():
    try:
        with quiet_imports():
            import gymnasium as gym
            import gymnasium_robotics
    except ImportError as e:  # pragma: no cover - depends on the install
        raise ImportError(
            "grasp_jax.envs.make('pointmaze') needs gymnasium-robotics and mujoco: "
            "pip install 'grasp_jax[envs]'"
        ) from e
    gym.register_envs(gymnasium_robotics)
    return gym


class PointMazeEnv(Env):
    """Wrapper of ``PointMaze_<maze>-v3`` with the common interface (see module docstring)."""

    obs_dim = 4
    action_dim = 2
    success_threshold = SUCCESS_THRESHOLD

    def __init__(self, maze: str = "UMaze", render_size: int = 64):
        import warnings

        gym = _import_robotics()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self._env = gym.make(f"PointMaze_{maze}-v3", continuing_task=False, max_episode_steps=10**9)
        self.name = "pointmaze" if maze == "UMaze" else f"pointmaze-{maze.lower()}"
        self.default_task_steps = 50 if maze == "UMaze" else 100
        self._u = self._env.unwrapped
        self.maze_map = np.asarray(self._u.maze.maze_map)
        self.scale = float(self._u.maze.maze_size_scaling)
        self.action_low = -np.ones(2)
        self.action_high = np.ones(2)
        self.render_size = int(render_size)
        self._goal = np.zeros(2)
        self.reset(0)

    def reset(self, seed: int = 0) -> np.ndarray:
        obs, _ = self._env.reset(seed=int(seed))
        self._goal = np.asarray(obs["desired_goal"], np.float64)
        self._obs = np.asarray(obs["observation"], np.float64)
        return self._obs.copy()

    def step(self, action) -> np.ndarray:
        a = check_action(self, action)
        obs, *_ = self._env.step(a.astype(np.float32))
        self._obs = np.asarray(obs["observation"], np.float64)
        return self._obs.copy()

    def is_success(self, obs, goal) -> bool:
        return bool(np.linalg.norm(np.asarray(obs)[:2] - np.asarray(goal)[:2]) < SUCCESS_THRESHOLD)

    def _default_goal(self, seed, start):
        return np.concatenate([self._goal, np.zeros(2)])

    def exploration_action(self, rng, obs, memory):
        """Persistent random forces, re-drawn with probability 0.05 per step, plus noise."""
        if memory is None or rng.random() < 0.05:
            memory = rng.uniform(-1, 1, size=2)
        return np.clip(memory + 0.3 * rng.normal(size=2), -1, 1), memory

    def free_cells(self) -> np.ndarray:
        """Centres ``[n, 2]`` of the maze's open cells, in world coordinates."""
        rows, cols = np.nonzero(self.maze_map != 1)
        return np.stack([self._cell_xy(r, c) for r, c in zip(rows, cols)])

    def wall_cells(self) -> np.ndarray:
        """Centres ``[n, 2]`` of the maze's wall cells (side ``scale``), in world coordinates."""
        rows, cols = np.nonzero(self.maze_map == 1)
        return np.stack([self._cell_xy(r, c) for r, c in zip(rows, cols)])

    def _cell_xy(self, row, col):
        h, w = self.maze_map.shape
        return np.array([(col + 0.5) * self.scale - w * self.scale / 2, h * self.scale / 2 - (row + 0.5) * self.scale])

    def render(self, size: int | None = None) -> np.ndarray:
        """Top-down view: walls dark, ball red, the package's goal green; ``uint8 [n, n, 3]``
        (``n = size``, default ``render_size``)."""
        h, w = self.maze_map.shape
        n = check_render_size(self, size, self.render_size)
        span = max(h, w) * self.scale
        c = (np.arange(n) + 0.5) / n * span - span / 2
        gx, gy = np.meshgrid(c, -c)
        col = np.clip(((gx + w * self.scale / 2) // self.scale).astype(int), 0, w - 1)
        row = np.clip(((h * self.scale / 2 - gy) // self.scale).astype(int), 0, h - 1)
        img = np.full((n, n, 3), 240, np.uint8)
        img[self.maze_map[row, col] == 1] = (70, 70, 80)
        for xy, color, radius in ((self._goal, (40, 170, 60), 0.25), (self._obs[:2], (210, 40, 30), 0.2)):
            img[(gx - xy[0]) ** 2 + (gy - xy[1]) ** 2 < (radius * self.scale) ** 2] = color
        return img
