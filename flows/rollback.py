"""The compensating rollback, the backend handbook's steps in order, each one recorded.

1. traffic off: the main flag admits no one, the router sends nothing to the canary;
2. companion flags back as they were, newest first;
3. the Deployment back on the stable release;
4. an emergency backup of the data as it is now, then the restore the plan asks for;
5. caches invalidated; 6. health; 7. the smoke scenario; 8. balance checks;
9. a health watch; then the incident report.

Traffic comes first, before the emergency backup, because traffic off is what
makes users safe and it changes no data; the emergency backup still comes
before anything is restored, so a restore can itself be undone. The steps stay in one
module, in the order they run, so the sequence reads as the handbook does. A failing step
is recorded and the next one runs anyway; the result says what did not work.
"""

# No `from __future__ import annotations` here: Prefect builds the parameter schema from
# the flow's signature, and string annotations (the Annotated reason) do not resolve there.
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Annotated, Any, Final, Literal

from prefect import State, flow, get_run_logger
from prefect.context import get_run_context
from pydantic import Field

from flows import events
from flows.outcomes import RollbackRefused, completed, failed, refusal, result_of
from flows.run_names import rollback_run_name
from rollout.audience.flag_state import Fence, FlagState
from rollout.errors import InputRejected, RolloutBusy
from rollout.lifecycle.record import RunRecord
from rollout.lifecycle.rollback_guard import RollbackAsk
from rollout.plan import Plan, load_plan
from rollout.plan.model import NotifyEvent, Targets
from rollout.plan.source import plan_source
from rollout.reporting.incident import Incident, StepRecord, failed_steps
from rollout.reporting.notifications import notice, recipients
from rollout.targets import resolve_targets
from tasks.data import backup_data, database_lock, restore_data
from tasks.lease import rollback_heartbeat
from tasks.notify import run_url, send
from tasks.record import courtesy, mark_run_views, rename_run
from tasks.recovery import (
    balance_check,
    deployment_to_stable,
    health_check,
    invalidate_caches,
    release_to_stable,
    router_to_stable,
    smoke_test,
    watch_health,
)
from tasks.report import write_incident_report
from tasks.rollback_record import finish_rollback, main_flag_undo, record_restore, stable_release, take_over
from tasks.traffic import keep_traffic_off, restore_flag

Severity = Literal["SEV1", "SEV2", "SEV3"]
RestoreMode = Literal["none", "selective", "full"]
AS_PLANNED: Final = "as planned"
"""The form's choice meaning the plan's own severity or restore."""
SeverityChoice = Literal["as planned", "SEV1", "SEV2", "SEV3"]
RestoreChoice = Literal["as planned", "none", "selective", "full"]
RollbackStep = StepRecord
"""One rollback step as it went (name, ok, detail, start and end)."""


Outcome = Literal["rolled-back", "incomplete", "nothing-to-do"]


@dataclass(frozen=True)
class RollbackResult:
    """What the rollback did; ``traffic_off_at`` is when the main flag stopped admitting anyone."""

    plan: str
    reason: str
    steps: tuple[StepRecord, ...]
    traffic_off_at: datetime | None
    severity: str = "SEV2"
    report: str | None = None
    outcome: Outcome = "rolled-back"
    note: str = ""

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


def _flag_steps(
    steps: _Steps, plan: Plan, targets: Targets, undo: list[FlagState], fence: Fence
) -> datetime | None:
    """Main flag to 0 first, then the router; returns when traffic was off."""
    primary = undo[0]
    off = steps.run(f"flag {primary.name}", lambda: _restore(targets, primary, True, fence, plan.name))
    traffic_off_at = datetime.now(UTC) if off else None
    router = targets.kubernetes.router if targets.kubernetes else None
    if router is not None:
        steps.run("router weight", lambda: router_to_stable(targets, fence))
    for before in reversed(undo[1:]):
        steps.run(f"flag {before.name}", partial(_restore, targets, before, False, fence, plan.name))
    return traffic_off_at


def _restore(targets: Targets, before: FlagState, traffic_off: bool, fence: Fence, plan: str) -> str:
    restore_flag(targets, before, traffic_off=traffic_off, fence=fence, plan=plan)
    return "traffic 0" if traffic_off else "restored"


