"""The rollout plan: model, loader and reference documentation."""

from rollout.plan.loader import load_plan, parse_plan, plan_from_data
from rollout.plan.model import Plan

__all__ = ["Plan", "load_plan", "parse_plan", "plan_from_data"]
