"""Flax networks and the hashable dynamics callables that ``gj.Problem`` needs.

``gj.Problem.dynamics`` is a static (hashed) argument, so every world model's dynamics is
a frozen dataclass holding only the architecture; the weights live in ``params``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

__all__ = [
    "ResidualMLP",
    "ConvEncoder",
    "KeypointEncoder",
    "ConvDecoder",
    "ResidualDynamics",
    "EnsembleDynamics",
    "PushTAgentDynamics",
    "PushTPixelAgentDynamics",
    "pusht_agent_pd",
    "WeightedGoalCost",
    "DYNAMICS",
]


class ResidualMLP(nn.Module):
    """``Dense -> depth x (LayerNorm, Dense, gelu, Dense, + skip) -> Dense``."""

    hidden: int
    depth: int
    out: int

    @nn.compact
    def __call__(self, x):
        h = nn.Dense(self.hidden)(x)
        for _ in range(self.depth):
            y = nn.LayerNorm()(h)
            y = nn.Dense(self.hidden)(nn.gelu(nn.Dense(self.hidden)(y)))
            h = h + y
        return nn.Dense(self.out, kernel_init=nn.initializers.zeros)(nn.gelu(h))


class ConvEncoder(nn.Module):
    """Images ``[..., n, n, 3]`` in ``[0, 1]`` -> latent ``[..., latent]`` (stride-2 convs)."""

    latent: int
    channels: Sequence[int] = (32, 32, 64, 64)

    @nn.compact
    def __call__(self, x):
        lead = x.shape[:-3]
        x = x.reshape((-1,) + x.shape[-3:])
        for c in self.channels:
            x = nn.gelu(nn.Conv(c, (4, 4), strides=(2, 2))(x))
        x = x.reshape((x.shape[0], -1))
        z = nn.Dense(self.latent)(nn.gelu(nn.Dense(256)(x)))
        return z.reshape(lead + (self.latent,))


class KeypointEncoder(nn.Module):
    """Images ``[..., n, n, 3]`` -> ``2 * keypoints`` image coordinates (spatial softmax).

    A deep spatial autoencoder's encoder (Finn et al., 2016): convolutions at half
    resolution, then for every output channel the softmax-weighted mean pixel position,
    ``(x, y)`` in ``[-sqrt(3), sqrt(3)]`` (unit standard deviation for a point spread
    uniformly over the image). The latent is a smooth function of where things are, so
    latent distances track distances in the scene, which is what a goal cost needs.
    """

    keypoints: int
    channels: Sequence[int] = (32, 32)

    @nn.compact
    def __call__(self, x):
        lead = x.shape[:-3]
        x = x.reshape((-1,) + x.shape[-3:])
        x = nn.gelu(nn.Conv(self.channels[0], (5, 5), strides=(2, 2))(x))
        for c in self.channels[1:]:
            x = nn.gelu(nn.Conv(c, (3, 3))(x))
        h = nn.Conv(self.keypoints, (3, 3))(x)  # [B, m, m, K]
        log_temperature = self.param("log_temperature", nn.initializers.zeros, ())
        m = h.shape[1]
        attn = jax.nn.softmax(h.reshape(h.shape[0], m * m, -1) / jnp.exp(log_temperature), axis=1)
        grid = jnp.sqrt(3.0) * ((jnp.arange(m) + 0.5) / m * 2.0 - 1.0)
        gy, gx = jnp.meshgrid(-grid, grid, indexing="ij")  # row 0 is the top of the image (y up)
        ex = jnp.einsum("bpk,p->bk", attn, gx.ravel())
        ey = jnp.einsum("bpk,p->bk", attn, gy.ravel())
        z = jnp.concatenate([ex, ey], axis=-1)
        return z.reshape(lead + (2 * self.keypoints,))


def make_encoder(kind: str, latent_dim: int) -> nn.Module:
    """The pixel encoder called ``kind`` (``"conv"`` or ``"keypoints"``) with ``latent_dim`` outputs."""
    if kind == "conv":
        return ConvEncoder(latent_dim)
    if kind == "keypoints":
        if latent_dim % 2:
            raise ValueError(f"make_encoder: a keypoint encoder needs an even latent_dim; got {latent_dim}.")
        return KeypointEncoder(latent_dim // 2)
    raise ValueError(f"make_encoder: kind must be 'conv' or 'keypoints'; got {kind!r}.")


class ConvDecoder(nn.Module):
    """Latent ``[..., latent]`` -> images ``[..., n, n, 3]`` (logits), mirror of the encoder."""

    size: int
    channels: Sequence[int] = (32, 32, 16, 16)

    @nn.compact
    def __call__(self, z):
        lead = z.shape[:-1]
        z = z.reshape((-1, z.shape[-1]))
        base = self.size // 2 ** len(self.channels)
        x = nn.gelu(nn.Dense(base * base * self.channels[0])(nn.gelu(nn.Dense(256)(z))))
        x = x.reshape((-1, base, base, self.channels[0]))
        for c in self.channels[1:]:
            x = nn.gelu(nn.ConvTranspose(c, (4, 4), strides=(2, 2))(x))
        x = nn.ConvTranspose(3, (4, 4), strides=(2, 2))(x)
        return x.reshape(lead + x.shape[1:])


@dataclasses.dataclass(frozen=True)
class ResidualDynamics:
    """``dynamics(params, z, a) = z + MLP([z, (a - a_center) / a_half_width])``.

    ``z`` is the model's latent (normalised features for state models, the encoder's
    output for pixel models); ``a`` is the model action (``frame_skip`` environment
    actions, concatenated), in environment units.
    """

    latent_dim: int
    action_dim: int
    hidden: int = 256
    depth: int = 3

    @property
    def net(self) -> ResidualMLP:
        return ResidualMLP(self.hidden, self.depth, self.latent_dim)

    def init(self, key: jax.Array) -> dict:
        x = jnp.zeros((self.latent_dim + self.action_dim,))
        return self.net.init(key, x)

    extra_dims = 0  # latent entries that are not the network's (see EnsembleDynamics)

    def __call__(self, params, z, a):
        u = (a - params["action_center"]) / params["action_half_width"]
        return z + self.net.apply(params["net"], jnp.concatenate([z, u], axis=-1))

    def config(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_config(cls, c: dict) -> "ResidualDynamics":
        return cls(**c)


@dataclasses.dataclass(frozen=True)
class WeightedGoalCost:
    """``cost(states, actions, goal) = sum_i w_i (s_H,i - g_i)^2 + extra_weight * s_H,-1`` (hashable).

    ``weights`` cover the first ``len(weights)`` latent entries: where some of them
    (velocities) should not be pinned at the goal, their weight is 0. ``extra_weight``
    charges the last latent entry linearly: an :class:`EnsembleDynamics` model's
    accumulated disagreement. ``extra_dims``: trailing latent entries that are not compared
    with the goal (an ensemble's disagreement: 1, also when ``extra_weight`` is 0, so an
    ensemble's members' mean can be planned on alone; :class:`PushTPixelAgentDynamics`: 3,
    the agent's velocity and the disagreement); default 1 when ``extra_weight`` is nonzero,
    else 0. ``len(weights)`` must be ``latent_dim - extra_dims``.
    """

    weights: tuple[float, ...]
    extra_weight: float = 0.0
    extra_dims: int | None = None

    def __post_init__(self):
        if self.extra_dims is not None and not (isinstance(self.extra_dims, int) and self.extra_dims >= 0):
            raise ValueError(f"WeightedGoalCost: extra_dims must be None or an int >= 0; got {self.extra_dims!r}.")
        if self.extra_weight and self.extra_dims == 0:
            raise ValueError(f"WeightedGoalCost: extra_weight {self.extra_weight!r} charges the last latent entry; "
                             "it needs extra_dims >= 1 (or None), got 0.")

    def __call__(self, states, actions, goal):
        n = len(self.weights)
        extra = (1 if self.extra_weight else 0) if self.extra_dims is None else self.extra_dims
        expected = states.shape[-1] - extra
        if n != expected:
            last = f" but the last {extra} (extra_dims {extra}{', the last charged by extra_weight' if self.extra_weight else ''})"
            raise ValueError(
                f"WeightedGoalCost: weights must have one entry per latent entry{last if extra else ''}, {expected}; got {n}."
            )
        w = jnp.asarray(self.weights, states.dtype)
        cost = jnp.sum(w * (states[-1, :n] - goal[:n]) ** 2)
        if self.extra_weight:
            cost = cost + self.extra_weight * states[-1, -1]
        return cost


@dataclasses.dataclass(frozen=True)
class EnsembleDynamics:
    """An ensemble of ``members`` :class:`ResidualDynamics` whose disagreement is a state.

    The latent is the members' latent plus one entry, ``z[-1]``, that accumulates the
    members' disagreement along a plan (PETS-style: a planner can penalise plans that
    leave the data the model was trained on). One step::

        z_m' = member_m(params, z[:-1], a)          for every member m (vmapped)
        mean = mean_m z_m'
        z'   = [mean, z[-1] + mean_m ||z_m' - mean||^2]

    ``params["net"]`` holds the members' weights with a leading ``[members]`` axis; the
    rest of ``params`` (normalisation, action scaling) is shared. A model encodes
    observations with ``z[-1] = 0``, so a plan's final ``z[-1]`` is the disagreement it
    collected; :class:`WeightedGoalCost` with ``extra_weight`` charges it linearly. Two
    consequences of it being a state: a warm-started MPC re-plan shifts iterates that still
    hold the disagreement of the executed steps while the new start has 0 (the optimiser
    absorbs the offset), and distances over the whole latent (``gj.final_distance``) count it.
    """

    member: ResidualDynamics
    members: int

    extra_dims = 1  # z[-1], the accumulated disagreement

    def __post_init__(self):
        if not isinstance(self.members, int) or self.members < 2:
            raise ValueError(f"EnsembleDynamics: members must be an int >= 2; got {self.members!r}.")

    @property
    def latent_dim(self) -> int:
        return self.member.latent_dim + 1

    @property
    def action_dim(self) -> int:
        return self.member.action_dim

    def init(self, key: jax.Array) -> dict:
        return jax.vmap(self.member.init)(jax.random.split(key, self.members))

    def each(self, params, z, a):
        """Every member's next (member) latent ``[members, ..., latent_dim - 1]`` from a
        member latent ``z [..., latent_dim - 1]``."""
        return jax.vmap(lambda net: self.member({**params, "net": net}, z, a))(params["net"])

    def __call__(self, params, z, a):
        nxt = self.each(params, z[..., :-1], a)
        mean = jnp.mean(nxt, axis=0)
        spread = jnp.mean(jnp.sum((nxt - mean) ** 2, axis=-1), axis=0)
        return jnp.concatenate([mean, z[..., -1:] + spread[..., None]], axis=-1)

    def config(self) -> dict:
        return dict(member=dataclasses.asdict(self.member), members=self.members)

    @classmethod
    def from_config(cls, c: dict) -> "EnsembleDynamics":
        return cls(ResidualDynamics(**c["member"]), c["members"])


def pusht_agent_pd(c, p, v, a, frame_skip: int, low: float = 0.0, high: float = 512.0):
    """gym-pusht's agent over one model action: ``frame_skip`` PD steps from position ``p`` and
    velocity ``v`` (environment units, ``[..., 2]``) under the offsets ``a [..., 2 * frame_skip]``;
    per step and axis ``p' = p + c0 v + c1 e``, ``v' = c2 v + c3 e`` with
    ``e = clip(p + offset, low, high) - p``. Returns ``(p', v')``."""
    offsets = a.reshape(a.shape[:-1] + (frame_skip, 2))
    for j in range(frame_skip):  # frame_skip (5) fixed sub-steps of a model step, not time steps of a plan
        e = jnp.clip(p + offsets[..., j, :], low, high) - p
        p, v = p + c[0] * v + c[1] * e, c[2] * v + c[3] * e
    return p, v


@dataclasses.dataclass(frozen=True)
class _PushTAgentWrapper:
    """What :class:`PushTAgentDynamics` and :class:`PushTPixelAgentDynamics` share: a wrapped
    ``inner`` dynamics whose actions are ``frame_skip`` Push-T offsets, the agent's target
    clipped to ``[low, high]``, and their saved form."""

    inner: Any
    frame_skip: int = 5
    low: float = 0.0
    high: float = 512.0

    def __post_init__(self):
        if self.inner.action_dim != 2 * self.frame_skip:
            raise ValueError(
                f"{type(self).__name__}: inner.action_dim must be 2 * frame_skip = {2 * self.frame_skip} "
                f"(frame_skip Push-T offsets); got {self.inner.action_dim}."
            )

    @property
    def latent_dim(self) -> int:
        return self.inner.latent_dim

    @property
    def action_dim(self) -> int:
        return self.inner.action_dim

    def init(self, key: jax.Array) -> dict:
        return self.inner.init(key)

    def config(self) -> dict:
        return dict(inner_class=type(self.inner).__name__, inner=self.inner.config(), frame_skip=self.frame_skip,
                    low=self.low, high=self.high)

    @classmethod
    def from_config(cls, c: dict):
        inner = DYNAMICS[c["inner_class"]].from_config(c["inner"])
        return cls(inner, c["frame_skip"], c["low"], c["high"])


@dataclasses.dataclass(frozen=True)
class PushTAgentDynamics(_PushTAgentWrapper):
    """Push-T with the agent's own motion exact: the network predicts the block.

    gym-pusht's agent is a kinematic body driven by a PD controller towards the target
    ``clip(position + offset, 0, 512)``: no contact moves it, so per environment step
    ``p' = p + c0 v + c1 e`` and ``v' = c2 v + c3 e`` with ``e = clip(p + offset, 0, 512) - p``,
    exactly (each axis alike). ``params["agent_pd"] = (c0, c1, c2, c3)`` is fitted by least
    squares on the training data (``grasp_jax.models.train.fit_agent_pd``); this class runs
    that update for the ``frame_skip`` environment actions of a model action and writes the
    agent's position and velocity (Push-T features 0:2 and 6:8, un-normalised with
    ``params["feature_mean"]`` / ``["feature_std"]``) over what ``inner`` predicted for them.
    Everything else, the block and an ensemble's disagreement, is ``inner``'s.
    """

    inner: Any  # ResidualDynamics or EnsembleDynamics

    POSITION = slice(0, 2)
    VELOCITY = slice(6, 8)

    @property
    def extra_dims(self) -> int:
        return self.inner.extra_dims

    def agent(self, params, z, a):
        """The agent's next ``(position, velocity)`` in environment units."""
        if "agent_pd" not in params:
            raise ValueError("PushTAgentDynamics: params has no 'agent_pd' (fit it with grasp_jax.models.train.fit_agent_pd).")
        mean, std = params["feature_mean"], params["feature_std"]
        p = z[..., self.POSITION] * std[self.POSITION] + mean[self.POSITION]
        v = z[..., self.VELOCITY] * std[self.VELOCITY] + mean[self.VELOCITY]
        return pusht_agent_pd(params["agent_pd"], p, v, a, self.frame_skip, self.low, self.high)

    def __call__(self, params, z, a):
        nxt = self.inner(params, z, a)
        p, v = self.agent(params, z, a)
        mean, std = params["feature_mean"], params["feature_std"]
        nxt = nxt.at[..., self.POSITION].set((p - mean[self.POSITION]) / std[self.POSITION])
        return nxt.at[..., self.VELOCITY].set((v - mean[self.VELOCITY]) / std[self.VELOCITY])