@dataclass(frozen=True)
class _Context:
    """What the rollback acts on: the rollout as taken over, and the choices made for it."""

    record: RunRecord
    run_id: str
    force: bool
    mode: str
    collections: list[str]
    stable: str | None


def _data_steps(steps: _Steps, plan: Plan, targets: Targets, ctx: _Context) -> None:
    """Emergency backup of the current state, then the restore, under the database's lock.

    The same backup is not restored twice for one rollout unless forced: a restore
    puts back the data as it was before the rollout, and a second one would discard
    every write made since the first.
    """
    record, backup = ctx.record, ctx.record.backup
    if backup is None:
        steps.run("data restore", _no_backup)
        return
    done = record.restored(backup)
    if done is not None and not ctx.force:
        steps.run(
            "data restore",
            lambda: (
                f"not restored again: {backup} was restored at {done.at:%Y-%m-%d %H:%M:%S} UTC by "
                f"{done.by} (force to restore it again)"
            ),
        )
        return
    emergency: list[str] = []

    def take() -> str:
        emergency.append(backup_data(targets, plan, "emergency").uri)
        return emergency[0]

    def restore() -> str:
        restored = restore_data(
            targets,
            backup,
            collections=ctx.collections if ctx.mode == "selective" else None,
            document_filter=plan.rollback.restore.filter if ctx.mode == "selective" else None,
        )
        counts = ", ".join(f"{c.name} {c.restored}/{c.archived} {c.how}" for c in restored.collections)
        if not restored.ok:
            raise RuntimeError(f"incomplete restore from {backup}: {counts}")
        return f"{ctx.mode} from {backup}: {counts}{_age(record)}"

    with database_lock(targets, f"rollback of {plan.name} by run {ctx.run_id}"):
        if not steps.run("emergency backup", take):
            steps.run("data restore", _not_attempted)
            return
        ok = steps.run("data restore", restore)
    record_restore(targets, plan, backup, ctx.run_id, ok)


def _not_asked(plan: Plan, ctx: _Context) -> str:
    """Why a rollback of a plan that restores data restored none."""
    planned = plan.rollback.restore.mode
    if ctx.force:
        return (
            "not asked: a forced rollback of a promoted (or rolled-back) rollout restores only when "
            f"told to (--restore selective|full; the plan's own is {planned})"
        )
    return f"not asked: restore none was given (the plan's own is {planned})"


def _age(record: RunRecord) -> str:
    """How old the restored backup is, and what that costs."""
    if record.backup_at is None:
        return "; the backup's age is not recorded: writes made since it was taken are lost"
    age = datetime.now(UTC) - record.backup_at
    hours, rest = divmod(int(age.total_seconds()), 3600)
    return (
        f"; the backup was taken {record.backup_at:%Y-%m-%d %H:%M:%S} UTC ({hours} h {rest // 60} min "
        "before this restore): writes to these collections since then are lost"
    )


def _no_backup() -> str:
    raise RuntimeError("no pre-rollout backup is recorded for this plan: pick one and run `rollout restore`")


def _not_attempted() -> str:
    raise RuntimeError("not attempted: the current state could not be backed up first")


