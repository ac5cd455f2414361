"""World models: ``grasp_jax.models.pretrained(name)`` and the tools that made them.

Shipped weights (in ``grasp_jax/models/weights``, produced by
``python -m grasp_jax.models.train all``): ``"wall"``, ``"wall-pixels"``, ``"pusht"``,
``"pusht-ensemble"`` (four Push-T members whose disagreement the default cost charges),
``"pusht-ensemble-pd"`` (the same members, the agent's PD-controlled motion exact:
:class:`PushTAgentDynamics`), ``"pusht-ensemble-pd-4x"`` (that recipe on 4x the data), ``"pusht-pixels"``,
``"pusht-pixels-10k"``, ``"pusht-pixels-10k-4x"`` (Push-T from 64 x 64 frames), ``"pusht-pixels-10k-4x-pd"`` (the
agent's motion exact: :class:`PushTPixelAgentDynamics`), ``"pointmaze"``. Each is a :class:`WorldModel` with ``params``, ``dynamics``,
``encode(obs)``, ``decode(z)``, ``action_dim`` and ``problem(horizon)``.
"""

from __future__ import annotations

import os

from grasp_jax.models.networks import (
    ConvDecoder,
    ConvEncoder,
    EnsembleDynamics,
    PushTAgentDynamics,
    PushTPixelAgentDynamics,
    ResidualDynamics,
    ResidualMLP,
    WeightedGoalCost,
)
from grasp_jax.models.world_model import WorldModel

__all__ = [
    "WorldModel",
    "ResidualDynamics",
    "EnsembleDynamics",
    "PushTAgentDynamics",
    "PushTPixelAgentDynamics",
    "ResidualMLP",
    "ConvEncoder",
    "ConvDecoder",
    "WeightedGoalCost",
    "pretrained",
    "load",
    "available",
    "WEIGHTS_DIR",
]

WEIGHTS_DIR = os.path.join(os.path.dirname(__file__), "weights")


def available() -> tuple[str, ...]:
    """Names of the shipped models."""
    if not os.path.isdir(WEIGHTS_DIR):
        return ()
    return tuple(sorted(f[: -len(".msgpack")] for f in os.listdir(WEIGHTS_DIR) if f.endswith(".msgpack")))


def pretrained(name: str) -> WorldModel:
    """Loads a shipped model by name (no download, no training)."""
    names = available()
    if name not in names:
        raise ValueError(f"models.pretrained: name must be one of {names}; got {name!r}.")
    return WorldModel.load(os.path.join(WEIGHTS_DIR, name))


def load(path: str) -> WorldModel:
    """Loads a model saved with :meth:`WorldModel.save` (``path`` without extension)."""
    return WorldModel.load(path)
