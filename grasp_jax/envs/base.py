"""The environment interface shared by every reference environment.

An environment is a small stateful object on the host (the real simulators are host
libraries; Wall also exposes pure JAX functions for on-device loops):

    obs = env.reset(seed)                   # 1-D float64 state vector [obs_dim]
    obs = env.step(action)                  # action [action_dim] inside the box
    env.is_success(obs, goal)               # bool, documented threshold
    start, goal = env.sample_task(seed)     # start == env.reset(seed); goal reachable
    start, goal = env.sample_task(seed, steps=25)   # goal = `steps` exploration steps away
    image = env.render()                    # uint8 [height, width, 3]
    image = env.render(64)                  # uint8 [64, 64, 3]: what a pixel model of the env encodes

``sample_task`` leaves the environment at ``start`` so that ``env.step`` can execute a
plan from it right away.
"""

from __future__ import annotations

import contextlib
import io
import sys
import warnings

import numpy as np

__all__ = ["Env", "check_action", "check_render_size", "quiet_imports"]

# Import-time notices of the host simulators' packages, printed (not warned) on first import:
# gymnasium / gymnasium-robotics print their ``farama_notifications`` entry to stderr (e.g. the
# Adroit reward notice of gymnasium-robotics 1.4), pygame prints its support prompt to stdout.
# They land in the middle of the benchmarks' progress bars; nothing in them concerns us.
_NOTICE_PREFIXES = ("pygame ", "Hello from the pygame community")


def _farama_notices() -> set[str]:
    """The texts gymnasium / gymnasium-robotics print on import (``farama_notifications``)."""
    try:
        from farama_notifications import notifications
    except Exception:  # pragma: no cover - depends on the install
        return set()
    return {msg for by_version in notifications.values() for msg in by_version.values() if msg.strip()}


@contextlib.contextmanager
def quiet_imports():
    """Imports the host simulators' packages without their import-time notices.

    Scoped to the ``with`` block: it drops the Farama and pygame notices printed while the
    block runs (every other line is passed on to stdout/stderr afterwards) and the
    deprecation warnings those packages raise on import. Warnings and output of later
    calls are untouched.
    """
    out, err = io.StringIO(), io.StringIO()
    try:
        with warnings.catch_warnings():
            for module in ("gymnasium", "gymnasium_robotics", "gym_pusht", "pygame", "pymunk", "mujoco"):
                warnings.filterwarnings("ignore", category=DeprecationWarning, module=module)
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                yield
    finally:
        notices = _farama_notices()
        for captured, stream in ((out, sys.stdout), (err, sys.stderr)):
            text = captured.getvalue()
            for notice in notices:
                text = text.replace(notice + "\n", "")
            stream.write("".join(line for line in text.splitlines(keepends=True) if not line.startswith(_NOTICE_PREFIXES)))


def check_action(env, action) -> np.ndarray:
    """Validates an action for ``env.step``: shape ``[action_dim]``, finite, in the box."""
    a = np.asarray(action, dtype=np.float64)
    if a.shape != (env.action_dim,):
        raise ValueError(
            f"{env.name}.step: action must have shape [action_dim]=({env.action_dim},); got {a.shape}."
        )
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{env.name}.step: action must be finite; got {a.tolist()}.")
    return np.clip(a, env.action_low, env.action_high)


def check_render_size(env, size, default: int | None) -> int | None:
    """Validates ``env.render``'s ``size``: ``None`` (returns the env's ``default``) or an int >= 8."""
    if size is None:
        return default
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 8:
        raise ValueError(f"{env.name}.render: size must be None or an int >= 8; got {size!r}.")
    return int(size)


class Env:
    """Base class: subclasses set the attributes below and implement the methods.

    Attributes:
      name: registry name (``grasp_jax.envs.make(name)``).
      obs_dim, action_dim: sizes of the observation and action vectors.
      action_low, action_high: ``[action_dim]`` float arrays; actions are clipped to them.
      success_threshold: the documented threshold used by :meth:`is_success`.
      default_task_steps: exploration steps used by ``sample_task(seed, steps=...)`` when the
        benchmarks ask for goals "a horizon away".
    """

    name: str = "env"
    obs_dim: int
    action_dim: int
    action_low: np.ndarray
    action_high: np.ndarray
    success_threshold: float

    def reset(self, seed: int = 0) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError

    def step(self, action) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError

    def is_success(self, obs, goal) -> bool:  # pragma: no cover - interface
        raise NotImplementedError

    def sample_task(self, seed: int = 0, steps: int | None = None):
        """A reachable ``(start, goal)`` pair; ``start == reset(seed)``.

        ``steps=None`` gives the environment's own task distribution (documented per
        environment); ``steps=k`` rolls the exploration policy ``k`` steps from ``start``
        and returns where it ended, so the goal is at most ``k`` steps away. The
        environment is left at ``start``.
        """
        if steps is not None and (not isinstance(steps, (int, np.integer)) or steps < 0):
            raise ValueError(f"sample_task: steps must be a non-negative int or None; got {steps!r}.")
        start = self.reset(seed)
        if steps is None:
            goal = self._default_goal(seed, start)
        else:
            rng = np.random.default_rng([seed, 7919])
            obs, memory = start, None
            for _ in range(int(steps)):
                action, memory = self.exploration_action(rng, obs, memory)
                obs = self.step(action)
            goal = obs
            self.reset(seed)
        return start, np.asarray(goal, dtype=np.float64)

    def _default_goal(self, seed: int, start: np.ndarray) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def render(self, size: int | None = None) -> np.ndarray:  # pragma: no cover - interface
        """The current state drawn as ``uint8 [size, size, 3]`` (``None``: the env's own size)."""
        raise NotImplementedError

    def exploration_action(self, rng: np.random.Generator, obs: np.ndarray, memory):
        """One action of the data-collection policy; returns ``(action, memory)``."""
        raise NotImplementedError  # pragma: no cover - interface

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(obs_dim={self.obs_dim}, action_dim={self.action_dim}, "
            f"success_threshold={self.success_threshold})"
        )