@dataclasses.dataclass(frozen=True)
class PushTPixelAgentDynamics(_PushTAgentWrapper):
    """A Push-T pixel model with the agent's own motion exact (the pixel twin of
    :class:`PushTAgentDynamics`).

    Latent: ``[keypoints (k), agent velocity (2, over params["velocity_std"]), disagreement]``.
    A frame shows no velocity, so an encoded frame has velocity 0 (a start at rest, as
    Push-T tasks start); the model carries it along a plan. One step: ``inner`` (an
    :class:`EnsembleDynamics` whose members see keypoints and velocity) predicts the next
    keypoints; the agent's next position and velocity follow from the PD update
    (:func:`pusht_agent_pd`, ``params["agent_pd"]``) started at the agent position the
    readout (``params["readout"]``, the linear state probe) reads off the current keypoints;
    the predicted keypoints then move by the smallest change (least norm) that makes the
    readout's agent position the exact one and leaves the readout's other entries (the
    block's pose) as they were: the block stays the members'. Training rolls the members
    through this correction (:func:`grasp_jax.models.train.train`), so they learn only what
    it leaves them.
    """

    inner: Any  # EnsembleDynamics over [keypoints, velocity]

    def __post_init__(self):
        if not isinstance(self.inner, EnsembleDynamics):
            raise ValueError(f"PushTPixelAgentDynamics: inner must be an EnsembleDynamics (its disagreement is the "
                             f"latent's last entry); got {type(self.inner).__name__}.")
        super().__post_init__()

    @property
    def keypoint_dim(self) -> int:
        """Latent entries an encoded frame fills."""
        return self.inner.member.latent_dim - 2

    extra_dims = 3  # the agent's velocity (2) and the ensemble's disagreement

    @property
    def unobserved(self) -> slice:
        """The latent entries no frame shows, the agent's velocity: closed-loop control
        carries them from the model's own prediction (:meth:`WorldModel.track`)."""
        return slice(self.keypoint_dim, self.keypoint_dim + 2)

    def correct(self, params, z, nxt, a):
        """``nxt`` (a prediction from ``z`` under action ``a``; keypoints and velocity first,
        anything after kept) with the agent's position and velocity made exact."""
        for name in ("readout", "agent_pd", "velocity_std"):
            if name not in params:
                raise ValueError(f"PushTPixelAgentDynamics: params has no {name!r} (grasp_jax.models.train.train fits it).")
        k = self.keypoint_dim
        w, b = params["readout"]["weight"], params["readout"]["bias"]  # [k, m]: agent position first
        p, v = pusht_agent_pd(params["agent_pd"], z[..., :k] @ w[:, :2] + b[:2], z[..., k:k + 2] * params["velocity_std"],
                              a, self.frame_skip, self.low, self.high)
        # the least-norm keypoint change that moves the readout's agent to p and leaves its other entries (block)
        lift = jnp.linalg.solve(w.T @ w, w.T)[:2]  # [2, k]
        keypoints = nxt[..., :k] + (p - (nxt[..., :k] @ w[:, :2] + b[:2])) @ lift
        return jnp.concatenate([keypoints, v / params["velocity_std"], nxt[..., k + 2:]], axis=-1)

    def member_step(self, params, z, a):
        """One member's step (``params["net"]`` that member's weights) on ``[keypoints, velocity]``."""
        return self.correct(params, z, self.inner.member(params, z, a), a)

    def __call__(self, params, z, a):
        return self.correct(params, z, self.inner(params, z, a), a)


# Dynamics classes a saved model may name (``WorldModel.load``).
DYNAMICS = {
    "ResidualDynamics": ResidualDynamics,
    "EnsembleDynamics": EnsembleDynamics,
    "PushTAgentDynamics": PushTAgentDynamics,
    "PushTPixelAgentDynamics": PushTPixelAgentDynamics,
}
