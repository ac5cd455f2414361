"""grasp_jax: long-horizon planning with learned world models, in JAX.

    import grasp_jax as gj
    problem = gj.Problem(dynamics, horizon=64, action_dim=2)
    result = gj.plan(gj.grasp(), problem, params, init_state, goal, key)
"""

from grasp_jax import envs, models, mpc, tasks
from grasp_jax.plan import PlanResult, compile_plan_batch, plan, plan_batch
from grasp_jax.planners import (
    PAPER_RECIPE,
    Candidate,
    IterationCost,
    Planner,
    bptt,
    cem,
    collocation,
    grasp,
    mppi,
    multistart,
    random_shooting,
    relaxed_loss,
)
from grasp_jax.problem import Problem, final_distance, rollout, trajectory_cost

__version__ = "0.1.0"

__all__ = [
    "Problem",
    "Planner",
    "PlanResult",
    "plan",
    "plan_batch",
    "compile_plan_batch",
    "multistart",
    "Candidate",
    "IterationCost",
    "grasp",
    "bptt",
    "random_shooting",
    "cem",
    "collocation",
    "mppi",
    "relaxed_loss",
    "PAPER_RECIPE",
    "rollout",
    "trajectory_cost",
    "final_distance",
    "tasks",
    "envs",
    "models",
    "mpc",
]
