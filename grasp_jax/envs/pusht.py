"""Push-T: the real one, from ``gym-pusht`` (pymunk physics), as DINO-WM and GRASP use.

Observation (7-D): ``[agent_x, agent_y, block_x, block_y, block_angle, agent_vx, agent_vy]``
in the package's 512 x 512 board units. The package's own state observation is the first
five entries; the agent velocity is appended because the agent is PD-controlled and its
velocity carries over between steps (without it a learned model is not Markov).

Action (2-D, relative): the offset of the PD controller's target from the agent's current
position, in ``[-64, 64]`` board units per axis (the package's own action is the absolute
target ``agent_xy + offset``). One step is 0.1 s of simulation.

Success (DINO-WM's threshold): ``||(agent_xy, block_xy) - goal||_2 < 20`` over the 4
position entries and the wrapped block-angle error ``< pi/9``. :meth:`PushTEnv.coverage`
gives the package's own criterion (area overlap of the T with the T at the goal pose;
the package counts success at coverage > 0.95).

``sample_task(seed)`` uses the package's random reset for the start and rolls the
exploration policy ``default_task_steps`` steps for the goal; ``steps=`` sets the distance.
"""

from __future__ import annotations

import numpy as np

from grasp_jax.envs.base import Env, check_action, check_render_size, quiet_imports

__all__ = ["PushTEnv", "pusht_success", "tee_outline", "render_states"]

POSITION_THRESHOLD = 20.0
ANGLE_THRESHOLD = np.pi / 9
MAX_OFFSET = 64.0


def _angle_error(a, b):
    d = np.abs(np.asarray(a) - np.asarray(b)) % (2 * np.pi)
    return np.minimum(d, 2 * np.pi - d)


def pusht_success(obs, goal) -> np.ndarray:
    """DINO-WM's Push-T success on ``[..., >=5]`` arrays (numpy, broadcasting)."""
    obs, goal = np.asarray(obs), np.asarray(goal)
    pos = np.linalg.norm(obs[..., :4] - goal[..., :4], axis=-1)
    return (pos < POSITION_THRESHOLD) & (_angle_error(obs[..., 4], goal[..., 4]) < ANGLE_THRESHOLD)


# The T's outline in the block's own frame (gym-pusht's ``add_tee``, scale 30, length 4):
# a 120 x 30 bar on top of a 30 x 90 stem; world point = position + R(angle) @ local point.
TEE_OUTLINE = np.array(
    [(-60.0, 0.0), (60.0, 0.0), (60.0, 30.0), (15.0, 30.0), (15.0, 120.0), (-15.0, 120.0), (-15.0, 30.0), (-60.0, 30.0)]
)


def tee_outline(pose) -> np.ndarray:
    """The block's outline ``[8, 2]`` in board units at ``pose = (block_x, block_y, angle)``
    (or a full 7-D observation), for drawing the block's pose."""
    pose = np.asarray(pose, np.float64)
    x, y, angle = pose[2:5] if pose.shape[-1] >= 7 else pose[:3]
    c, s = np.cos(angle), np.sin(angle)
    return np.array([x, y]) + TEE_OUTLINE @ np.array([[c, s], [-s, c]])


_RENDERERS: dict = {}  # image size -> a private PushTEnv that only draws


def render_states(obs, size: int = 64) -> np.ndarray:
    """The package's pixel observations of Push-T states: ``obs [..., >=5] -> uint8 [..., size, size, 3]``.

    Each image is exactly the frame ``gym-pusht`` returns as its pixel observation
    (``obs_type="pixels"``: the 512 x 512 pygame drawing with the goal T, resized by OpenCV)
    when the simulator is in that state; the agent's velocity does not show. A private
    simulator instance per image size is posed (block angle, then positions, as the
    package's own ``_set_state`` should: the angle turns the block about its centre of
    gravity) and drawn without stepping the physics, so no state is disturbed.
    """
    obs = np.asarray(obs, np.float64)
    if obs.ndim < 1 or obs.shape[-1] < 5 or not np.all(np.isfinite(obs[..., :5])):
        raise ValueError(f"render_states: obs must be finite Push-T states [..., >=5]; got shape {obs.shape}.")
    if size not in _RENDERERS:
        _RENDERERS[size] = PushTEnv(render_size=size)
    u = _RENDERERS[size]._u
    flat = obs.reshape(-1, obs.shape[-1])
    out = np.empty((flat.shape[0], size, size, 3), np.uint8)
    for i, o in enumerate(flat):  # pygame draws one frame at a time
        u.block.angle = float(o[4])
        u.agent.position = (float(o[0]), float(o[1]))
        u.block.position = (float(o[2]), float(o[3]))
        u.space.reindex_shapes_for_body(u.agent)
        u.space.reindex_shapes_for_body(u.block)
        out[i] = u._render(visualize=False)
    return out.reshape(obs.shape[:-1] + (size, size, 3))


