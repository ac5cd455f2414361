"""Planners: GRASP and the baselines, one module each, all behind one interface."""

from grasp_jax.planners.base import Candidate, IterationCost, Planner
from grasp_jax.planners.bptt import bptt
from grasp_jax.planners.cem import cem
from grasp_jax.planners.collocation import collocation
from grasp_jax.planners.grasp import PAPER_RECIPE, grasp, relaxed_loss
from grasp_jax.planners.mppi import mppi
from grasp_jax.planners.multistart import multistart
from grasp_jax.planners.shooting import random_shooting

__all__ = [
    "PAPER_RECIPE",
    "Planner",
    "Candidate",
    "IterationCost",
    "grasp",
    "relaxed_loss",
    "bptt",
    "random_shooting",
    "cem",
    "collocation",
    "mppi",
    "multistart",
]
