"""The compensating rollback, the backend handbook's steps in order, each one recorded.

1. traffic off: the main flag admits no one, the router sends nothing to the canary;
2. companion flags back as they were, newest first;
3. the Deployment back on the stable release;
4. an emergency backup of the data as it is now, then the restore the plan asks for;
5. caches invalidated; 6. health; 7. the smoke scenario; 8. balance checks;
9. a health watch; then the incident report.

Traffic comes first, before the emergency backup, because traffic off is what
makes users safe and it changes no data; the emergency backup still comes
before anything is restored, so a restore can itself be undone. A failing step
is recorded and the next one runs anyway; the result says what did not work.
"""

# No `from __future__ import annotations` here: Prefect builds the parameter schema from
# the flow's signature, and string annotations (the Annotated reason) do not resolve there.
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Annotated, Literal

from prefect import flow, get_run_logger
from prefect.context import get_run_context
from pydantic import Field

from rollout.adapters.clients import Clients
from rollout.adapters.flags import FlagState
from rollout.adapters.run_state import RunRecord
from rollout.incident import Incident, StepRecord
from rollout.plan import Plan, load_plan
from rollout.plan.model import Targets
from rollout.plan.source import plan_source
from rollout.targets import resolve_targets
from tasks.data import backup_data, restore_data
from tasks.recovery import (
    balance_check,
    deployment_to_stable,
    health_check,
    invalidate_caches,
    router_to_stable,
    smoke_test,
    watch_health,
)
from tasks.report import write_incident_report
from tasks.secrets import prefect_resolver
from tasks.traffic import keep_traffic_off, restore_flag

Severity = Literal["SEV1", "SEV2", "SEV3"]
RestoreMode = Literal["none", "selective", "full"]
RollbackStep = StepRecord
"""One rollback step as it went (name, ok, detail, start and end)."""


@dataclass(frozen=True)
class RollbackResult:
    """What the rollback did; ``traffic_off_at`` is when the main flag stopped admitting anyone."""

    plan: str
    reason: str
    steps: tuple[StepRecord, ...]
    traffic_off_at: datetime | None
    severity: str = "SEV2"
    report: str | None = None

    @property
    def ok(self) -> bool:
        """Whether every step succeeded."""
        return all(step.ok for step in self.steps)


class _Steps:
    """Runs steps one after another, recording each; a failure is kept and the next step runs."""

    def __init__(self) -> None:
        self.records: list[StepRecord] = []

    def run(self, name: str, action: Callable[[], str]) -> bool:
        started = datetime.now(UTC)
        try:
            detail, ok = action(), True
        except Exception as error:  # a rollback goes on whatever one step raised
            detail, ok = f"{type(error).__name__}: {error}", False
        self.records.append(StepRecord(name, ok, detail, started, datetime.now(UTC)))
        log = get_run_logger()
        (log.info if ok else log.error)("rollback %s: %s (%s)", name, "ok" if ok else "FAILED", detail)
        return ok


def _flag_steps(steps: _Steps, plan: Plan, targets: Targets, undo: list[FlagState]) -> datetime | None:
    """Main flag to 0 first, then the router; returns when traffic was off."""
    primary = undo[0]
    off = steps.run(f"flag {primary.name}", lambda: _restore(targets, primary, traffic_off=True))
    traffic_off_at = datetime.now(UTC) if off else None
    router = targets.kubernetes.router if targets.kubernetes else None
    if router is not None:
        steps.run("router weight", lambda: router_to_stable(targets))
    for before in reversed(undo[1:]):
        steps.run(f"flag {before.name}", partial(_restore, targets, before, traffic_off=False))
    return traffic_off_at


def _restore(targets: Targets, before: FlagState, traffic_off: bool) -> str:
    restore_flag(targets, before, traffic_off=traffic_off)
    return "traffic 0" if traffic_off else "restored"


def _data_steps(
    steps: _Steps, plan: Plan, targets: Targets, backup: str | None, mode: str, collections: list[str]
) -> None:
    """Emergency backup of the current state, then the restore."""
    if backup is None:
        steps.run("data restore", _no_backup)
        return
    emergency: list[str] = []

    def take() -> str:
        emergency.append(backup_data(targets, plan, "emergency").uri)
        return emergency[0]

    if not steps.run("emergency backup", take):
        steps.run("data restore", _not_attempted)
        return

    def restore() -> str:
        restored = restore_data(
            targets,
            backup,
            collections=collections if mode == "selective" else None,
            document_filter=plan.rollback.restore.filter if mode == "selective" else None,
        )
        counts = ", ".join(f"{c.name} {c.restored}/{c.archived} {c.how}" for c in restored.collections)
        if not restored.ok:
            raise RuntimeError(f"incomplete restore from {backup}: {counts}")
        return f"{mode} from {backup}: {counts}"

    steps.run("data restore", restore)