def _import_gym_pusht():
    try:
        with quiet_imports():
            import gymnasium as gym
            import gym_pusht  # noqa: F401  (registers the environment)
    except ImportError as e:  # pragma: no cover - depends on the install
        raise ImportError(
            "grasp_jax.envs.make('pusht') needs the gym-pusht package: pip install 'grasp_jax[envs]'"
        ) from e
    return gym


class PushTEnv(Env):
    """Wrapper of ``gym_pusht/PushT-v0`` with the common interface (see module docstring)."""

    name = "pusht"
    obs_dim = 7
    action_dim = 2
    success_threshold = POSITION_THRESHOLD
    default_task_steps = 25

    def __init__(self, render_size: int = 96):
        gym = _import_gym_pusht()
        self._env = gym.make(
            "gym_pusht/PushT-v0",
            obs_type="state",
            render_mode="rgb_array",
            observation_width=render_size,
            observation_height=render_size,
            visualization_width=render_size,
            visualization_height=render_size,
        )
        self._u = self._env.unwrapped
        self.action_low = -MAX_OFFSET * np.ones(2)
        self.action_high = MAX_OFFSET * np.ones(2)
        self._obs = self.reset(0)

    def _observe(self, state) -> np.ndarray:
        vel = np.array(self._u.agent.velocity, dtype=np.float64)
        self._obs = np.concatenate([np.asarray(state, np.float64), vel])
        return self._obs.copy()

    def reset(self, seed: int = 0) -> np.ndarray:
        state, _ = self._env.reset(seed=int(seed))
        return self._observe(state)

    def step(self, action) -> np.ndarray:
        offset = check_action(self, action)
        target = np.clip(self._obs[:2] + offset, 0.0, 512.0)
        state, *_ = self._env.step(target)
        return self._observe(state)

    def is_success(self, obs, goal) -> bool:
        return bool(pusht_success(obs, goal))

    def sample_task(self, seed: int = 0, steps: int | None = None):
        return super().sample_task(seed, self.default_task_steps if steps is None else steps)

    def coverage(self, obs, goal) -> float:
        """Area overlap of the T at ``obs``'s block pose with the T at ``goal``'s (0..1)."""
        from gym_pusht.envs.pusht import pymunk_to_shapely

        shapes = self._u.block.shapes
        a = pymunk_to_shapely(self._u.get_goal_pose_body(np.asarray(obs)[2:5]), shapes)
        b = pymunk_to_shapely(self._u.get_goal_pose_body(np.asarray(goal)[2:5]), shapes)
        return float(a.intersection(b).area / b.area)

    def render(self, size: int | None = None) -> np.ndarray:
        """The current state drawn as ``uint8 [h, w, 3]``. ``size=None``: the package's
        visualisation (``render_size`` square); ``size=64``: gym-pusht's pixel observation of
        this state at ``size`` x ``size`` (:func:`render_states`), the frame the pixel model
        ``pusht-pixels`` encodes."""
        size = check_render_size(self, size, None)
        if size is None:
            u = self._u
            if min(u.visualization_width, u.visualization_height) >= 96:
                return np.asarray(self._env.render(), dtype=np.uint8)
            # gym-pusht marks the last action with a cross of thickness int(size / 96), which OpenCV
            # refuses below 96 pixels once a step was taken: draw the same frame without the cross.
            return np.asarray(u._get_img(u._draw(), u.visualization_width, u.visualization_height), dtype=np.uint8)
        return render_states(self._obs, size)

    def exploration_action(self, rng, obs, memory):
        """Half of the time push through the block: aim at a random point just beyond it."""
        if memory is None or rng.random() < 0.15:
            if rng.random() < 0.7:
                through = obs[2:4] - obs[:2]
                through = through / max(np.linalg.norm(through), 1e-6)
                memory = ("push", obs[2:4] + through * rng.uniform(20, 120) + rng.normal(scale=30.0, size=2))
            else:
                memory = ("random", rng.uniform(-1, 1, size=2) * MAX_OFFSET)
        kind, value = memory
        if kind == "push":
            offset = value - obs[:2]
            norm = np.linalg.norm(offset)
            offset = offset * min(1.0, MAX_OFFSET / max(norm, 1e-6))
        else:
            offset = value
        offset = offset + rng.normal(scale=10.0, size=2)
        return np.clip(offset, -MAX_OFFSET, MAX_OFFSET), memory
