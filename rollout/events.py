"""Prefect events a rollout emits, for automations (the emergency rollback's trigger) and dashboards."""

from __future__ import annotations

from typing import Any

from prefect.events import emit_event

FAILED = "rollout.failed"
PROMOTED = "rollout.promoted"
ROLLED_BACK = "rollout.rolled-back"
STARTED = "rollout.started"


def resource(plan: str) -> dict[str, str]:
    """The event resource of a plan: ``rollout.plan.<name>``."""
    return {"prefect.resource.id": f"rollout.plan.{plan}", "prefect.resource.name": plan}


def emit(event: str, plan: str, plan_path: str, **payload: Any) -> None:
    """Emit ``event`` about ``plan``; the payload carries the plan's path so a trigger can act on it."""
    emit_event(event=event, resource=resource(plan), payload={"plan_path": plan_path, **payload})