def _no_backup() -> str:
    raise RuntimeError("no pre-rollout backup is recorded for this plan: pick one and run `rollout restore`")


def _not_attempted() -> str:
    raise RuntimeError("not attempted: the current state could not be backed up first")


@flow(name="rollback")
def rollback_flow(
    plan_path: str,
    reason: Annotated[str, Field(min_length=1, description="Why: shown in the report and the logs.")],
    severity: Severity | None = None,
    restore: RestoreMode | None = None,
    collections: list[str] | None = None,
    targets: Targets | None = None,
    first_bad_at: datetime | None = None,
    plan_yaml: str = "",
) -> RollbackResult:
    """Undo the plan's last rollout from its persisted state, every step in order, none skipped on failure.

    Args:
        plan_path: The plan whose rollout is undone (or leave empty and paste it as plan_yaml).
        reason: Why: shown in the report and the logs.
        severity: The incident's severity, instead of the plan's.
        restore: How much data to restore, instead of the plan's.
        collections: Which collections to restore, instead of the plan's.
        targets: The systems to act on, instead of the plan's (or the local sandbox's).
        first_bad_at: When the first bad measurement was taken, for the report's time to safety.
        plan_yaml: The whole plan as YAML, instead of plan_path.
    """
    logger = get_run_logger()
    started = datetime.now(UTC)
    plan = load_plan(plan_source(plan_path, plan_yaml))
    resolved = resolve_targets(plan, targets)
    chosen_severity = severity or plan.rollback.severity
    mode = restore or plan.rollback.restore.mode
    chosen_collections = collections or plan.rollback.restore.collections
    logger.warning("rolling back %s (%s): %s", plan.name, chosen_severity, reason)
    with Clients(resolved, prefect_resolver) as clients:
        record = clients.runs.get(plan.name)
        if record is not None:
            # A rollout still running sees this at its next step and stops instead of raising traffic again.
            clients.runs.take_over(plan.name, str(get_run_context().flow_run.id))  # type: ignore[union-attr]
        undo = list(record.undo) if record else []
        # The main flag goes first, whatever the log's order: traffic off is what makes it safe.
        undo.sort(key=lambda s: s.name != plan.flag)
        if not any(s.name == plan.flag for s in undo):
            undo.insert(0, clients.flags.get(plan.flag))
        stable = clients.releases.stable(plan.name) or plan.release.stable_version
    steps = _Steps()
    traffic_off_at = _flag_steps(steps, plan, resolved, undo)
    if resolved.kubernetes is not None:
        image = record.deployment_image if record else None
        steps.run("deployment", lambda: deployment_to_stable(resolved, plan, stable, image))
    if mode != "none":
        _data_steps(steps, plan, resolved, record.backup if record else None, mode, chosen_collections)
    cache = plan.rollback.cache
    if cache.purge_url or (cache.redis_url and cache.redis_keys):
        steps.run("cache invalidation", lambda: invalidate_caches(resolved, plan))
    steps.run("health check", lambda: health_check(resolved))
    if resolved.service.smoke:
        steps.run("smoke test", lambda: smoke_test(resolved))
    if plan.rollback.balance:
        steps.run("balance check", lambda: balance_check(resolved, plan))
    if plan.rollback.watch.duration.total_seconds() > 0:
        steps.run("health watch", lambda: watch_health(resolved, plan))
    if traffic_off_at is not None:
        steps.run("traffic still off", lambda: keep_traffic_off(resolved, undo[0]))
    result = RollbackResult(plan.name, reason, tuple(steps.records), traffic_off_at, chosen_severity)
    with Clients(resolved, prefect_resolver) as clients:
        clients.runs.finish(plan.name, "rolled_back" if result.ok else "rollback_incomplete")
    incident = Incident(
        plan=plan.name,
        release=plan.release.version,
        version_restored=stable or "the Deployment's previous revision",
        severity=chosen_severity,
        cause=reason,
        started_at=started,
        finished_at=datetime.now(UTC),
        steps=result.steps,
        first_bad_at=first_bad_at,
        traffic_off_at=traffic_off_at,
    )
    report = _report(resolved, plan, incident, record)
    return RollbackResult(plan.name, reason, result.steps, traffic_off_at, chosen_severity, report)


def _report(targets: Targets, plan: Plan, incident: Incident, record: RunRecord | None) -> str | None:
    """Write the report; a report that cannot be written is logged, never a reason to fail the rollback."""
    try:
        return write_incident_report(targets, plan, incident, record.started_at if record else None)
    except Exception as error:  # the rollback is done; the report is a courtesy on top
        get_run_logger().error(
            "the incident report could not be written: %s: %s", type(error).__name__, error
        )
        return None