@flow(name="rollback", flow_run_name=rollback_run_name)
def rollback_flow(
    plan_path: str,
    reason: Annotated[str, Field(min_length=1, description="Why: shown in the report and the logs.")],
    severity: SeverityChoice = AS_PLANNED,
    restore: RestoreChoice = AS_PLANNED,
    collections: tuple[str, ...] = (),
    targets: Targets | None = None,
    first_bad_at: datetime | None = None,
    plan_yaml: str = "",
    force: bool = False,
    on_behalf_of: str = "",
) -> State[RollbackResult]:
    """Undo the plan's last rollout from its persisted state, every step in order, none skipped on failure.

    A rollout already rolled back, or blocked before it changed anything, is left alone
    (NothingToDo); a promoted one is refused unless forced, and even then no data is
    restored unless a restore is named.

    Args:
        plan_path: The plan whose rollout is undone (or leave empty and paste it as plan_yaml).
        reason: Why: shown in the report and the logs.
        severity: The incident's severity ("as planned": the plan's).
        restore: How much data to restore: none, selective (the plan's collections, or those named
            below) or full ("as planned": the plan's).
        collections: Which collections to restore, instead of the plan's (none listed: the plan's).
        targets: The systems to act on, instead of the plan's (or the local sandbox's).
        first_bad_at: When the first bad measurement was taken, for the report's time to safety.
        plan_yaml: The whole plan as YAML, instead of plan_path.
        force: Roll back a promoted (or already rolled-back) rollout too. Data is restored then only
            when restore says so (selective or full), never by the plan's own restore alone.
        on_behalf_of: The rollout run this rollback was asked for (automations pass it): the rollback
            acts only while that run still holds the rollout and the rollout is not finished.
    """
    try:
        source = plan_source(plan_path, plan_yaml)
        result = _rollback(
            source,
            reason,
            None if severity == AS_PLANNED else severity,
            None if restore == AS_PLANNED else restore,
            list(collections) or None,
            targets,
            first_bad_at,
            force,
            on_behalf_of,
        )
    except (InputRejected, RolloutBusy) as error:
        get_run_logger().error("%s", error)
        return refusal(error)
    if result.outcome == "nothing-to-do":
        return completed("NothingToDo", result.note, result)
    if result.outcome == "incomplete":
        return failed(
            "RollbackIncomplete", f"failed: {', '.join(failed_steps(result.steps))}; {result.reason}", result
        )
    return completed("RolledBack", f"{result.note}: {result.reason}", result)


def _rollback(
    plan_path: str,
    reason: str,
    severity: str | None,
    restore: str | None,
    collections: list[str] | None,
    targets: Targets | None,
    first_bad_at: datetime | None,
    force: bool,
    on_behalf_of: str,
) -> RollbackResult:
    logger = get_run_logger()
    started = datetime.now(UTC)
    plan = load_plan(plan_path)
    resolved = resolve_targets(plan, targets)
    chosen_severity = severity or plan.rollback.severity
    run_id = str(get_run_context().flow_run.id)  # type: ignore[union-attr]
    ask = RollbackAsk(force=force, on_behalf_of=on_behalf_of.strip() or None, restore=restore)
    verdict, record = take_over(resolved, plan, run_id, ask, reason)
    if verdict.action == "refused":
        raise RollbackRefused(verdict.message)
    if verdict.action == "nothing-to-do" or record is None:
        logger.warning("nothing to do: %s", verdict.message)
        return RollbackResult(
            plan.name, reason, (), None, chosen_severity, outcome="nothing-to-do", note=verdict.message
        )
    logger.warning("rolling back %s (%s): %s; %s", plan.name, chosen_severity, reason, verdict.message)
    # Named after the release on record, which a pasted plan or an edited file may not name.
    courtesy(
        "the run's name", lambda: rename_run(run_id, f"rollback {plan.name} {record.version or ''}".strip())
    )
    ctx = _Context(
        record,
        run_id,
        force,
        verdict.restore,
        collections or plan.rollback.restore.collections,
        stable_release(resolved, plan, record),
    )
    # The heartbeat keeps the rollback's lease: a rollback whose process died is finished by the
    # reconciler once it runs out, by a run of the emergency-rollback deployment.
    with rollback_heartbeat(resolved, plan, run_id):
        # The main flag goes first, whatever the log's order: traffic off is what makes it safe.
        undo = sorted(record.undo, key=lambda s: s.name != plan.flag)
        steps = _Steps()
        fence = Fence(plan.name, record.epoch)
        traffic_off_at = _flag_steps(steps, plan, resolved, undo, fence) if undo else None
        if not undo:
            logger.info("this rollout changed no flag: traffic is left as it is")
        if resolved.kubernetes is not None:
            image = record.deployment_image
            steps.run("deployment", lambda: deployment_to_stable(resolved, plan, ctx.stable, image))
        if resolved.deploy is not None:
            steps.run("stable release", lambda: release_to_stable(resolved, ctx.stable))
        if ctx.mode != "none":
            _data_steps(steps, plan, resolved, ctx)
        elif plan.rollback.restore.mode != "none":
            # Said, not silently skipped: the plan restores data, and this rollback was not asked to.
            steps.run("data restore", lambda: _not_asked(plan, ctx))
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
        main_flag = main_flag_undo(resolved, plan)
        if main_flag is not None:
            steps.run("traffic still off", lambda: keep_traffic_off(resolved, main_flag, fence))
        ok = all(step.ok for step in steps.records)
        finish_rollback(resolved, plan, ctx.record, run_id, ctx.stable, reason, ok)
    release = record.version or plan.release.version
    incident = Incident(
        plan=plan.name,
        release=release,
        version_restored=_restored_text(ctx.stable, resolved),
        severity=chosen_severity,
        cause=reason,
        started_at=started,
        finished_at=datetime.now(UTC),
        steps=tuple(steps.records),
        first_bad_at=first_bad_at,
        traffic_off_at=traffic_off_at,
        decisions=tuple(d.describe(about) for about, d in record.decisions.items()),
    )
    report = _report(resolved, plan, incident, record)
    _tell(plan, incident, ok, report, run_id)
    _mark_rollout(plan, plan_path, record, run_id, reason, ok, on_behalf_of)
    return RollbackResult(
        plan.name,
        reason,
        tuple(steps.records),
        traffic_off_at,
        chosen_severity,
        report,
        "rolled-back" if ok else "incomplete",
        verdict.message,
    )


