"""Wall: two rooms joined by a door (after DINO-WM's Wall), written in JAX.

A point agent of radius ``AGENT_RADIUS`` moves in a 64 x 64 arena (units are pixels of
the 64 x 64 rendering). A vertical wall at ``x in [WALL_LEFT, WALL_RIGHT]`` splits it into
two rooms; the only passage is the door ``y in [DOOR_LOW, DOOR_HIGH]``. The door is off
centre, so the straight line between most pairs of points in different rooms is blocked:
a greedy planner pushes into the wall.

* observation: agent ``(x, y)``, float.
* action: ``[-1, 1]^2``; the agent moves by ``MAX_STEP * action`` in ``SUBSTEPS`` sub-steps,
  sliding along walls (each axis of a sub-step is rejected if it would collide).
* success (DINO-WM's threshold): ``||xy - goal_xy|| < 4.5`` pixels.
* ``sample_task(seed)``: start and goal uniformly in *different* rooms.

Everything is pure JAX (:func:`step`, :func:`render_float`, :func:`sample_free`), so data
collection, training, planning and evaluation can all run on device under ``jit`` and
``vmap``; :class:`WallEnv` is the host-side object with the common interface.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from grasp_jax.envs.base import Env, check_action, check_render_size

__all__ = ["WallEnv", "step", "render_float", "sample_free", "is_free", "SIZE"]

SIZE = 64.0
WALL_LEFT, WALL_RIGHT = 30.0, 34.0
DOOR_LOW, DOOR_HIGH = 40.0, 52.0
AGENT_RADIUS = 2.0
MAX_STEP = 2.5
SUBSTEPS = 5
SUCCESS_THRESHOLD = 4.5


def is_free(xy: jax.Array) -> jax.Array:
    """True where the agent's centre may be: inside the arena and not in the wall."""
    x, y = xy[..., 0], xy[..., 1]
    r = AGENT_RADIUS
    inside = (x >= r) & (x <= SIZE - r) & (y >= r) & (y <= SIZE - r)
    in_wall_band = (x > WALL_LEFT - r) & (x < WALL_RIGHT + r)
    in_door = (y > DOOR_LOW + r) & (y < DOOR_HIGH - r)
    return inside & ~(in_wall_band & ~in_door)


def step(xy: jax.Array, action: jax.Array) -> jax.Array:
    """One environment step (pure, jittable): ``xy [2]``, ``action [2]`` -> ``xy [2]``."""
    delta = jnp.clip(action, -1.0, 1.0) * (MAX_STEP / SUBSTEPS)

    def substep(_, p):
        px = p.at[0].add(delta[0])
        p = jnp.where(is_free(px), px, p)
        py = p.at[1].add(delta[1])
        return jnp.where(is_free(py), py, p)

    return jax.lax.fori_loop(0, SUBSTEPS, substep, xy)


def room(xy: jax.Array) -> jax.Array:
    """0 for the left room, 1 for the right one (the door corridor counts by its centre)."""
    return (xy[..., 0] > 0.5 * (WALL_LEFT + WALL_RIGHT)).astype(jnp.int32)


def sample_free(key: jax.Array, side: jax.Array | int | None = None) -> jax.Array:
    """A uniformly random free position; ``side`` 0/1 picks the room."""
    r = AGENT_RADIUS + 0.5
    k1, k2 = jax.random.split(key)
    width = WALL_LEFT - 2 * r  # both rooms are equally wide
    if side is None:
        side = jax.random.bernoulli(k1).astype(jnp.int32)
    x0 = jnp.where(side == 0, r, WALL_RIGHT + r)
    u = jax.random.uniform(k2, (2,))
    return jnp.stack([x0 + u[0] * width, r + u[1] * (SIZE - 2 * r)])


def render_float(xy: jax.Array, size: int = 64) -> jax.Array:
    """Differentiable RGB rendering ``[size, size, 3]`` in ``[0, 1]`` (JAX rasteriser)."""
    scale = size / SIZE
    c = (jnp.arange(size) + 0.5) / scale
    gx, gy = jnp.meshgrid(c, c, indexing="xy")  # image row = y, column = x
    wall = ((gx > WALL_LEFT) & (gx < WALL_RIGHT) & ~((gy > DOOR_LOW) & (gy < DOOR_HIGH))).astype(jnp.float32)
    d = jnp.sqrt((gx - xy[0]) ** 2 + (gy - xy[1]) ** 2)
    agent = jax.nn.sigmoid((AGENT_RADIUS + 1.0 - d) * 2.0 * scale)
    background = jnp.array([0.95, 0.95, 0.92])
    img = background * (1 - wall[..., None]) + jnp.array([0.3, 0.3, 0.35]) * wall[..., None]
    img = img * (1 - agent[..., None]) + jnp.array([0.85, 0.15, 0.1]) * agent[..., None]
    return img[::-1]  # y up


def render_many(xy: jax.Array, size: int = 64) -> jax.Array:
    """:func:`render_float` over any leading axes: ``xy [..., 2] -> [..., size, size, 3]``."""
    xy = jnp.asarray(xy, jnp.float32)
    flat = jax.vmap(functools.partial(render_float, size=size))(xy.reshape(-1, 2))
    return flat.reshape(xy.shape[:-1] + flat.shape[1:])


