"""``WorldModel``: learned dynamics plus the maps between observations and latents.

A world model plans in its latent space ``z``:

* state models: ``z = (features(obs) - mean) / std`` (``features`` turns angles into
  cos/sin), ``dynamics(params, z, a) = z + MLP(z, a)``;
* pixel models: ``z = encoder(image)``, the same residual dynamics on ``z``;
* ensembles (:class:`~grasp_jax.models.networks.EnsembleDynamics`): the members' mean, and
  one more latent entry ``z[-1]`` (0 for an observation) that accumulates their
  disagreement along a plan; ``problem()`` charges it with ``disagreement_weight``.

The model action is ``frame_skip`` consecutive environment actions, concatenated:
``wm.env_actions(plan)`` splits a plan back into environment steps.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np

from grasp_jax.models.networks import DYNAMICS, ConvDecoder, WeightedGoalCost, make_encoder
from grasp_jax.problem import Problem

__all__ = ["WorldModel", "features", "features_to_obs", "FEATURES"]

# Observation -> feature maps, by environment family.
FEATURES = ("identity", "pusht")
# Feature kind -> (leading features a single frame shows, all features): Push-T frames show the
# positions and the block angle's cos/sin, not the velocities (pixel models' state readout).
FRAME_FEATURES = {"pusht": (6, 8)}


def features(kind: str, obs: jax.Array) -> jax.Array:
    """Model features of observations ``[..., obs_dim]``."""
    if kind == "identity":
        return obs
    if kind == "pusht":  # [ax, ay, bx, by, angle, vx, vy] -> angle as cos, sin
        return jnp.concatenate(
            [obs[..., :4], jnp.cos(obs[..., 4:5]), jnp.sin(obs[..., 4:5]), obs[..., 5:7]], axis=-1
        )
    raise ValueError(f"features: kind must be one of {FEATURES}; got {kind!r}.")


def features_to_obs(kind: str, f: jax.Array) -> jax.Array:
    """Inverse of :func:`features` (angles via atan2, wrapped to ``[0, 2 pi)``)."""
    if kind == "identity":
        return f
    if kind == "pusht":
        angle = jnp.arctan2(f[..., 5:6], f[..., 4:5]) % (2 * jnp.pi)
        return jnp.concatenate([f[..., :4], angle, f[..., 6:8]], axis=-1)
    raise ValueError(f"features_to_obs: kind must be one of {FEATURES}; got {kind!r}.")


@dataclasses.dataclass(frozen=True)
class WorldModel:
    """A trained (or freshly initialised) world model; see the module docstring.

    Attributes:
      name: registry name (``"wall"``, ``"wall-pixels"``, ``"pusht"``, ...).
      env: the environment it models (``grasp_jax.envs.make(env)``).
      kind: ``"state"`` or ``"pixel"``.
      dynamics: hashable ``dynamics(params, z, a) -> z'`` for :class:`grasp_jax.Problem`
        (:class:`~grasp_jax.models.networks.ResidualDynamics`,
        :class:`~grasp_jax.models.networks.EnsembleDynamics`, or either inside
        :class:`~grasp_jax.models.networks.PushTAgentDynamics`; Push-T pixel models:
        :class:`~grasp_jax.models.networks.PushTPixelAgentDynamics`).
      params: every array of the model (dynamics, normalisation, encoder/decoder).
      frame_skip: environment actions per model step.
      env_action_low / env_action_high: the environment's action box.
      feature_kind: observation features (state models).
      goal_weights: per-latent weights of the goal cost, or ``None`` for all ones.
      image_size: input image side (pixel models).
      encoder: pixel encoder architecture, ``"keypoints"`` or ``"conv"`` (pixel models).
      disagreement_weight: the default cost's weight on an ensemble's accumulated
        disagreement ``z[-1]`` (``problem(horizon, disagreement=...)`` overrides it).
      meta: training record (data seed, sizes, command, metrics); not hashed.
    """

    name: str
    env: str
    kind: str
    dynamics: Any
    params: Any = dataclasses.field(compare=False, hash=False, repr=False)
    frame_skip: int = 1
    env_action_low: tuple[float, ...] = (-1.0, -1.0)
    env_action_high: tuple[float, ...] = (1.0, 1.0)
    feature_kind: str = "identity"
    goal_weights: tuple[float, ...] | None = None
    image_size: int = 0
    latent_scale: float = 1.0
    encoder: str = "conv"
    disagreement_weight: float = 0.0
    meta: dict = dataclasses.field(default_factory=dict, compare=False, hash=False, repr=False)

    # ------------------------------------------------------------------ sizes
    @property
    def action_dim(self) -> int:
        """Model action size: ``frame_skip * env_action_dim``."""
        return self.frame_skip * len(self.env_action_low)

    @property
    def env_action_dim(self) -> int:
        return len(self.env_action_low)

    @property
    def latent_dim(self) -> int:
        return self.dynamics.latent_dim

    @property
    def extra_dims(self) -> int:
        """Latent entries past the encoder's (an ensemble's disagreement: 1; a pixel model's
        carried agent velocity and disagreement: 3; else 0). An observation fills them with 0."""
        return getattr(self.dynamics, "extra_dims", 0)

    @property
    def encoded_dim(self) -> int:
        """Latent entries an observation fills (the encoder's output, or the features):
        ``latent_dim - extra_dims``."""
        return self.latent_dim - self.extra_dims

    @property
    def action_low(self) -> np.ndarray:
        return np.tile(np.asarray(self.env_action_low), self.frame_skip)

    @property
    def action_high(self) -> np.ndarray:
        return np.tile(np.asarray(self.env_action_high), self.frame_skip)

    @property
    def unobserved(self) -> slice | None:
        """Latent entries the model carries that no observation shows (a Push-T pixel
        model's agent velocity), or ``None``; :meth:`track` fills them."""
        return getattr(self.dynamics, "unobserved", None)

    # ------------------------------------------------------------------ maps
    def encode(self, obs) -> jax.Array:
        """Observation(s) -> latent(s). State models: ``[..., obs_dim]``; pixel models:
        images ``uint8 [..., n, n, 3]`` (as ``env.render()`` returns) or floats in [0, 1]."""
        return encode(self, self.params, obs)

    def decode(self, z) -> jax.Array:
        """Latent(s) -> observation(s) (state models) or images in [0, 1] (pixel models).
        An ensemble's disagreement entry ``z[-1]`` is dropped."""
        z = jnp.asarray(z)[..., : self.encoded_dim]
        if self.kind == "pixel":
            if self.meta.get("train_config", {}).get("ae_recon_weight", 1.0) == 0:
                raise ValueError(
                    f"{self.name}.decode: this pixel model's decoder was never trained (ae_recon_weight=0: its "
                    "encoder learned a state probe instead); read the state with .readout(z)."
                )
            img = ConvDecoder(self.image_size).apply(self.params["decoder"], z / self.latent_scale)
            return jax.nn.sigmoid(img)
        f = z * self.params["feature_std"] + self.params["feature_mean"]
        return features_to_obs(self.feature_kind, f)

    def readout(self, z) -> jax.Array:
        """What a pixel latent says the state is: observations ``[..., obs_dim]`` from the
        linear probe ``params["readout"]`` fitted on the training frames' latents (Push-T
        pixels: positions and block angle; the velocity entries, which no single frame
        shows, are 0). It judges plans "under the model"; planning never uses it."""
        if "readout" not in self.params:
            raise ValueError(f"{self.name}.readout: this model has no state readout (params['readout']).")
        z = jnp.asarray(z)[..., : self.encoded_dim]
        r = self.params["readout"]
        f = z @ r["weight"] + r["bias"]
        unseen = FRAME_FEATURES[self.feature_kind][1] - f.shape[-1]
        f = jnp.concatenate([f, jnp.zeros(f.shape[:-1] + (unseen,), f.dtype)], axis=-1)
        return features_to_obs(self.feature_kind, f)

    def track(self, observed, predicted, unobserved: slice | None = None) -> jax.Array:
        """A state estimate for closed-loop control (``track=`` of
        :func:`grasp_jax.mpc.mpc_host`): ``observed``, the latent of a new observation
        (:meth:`encode`), with its :attr:`unobserved` entries taken from ``predicted``, the
        model's prediction of that latent (the previous estimate rolled through the actions
        executed since). A frame shows where the agent is but not how fast it moves, and an
        encoded frame says velocity 0; the model's velocity is exact (the PD update from the
        executed actions). Everything else, the disagreement included (it restarts at 0),
        is ``observed``'s. Without :attr:`unobserved` entries: ``observed`` unchanged.
        ``unobserved`` (a slice of the latent) overrides :attr:`unobserved`: a state model
        whose state is read from frames (its agent velocity). Shapes ``[..., latent_dim]``,
        the same for both."""
        if unobserved is not None and not isinstance(unobserved, slice):
            raise TypeError(f"{self.name}.track: unobserved must be None or a slice of the latent's entries; got "
                            f"{type(unobserved).__name__}.")
        observed, predicted = jnp.asarray(observed), jnp.asarray(predicted)
        for name, x in (("observed", observed), ("predicted", predicted)):
            if x.ndim < 1 or x.shape[-1] != self.latent_dim:
                raise ValueError(f"{self.name}.track: {name} must have shape [..., latent_dim = {self.latent_dim}]; "
                                 f"got {tuple(x.shape)}.")
        if observed.shape != predicted.shape:
            raise ValueError(f"{self.name}.track: observed and predicted must have the same shape; got "
                             f"{tuple(observed.shape)} and {tuple(predicted.shape)}.")
        unobserved = self.unobserved if unobserved is None else unobserved
        if unobserved is None:
            return observed
        return observed.at[..., unobserved].set(predicted[..., unobserved])

    def env_actions(self, actions):
        """Model actions ``[..., H, k*A]`` -> environment actions ``[..., H*k, A]``.

        numpy in, numpy out (host simulators); a JAX array (or tracer) in, a JAX array out,
        so a JAX ``env_step`` for :func:`grasp_jax.mpc.mpc` can use it under ``jit``."""
        xp = jnp if isinstance(actions, jax.Array) else np
        a = xp.asarray(actions)
        return a.reshape(a.shape[:-2] + (a.shape[-2] * self.frame_skip, self.env_action_dim))

    def problem(self, horizon: int, cost=None, disagreement: float | None = None) -> Problem:
        """A :class:`grasp_jax.Problem` over this model's latent space and action box.

        The default cost is the (weighted, see ``goal_weights``) squared latent distance
        of the final state to the goal latent; for an ensemble, plus ``disagreement``
        (default: ``disagreement_weight``) times the plan's accumulated disagreement.
        """
        extra = self.extra_dims
        if disagreement is not None:
            if not extra:
                raise ValueError(f"{self.name}.problem: disagreement needs an ensemble model; got {disagreement!r}.")
            if cost is not None:
                raise ValueError(f"{self.name}.problem: disagreement applies to the default cost only; got a cost too.")
            if not (np.isfinite(disagreement) and disagreement >= 0):
                raise ValueError(f"{self.name}.problem: disagreement must be a finite weight >= 0; got {disagreement!r}.")
        if cost is None and (self.goal_weights is not None or extra):
            weights = self.goal_weights if self.goal_weights is not None else (1.0,) * self.encoded_dim
            weight = self.disagreement_weight if disagreement is None else float(disagreement)
            cost = WeightedGoalCost(tuple(weights), weight if extra else 0.0, extra_dims=extra)
        return Problem(
            dynamics=self.dynamics,
            horizon=horizon,
            action_dim=self.action_dim,
            action_low=self.action_low,
            action_high=self.action_high,
            cost=cost,
        )

    # ------------------------------------------------------------------ I/O
    def config(self) -> dict:
        return dict(
            name=self.name,
            env=self.env,
            kind=self.kind,
            dynamics_class=type(self.dynamics).__name__,
            dynamics=self.dynamics.config() if hasattr(self.dynamics, "config") else dataclasses.asdict(self.dynamics),
            frame_skip=self.frame_skip,
            env_action_low=list(self.env_action_low),
            env_action_high=list(self.env_action_high),
            feature_kind=self.feature_kind,
            goal_weights=None if self.goal_weights is None else list(self.goal_weights),
            image_size=self.image_size,
            latent_scale=self.latent_scale,
            encoder=self.encoder,
            disagreement_weight=self.disagreement_weight,
        )

    def save(self, path: str) -> None:
        """Writes ``path.msgpack`` (parameters) and ``path.json`` (config and ``meta``)."""
        os.makedirs(os.path.dirname(os.path.abspath(path)) or ".", exist_ok=True)
        params = jax.tree.map(lambda x: np.asarray(x, np.float32), self.params)
        with open(path + ".msgpack", "wb") as f:
            f.write(flax.serialization.msgpack_serialize(params))
        with open(path + ".json", "w") as f:
            json.dump(dict(config=self.config(), meta=self.meta), f, indent=1, sort_keys=True)

    @classmethod
    def load(cls, path: str) -> "WorldModel":
        """Reads a model written by :meth:`save` (``path`` without the extension)."""
        for ext in (".json", ".msgpack"):
            if not os.path.exists(path + ext):
                raise FileNotFoundError(f"WorldModel.load: no file {path + ext!r}.")
        with open(path + ".json") as f:
            record = json.load(f)
        with open(path + ".msgpack", "rb") as f:
            params = flax.serialization.msgpack_restore(f.read())
        params = jax.tree.map(jnp.asarray, params)
        c = record["config"]
        return cls(
            name=c["name"],
            env=c["env"],
            kind=c["kind"],
            dynamics=_dynamics_class(c.get("dynamics_class", "ResidualDynamics"), path).from_config(c["dynamics"]),
            params=params,
            frame_skip=c["frame_skip"],
            env_action_low=tuple(c["env_action_low"]),
            env_action_high=tuple(c["env_action_high"]),
            feature_kind=c["feature_kind"],
            goal_weights=None if c["goal_weights"] is None else tuple(c["goal_weights"]),
            image_size=c["image_size"],
            latent_scale=c.get("latent_scale", 1.0),
            encoder=c.get("encoder", "conv"),
            disagreement_weight=c.get("disagreement_weight", 0.0),
            meta=record.get("meta", {}),
        )

    def replace(self, **changes) -> "WorldModel":
        return dataclasses.replace(self, **changes)


def encode(wm: WorldModel, params, obs) -> jax.Array:
    """Functional form of :meth:`WorldModel.encode` (``params`` explicit, jittable). The
    entries past the encoder's start at 0: an ensemble's disagreement, and a Push-T pixel
    model's carried agent velocity (a frame shows none; tasks start at rest)."""
    extra, n = wm.extra_dims, wm.encoded_dim
    if wm.kind == "pixel":
        x = jnp.asarray(obs)
        if x.shape[-3:] != (wm.image_size, wm.image_size, 3):
            raise ValueError(
                f"{wm.name}.encode: obs must be images [..., {wm.image_size}, {wm.image_size}, 3]; "
                f"got shape {tuple(x.shape)}."
            )
        x = x.astype(jnp.float32) / 255.0 if x.dtype == jnp.uint8 else x.astype(jnp.float32)
        z = make_encoder(wm.encoder, n).apply(params["encoder"], x) * wm.latent_scale
    else:
        x = jnp.asarray(obs, jnp.float32)
        f = features(wm.feature_kind, x)
        if f.shape[-1] != n:
            raise ValueError(
                f"{wm.name}.encode: obs must have shape [..., obs_dim] giving {n} features; "
                f"got shape {tuple(x.shape)}."
            )
        z = (f - params["feature_mean"]) / params["feature_std"]
    return jnp.concatenate([z, jnp.zeros(z.shape[:-1] + (extra,), z.dtype)], axis=-1) if extra else z


def _dynamics_class(name: str, path: str):
    if name not in DYNAMICS:
        raise ValueError(f"WorldModel.load: {path}.json names dynamics_class {name!r}; expected one of {sorted(DYNAMICS)}.")
    return DYNAMICS[name]