def _mark_rollout(
    plan: Plan, plan_path: str, record: RunRecord, run_id: str, reason: str, ok: bool, on_behalf_of: str
) -> None:
    """Tell whoever looks at the rolled-back rollout that it was rolled back, whichever path did it.

    Its run's rollout table and progress say "rolled back at T by run R: reason" (a Promoted run's
    views no longer say only that), and ``rollout.rolled-back`` is emitted for it. A rollout's own
    run tells of its own rollback itself (``on_behalf_of``); its views it rewrites as it ends.
    """
    if on_behalf_of.strip():
        return
    said = f"rolled back at {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC by run {run_id}: {reason}"
    if not ok:
        said = f"rollback by run {run_id} left steps undone: {reason}"
    courtesy("the rolled-back rollout's views", lambda: mark_run_views(plan.name, record.run_id, said))
    events.emit(events.ROLLED_BACK, plan.name, plan_path, reason=reason, ok=ok, run_id=record.run_id)


def _tell(plan: Plan, incident: Incident, ok: bool, report: str | None, run_id: str) -> None:
    """The plan's notifications of the rollback: every step, the severity, the report."""
    event: NotifyEvent = "rolled-back" if ok else "rollback-incomplete"
    if not recipients(plan, event):
        return
    steps = tuple(f"{s.name}: {'ok' if s.ok else 'FAILED'} ({s.detail})" for s in incident.steps)
    first, off = incident.first_bad_at, incident.traffic_off_at
    safety = (off - first).total_seconds() if first is not None and off is not None else None
    facts = (
        f"Severity: {incident.severity}",
        f"Release {incident.release} rolled back; now {incident.version_restored}",
        *([f"Traffic 0 in {safety:.1f} s from the first failing sample"] if safety is not None else []),
        *([f"Report: {report}"] if report else []),
    )
    what = f"{plan.name}: {incident.cause}"
    send(plan, notice(plan, event, what, None, (*facts, "", "Steps:", *steps), run_url(run_id)))


def _restored_text(stable: str | None, targets: Targets) -> str:
    """The release the report names as restored; never the one rolled back, and honest when unknown."""
    if stable is not None:
        return stable
    if targets.kubernetes is not None:
        return "no earlier stable release is on record: the Deployment's previous revision (rollout undo)"
    return "no earlier stable release is on record"


def _report(targets: Targets, plan: Plan, incident: Incident, record: RunRecord | None) -> str | None:
    """Write the report; a report that cannot be written is logged, never a reason to fail the rollback."""
    try:
        return write_incident_report(targets, plan, incident, record.started_at if record else None)
    except Exception as error:  # the rollback is done; the report is a courtesy on top
        get_run_logger().error(
            "the incident report could not be written: %s: %s", type(error).__name__, error
        )
        return None


def run_rollback(**parameters: Any) -> RollbackResult:
    """Run the rollback flow here, in this process, and return its result whatever its final state."""
    return result_of(rollback_flow(**parameters, return_state=True), RollbackResult)