def locate_agent(image: jax.Array) -> jax.Array:
    """The agent's ``xy`` read off an image ``[..., n, n, 3]`` (uint8 or floats in [0, 1]).

    The centroid of the red agent pixels (redness ``R - (G + B) / 2`` above 0.3); used to
    judge pixel world models by what their decoder draws. ``NaN`` where no agent is drawn.
    """
    x = jnp.asarray(image)
    x = x.astype(jnp.float32) / 255.0 if x.dtype == jnp.uint8 else x.astype(jnp.float32)
    n = x.shape[-2]
    scale = n / SIZE
    w = jax.nn.relu(x[..., 0] - 0.5 * (x[..., 1] + x[..., 2]) - 0.3)
    cols = (jnp.arange(n) + 0.5) / scale
    rows = (n - jnp.arange(n) - 0.5) / scale  # image row 0 is the top (y up)
    total = w.sum((-2, -1))
    xs = (w * cols[None, :]).sum((-2, -1)) / total
    ys = (w * rows[:, None]).sum((-2, -1)) / total
    return jnp.where((total > 0)[..., None], jnp.stack([xs, ys], -1), jnp.nan)


_step_jit = jax.jit(step)
_render_jit = jax.jit(render_float, static_argnames="size")


class WallEnv(Env):
    """Host object over the JAX Wall functions (see the module docstring)."""

    name = "wall"
    obs_dim = 2
    action_dim = 2
    success_threshold = SUCCESS_THRESHOLD
    default_task_steps = 25

    def __init__(self, image_size: int = 64):
        self.action_low = -np.ones(2)
        self.action_high = np.ones(2)
        self.image_size = int(image_size)
        self._xy = np.array([10.0, 10.0])

    def reset(self, seed: int = 0) -> np.ndarray:
        key = jax.random.PRNGKey(int(seed))
        self._xy = np.asarray(sample_free(key), dtype=np.float64)
        return self._xy.copy()

    def set_state(self, obs) -> np.ndarray:
        xy = np.asarray(obs, dtype=np.float64).reshape(2)
        if not bool(is_free(jnp.asarray(xy))):
            raise ValueError(
                f"wall.set_state: obs must be a free position (inside the {SIZE}x{SIZE} arena, off the wall); "
                f"got {xy.tolist()}."
            )
        self._xy = xy
        return xy.copy()

    def step(self, action) -> np.ndarray:
        a = check_action(self, action)
        self._xy = np.asarray(_step_jit(jnp.asarray(self._xy, jnp.float32), jnp.asarray(a, jnp.float32)), np.float64)
        return self._xy.copy()

    def is_success(self, obs, goal) -> bool:
        return bool(np.linalg.norm(np.asarray(obs)[:2] - np.asarray(goal)[:2]) < SUCCESS_THRESHOLD)

    def _default_goal(self, seed, start):
        key = jax.random.fold_in(jax.random.PRNGKey(int(seed)), 1)
        return np.asarray(sample_free(key, 1 - room(jnp.asarray(start))), np.float64)

    def exploration_action(self, rng, obs, memory):
        return exploration_action_np(rng, obs, memory)

    def render(self, size: int | None = None) -> np.ndarray:
        """The agent drawn ``uint8 [size, size, 3]`` (``None``: ``image_size``), :func:`render_float` rounded."""
        img = _render_jit(jnp.asarray(self._xy, jnp.float32), size=check_render_size(self, size, self.image_size))
        return np.asarray(jnp.round(img * 255), np.uint8)


def exploration_action_np(rng: np.random.Generator, obs, memory):
    """Persistent random actions, re-drawn with probability 0.1 per step, plus noise."""
    if memory is None or rng.random() < 0.1:
        memory = rng.uniform(-1, 1, size=2)
    return np.clip(memory + 0.3 * rng.normal(size=2), -1, 1), memory


def collect(key: jax.Array, episodes: int, length: int):
    """On-device data: ``episodes`` trajectories of ``length`` steps, vmapped.

    Half the episodes walk towards random waypoints (through the door when the waypoint
    is in the other room), half take persistent random actions; both with noise.
    Returns ``(obs [E, T+1, 2], actions [E, T, 2])``.
    """

    def episode(k):
        k0, k1, k2, k3 = jax.random.split(k, 4)
        start = sample_free(k0)
        scripted = jax.random.bernoulli(k1)
        waypoints = jax.vmap(sample_free)(jax.random.split(k2, length // 10 + 1))
        noise_keys = jax.random.split(k3, length)

        def body(carry, inp):
            xy, persistent = carry
            t, nk = inp
            ka, kb, kc = jax.random.split(nk, 3)
            target = waypoints[t // 10]
            door = jnp.array([0.5 * (WALL_LEFT + WALL_RIGHT), 0.5 * (DOOR_LOW + DOOR_HIGH)])
            in_band = (xy[0] > WALL_LEFT - 3) & (xy[0] < WALL_RIGHT + 3)
            via = jnp.where((room(xy) != room(target)) & ~in_band, door, target)
            direction = (via - xy) / (jnp.linalg.norm(via - xy) + 1e-6)
            persistent = jnp.where(jax.random.bernoulli(ka, 0.1), jax.random.uniform(kb, (2,), minval=-1, maxval=1), persistent)
            base = jnp.where(scripted, direction, persistent)
            a = jnp.clip(base + 0.3 * jax.random.normal(kc, (2,)), -1, 1)
            nxt = step(xy, a)
            return (nxt, persistent), (nxt, a)

        _, (traj, actions) = jax.lax.scan(body, (start, jnp.zeros(2)), (jnp.arange(length), noise_keys))
        return jnp.concatenate([start[None], traj]), actions

    return jax.jit(jax.vmap(episode))(jax.random.split(key, episodes))
