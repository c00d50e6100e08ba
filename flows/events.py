"""Prefect events a rollout emits, for automations (the emergency rollback's trigger) and dashboards.

``rollout.failed`` means the release was judged bad (by its gates or a person) after
traffic moved, and the plan leaves the rollback to someone else (``rollback.automatic:
false``). Nothing else emits it: not bad input, not a refused start, not a crashed process.
"""

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


def emit(event: str, plan: str, plan_path: str, *, run_id: str, reason: str = "", **payload: Any) -> None:
    """Emit ``event`` about ``plan``.

    Every payload carries ``plan_path``, ``run_id`` and ``reason`` (empty when there is
    none), so a trigger's template renders whichever way the run was started.
    """
    body = {"plan_path": plan_path, "run_id": run_id, "reason": reason, **payload}
    emit_event(event=event, resource=resource(plan), payload=body)
