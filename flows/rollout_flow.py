"""The rollout flow: gate queries and data checked, a verified backup taken, then phases in order.

Nothing changes until every gate query is accepted by Prometheus, every data
check passes and the backup's archive has been read back against its manifest.
Each traffic step is then set and observed. A failed or errored window rolls
back at once; an inconclusive one waits for a person (or rolls back, as the
plan says); a phase with ``approval`` waits for one before it starts.
"""

import math
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from prefect import State, flow, get_run_logger
from prefect.artifacts import create_table_artifact
from prefect.client.orchestration import get_client
from prefect.context import get_run_context
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run
from prefect.states import Running
from pydantic import BaseModel, Field

from flows.outcomes import completed, failed, refusal, result_of
from flows.rollback import RollbackResult, rollback_flow
from rollout import events
from rollout.adapters.clients import Clients
from rollout.adapters.flags import Fence
from rollout.adapters.run_state import Claim
from rollout.data.backup import BackupResult
from rollout.data.checks import CheckResult
from rollout.durations import format_duration, parse_duration
from rollout.errors import InputRejected, LeaseLost, PlanInvalid, Problem, RolloutBusy
from rollout.gates import Outcome
from rollout.incident import failed_steps
from rollout.lifecycle import Status
from rollout.plan import Plan, load_plan
from rollout.plan.model import Targets
from rollout.plan.source import plan_source
from rollout.targets import resolve_targets
from rollout.traffic import Audience, phase_steps
from rollout.window import WindowResult
from tasks.data import backup_data, run_data_checks
from tasks.dry_run import check_bucket, count_audiences
from tasks.lease import claim_plan, enter, finish, heartbeat
from tasks.observe import check_gate_queries, observe_window
from tasks.record import RampProgress, StepRecordEntry, now, record_step
from tasks.secrets import prefect_resolver
from tasks.traffic import choose_pilot_stores, record_deployment, set_audience, set_companion_flags

Ending = Literal["promoted", "rolled_back", "held", "blocked", "stopped", "dry_run"]
"""How a run of the rollout ended (the rollout's own status is in :mod:`rollout.lifecycle`)."""


class Decision(BaseModel):
    """A person's answer to an approval or an inconclusive window."""

    approved: bool = Field(description="Go on (true) or roll back (false).")
    approver: str = Field(min_length=1, description="Who decided.")
    note: str = Field(default="", description="Why, for the record.")


@dataclass(frozen=True)
class StepResult:
    """One traffic step as it happened."""

    phase: str
    step: str
    audience: str
    outcome: str
    reason: str
    values: dict[str, float | None]


@dataclass(frozen=True)
class RolloutResult:
    """What the rollout did and how it ended."""

    plan: str
    status: Ending
    steps: tuple[StepResult, ...]
    final_audience: str
    decisions: tuple[str, ...] = ()
    rollback: RollbackResult | None = None
    first_bad_at: datetime | None = None
    checks: tuple[CheckResult, ...] = ()
    backup: BackupResult | None = None
    reason: str = ""

    @property
    def time_to_safety(self) -> float | None:
        """Seconds from the first bad measurement to the main flag admitting no one."""
        if self.rollback is None or self.rollback.traffic_off_at is None or self.first_bad_at is None:
            return None
        return (self.rollback.traffic_off_at - self.first_bad_at).total_seconds()


def _count_steps(plan: Plan) -> int:
    """How many traffic steps the plan has (pilot stores count as one)."""
    audience, count = Audience(), 0
    for phase in plan.phases:
        placeholder = ["pilot"] if phase.pilot_stores else []
        for step in phase_steps(phase, audience, placeholder):
            audience = step.audience
            count += 1
    return count


def _entry(key: str, step: StepResult, audience: Audience) -> StepRecordEntry:
    return StepRecordEntry(
        key,
        step.phase,
        step.step,
        step.audience,
        audience.percentage,
        step.outcome,
        step.reason,
        step.values,
        now(),
        {"users": list(audience.users), "stores": list(audience.stores), "percentage": audience.percentage},
    )


def _record(
    targets: Targets, plan: str, key: str, step: StepResult, audience: Audience, progress: RampProgress
) -> None:
    record_step(targets, plan, _entry(key, step, audience))
    progress.advance()


def _ask(what: str, timeout_seconds: float) -> Decision | None:
    """Pause the run for a :class:`Decision`; None when nobody answered in time."""
    logger = get_run_logger()
    run_id = get_run_context().flow_run.id  # type: ignore[union-attr]
    logger.warning(
        "waiting for a decision on %s: resume in the UI, or `rollout promote %s --approver NAME`",
        what,
        run_id,
    )
    try:
        return pause_flow_run(
            wait_for_input=Decision, timeout=max(1, math.ceil(timeout_seconds)), poll_interval=2
        )
    except FlowPauseTimeout:
        # The server refuses every state but Failed to a run whose pause ran out; the rollout goes
        # on (it holds or rolls back, as the plan says), so the run is put back to Running first.
        with get_client(sync_client=True) as client:
            client.set_flow_run_state(run_id, Running(message=f"no decision in time on {what}"), force=True)
        return None


def _dry_run(plan: Plan, targets: Targets, checks: tuple[CheckResult, ...]) -> RolloutResult:
    """Everything a run would read, nothing it would write: audiences, pilot stores, user counts."""
    logger = get_run_logger()
    if plan.backup.enabled:
        logger.info("backup bucket: %s", check_bucket(targets))
    audience, planned = Audience(), []
    for phase in plan.phases:
        pilot = choose_pilot_stores(targets, phase.pilot_stores) if phase.pilot_stores else []
        for step in phase_steps(phase, audience, pilot):
            audience = step.audience
            planned.append((phase.name, step.label, audience))
    counted = count_audiences(targets, plan, [a for _, _, a in planned])
    steps = []
    for i, (phase_name, label, step_audience) in enumerate(planned):
        users = f"{counted[0][i]} of {counted[1]} users" if counted else "no population in the plan"
        steps.append(StepResult(phase_name, label, step_audience.describe(), "planned", users, {}))
    create_table_artifact(
        [{"phase": s.phase, "step": s.step, "traffic": s.audience, "users": s.reason} for s in steps],
        key=f"{plan.name}-dry-run",
        description=f"Dry run of {plan.name}: nothing was changed",
    )
    return RolloutResult(plan.name, "dry_run", tuple(steps), audience.describe(), checks=checks)


PlanYaml = Annotated[str, Field(json_schema_extra={"format": "textarea"})]
"""Pasted YAML: a multi-line box in the UI's form."""


def _approval_timeout(value: str | None) -> timedelta | None:
    """The override as a duration; a clear error naming the parameter when it does not parse."""
    if value is None or not value.strip():
        return None
    try:
        parsed = parse_duration(value)
    except ValueError as error:
        raise PlanInvalid([Problem("approval_timeout", str(error))]) from None
    if parsed <= timedelta(0):
        raise PlanInvalid([Problem("approval_timeout", "must be positive, e.g. '30m'")])
    return parsed


@flow(name="rollout")
def rollout_flow(
    plan_path: str = "",
    targets: Targets | None = None,
    dry_run: bool = False,
    plan_yaml: PlanYaml = "",
    approval_timeout: str | None = None,
    rollout_id: str = "",
) -> State[RolloutResult]:
    """Run a plan and roll it back by itself if the service is not healthy.

    The run ends Promoted (Completed), or RolledBack, Held, Stopped, Blocked (Failed, with the
    reason); a plan or parameter that cannot be used ends InvalidInput, a start refused because
    another run holds the plan ends Refused: neither changes anything.

    Args:
        plan_path: The plan file, relative to the project (e.g. deployments/plans/unified-orders.yaml).
            Leave empty to paste the plan as plan_yaml instead.
        targets: The systems to act on, instead of the plan's (or the local sandbox's).
        dry_run: Check everything (gate queries, data checks, the bucket, pilot stores, who each step
            would admit) and change nothing.
        plan_yaml: The whole plan as YAML, instead of plan_path. It is validated, then kept as a file
            so the rollback can find it.
        approval_timeout: How long every approval waits for a decision in this run, instead of the
            plan's (e.g. '30m', '2h').
        rollout_id: Which rollout this run is (default: the plan's release version). A run of the same
            rollout after one stopped half-way resumes it after its last completed step (or rolls it
            back, as the plan's rollback.on_restart says); a different rollout is refused meanwhile.
    """
    try:
        result = _rollout(plan_path, targets, dry_run, plan_yaml, approval_timeout, rollout_id)
    except (InputRejected, RolloutBusy) as error:
        get_run_logger().error("nothing was changed: %s", error)
        return refusal(error)
    return _final_state(result)


def _final_state(result: RolloutResult) -> State[RolloutResult]:
    """The run's Prefect state: the outcome by name, the reason as its message."""
    if result.status == "promoted":
        return completed("Promoted", f"{result.plan}: {result.final_audience}", result)
    if result.status == "dry_run":
        return completed("DryRun", f"{result.plan}: nothing was changed", result)
    rollback = result.rollback
    if result.status == "rolled_back" and rollback is not None:
        if rollback.outcome == "incomplete":
            broken = ", ".join(failed_steps(rollback.steps))
            return failed("RollbackIncomplete", f"{result.reason}; rollback steps failed: {broken}", result)
        if rollback.outcome == "nothing-to-do":
            return failed("Stopped", f"{result.reason}; {rollback.note}", result)
        safety = result.time_to_safety
        took = f"; traffic 0 in {safety:.1f} s" if safety is not None else ""
        return failed("RolledBack", f"{result.reason}{took}", result)
    name = {"held": "Held", "stopped": "Stopped", "blocked": "Blocked"}.get(result.status, "Failed")
    return failed(name, result.reason or result.status, result)


def _rollout(
    plan_path: str,
    targets: Targets | None,
    dry_run: bool,
    plan_yaml: str,
    approval_timeout: str | None,
    rollout_id: str,
) -> RolloutResult:
    plan_path = plan_source(plan_path, plan_yaml)
    timeout_override = _approval_timeout(approval_timeout)
    plan = load_plan(plan_path)
    resolved = resolve_targets(plan, targets)
    check_gate_queries(resolved, dict(plan.gates))
    if dry_run:
        return _dry_run(plan, resolved, tuple(run_data_checks(resolved, plan.name, plan.preflight)))
    run_id = str(get_run_context().flow_run.id)  # type: ignore[union-attr]
    claim = claim_plan(resolved, plan, run_id, rollout_id or plan.release.version)
    with heartbeat(resolved, plan, run_id):
        return _drive(plan, plan_path, resolved, run_id, rollout_id, claim, timeout_override)


def _drive(
    plan: Plan,
    plan_path: str,
    resolved: Targets,
    run_id: str,
    rollout_id: str,
    claim: Claim,
    timeout_override: timedelta | None,
) -> RolloutResult:
    """The rollout from its claim on: checks, backup, phases, and how it ends."""
    logger = get_run_logger()
    previous = claim.previous if claim.resumed else None
    fence = Fence(plan.name, claim.epoch)
    if previous is not None:
        logger.warning(
            "resuming rollout %s after %s (run %s stopped without finishing)",
            previous.rollout_id,
            previous.last_committed() or "no completed step",
            previous.run_id,
        )
    checks = tuple(run_data_checks(resolved, plan.name, plan.preflight))
    failed_checks = [c.name for c in checks if not c.passed]
    if failed_checks:
        why = f"data checks failed ({', '.join(failed_checks)}): nothing was changed"
        # Blocked means nothing changed; a resumed rollout that moved traffic before is stopped
        # instead, so a rollback still undoes what it did.
        moved = previous is not None and bool(previous.undo or previous.committed)
        if moved:
            why = f"data checks failed ({', '.join(failed_checks)}) on resuming: traffic stays where it was"
        logger.error("%s", why)
        finish(resolved, plan, run_id, Status.STOPPED if moved else Status.BLOCKED, why)
        return RolloutResult(plan.name, "blocked", (), Audience().describe(), checks=checks, reason=why)
    backup = None
    if previous is not None and previous.backup:
        logger.info("keeping the backup taken before the rollout began: %s", previous.backup)
    elif plan.backup.enabled:
        enter(resolved, plan, run_id, Status.BACKING_UP, "pre-rollout backup")
        backup = backup_data(resolved, plan)
        with Clients(resolved, prefect_resolver) as clients:
            clients.runs.keep_backup(plan.name, backup.uri)
    else:
        logger.warning("no backup: waived by %s", plan.backup.waived_by)
    record_deployment(resolved, plan.name)
    events.emit(events.STARTED, plan.name, plan_path, run_id=run_id, version=plan.release.version)
    audience = Audience()
    steps: list[StepResult] = []
    progress = RampProgress(plan.name, _count_steps(plan))
    decisions: list[str] = []

    def finish_as(
        status: Status, reason: str = "", first_bad: datetime | None = None, judged: bool = False
    ) -> RolloutResult:
        """End the rollout; ``judged`` when its gates or a person found the release bad."""
        rollback = None
        outcome: Ending
        if status is Status.ROLLED_BACK and not plan.rollback.automatic:
            # The plan leaves the decision to a person or an automation: say so loudly, change nothing.
            outcome = "stopped"
            logger.error("stopped without rolling back (rollback.automatic is off): %s", reason)
            finish(resolved, plan, run_id, Status.STOPPED, reason)
            if judged and steps:
                events.emit(
                    events.FAILED,
                    plan.name,
                    plan_path,
                    reason=reason,
                    run_id=run_id,
                    rollout_id=rollout_id or plan.release.version,
                )
        elif status is Status.ROLLED_BACK:
            outcome = "rolled_back"
            state = rollback_flow(
                plan_path=plan_path,
                reason=reason,
                targets=resolved,
                first_bad_at=first_bad,
                on_behalf_of=run_id,
                return_state=True,
            )
            rollback = result_of(state, RollbackResult)
            events.emit(
                events.ROLLED_BACK, plan.name, plan_path, reason=reason, ok=rollback.ok, run_id=run_id
            )
        else:
            outcome = "promoted" if status is Status.PROMOTED else "held"
            finish(
                resolved, plan, run_id, status, reason or f"{plan.release.version} at {audience.describe()}"
            )
            if status is Status.PROMOTED:
                events.emit(
                    events.PROMOTED, plan.name, plan_path, version=plan.release.version, run_id=run_id
                )
        return RolloutResult(
            plan.name,
            outcome,
            tuple(steps),
            audience.describe(),
            tuple(decisions),
            rollback,
            first_bad,
            checks,
            backup,
            reason,
        )

    committed = previous.committed if previous is not None else frozenset()
    if previous is not None and plan.rollback.on_restart == "rollback":
        where = previous.last_committed() or "its first step"
        return finish_as(
            Status.ROLLED_BACK,
            f"rollout {previous.rollout_id} stopped after {where}; the plan rolls back on restart",
        )

    try:
        for phase in plan.phases:
            logger.info("phase %s", phase.name)
            begun = any(key.startswith(f"{phase.name}/") for key in committed)
            if phase.approval is not None and not begun:
                wait = timeout_override or phase.approval.timeout
                enter(resolved, plan, run_id, Status.AWAITING_APPROVAL, f"approval of {phase.name}")
                decision = _ask(f"starting phase {phase.name}", wait.total_seconds())
                if decision is None:
                    decisions.append(f"{phase.name}: no decision in time ({phase.approval.on_timeout})")
                    why = f"nobody approved {phase.name} within {format_duration(wait)}"
                    if phase.approval.on_timeout == "hold":
                        return finish_as(Status.HELD, f"{why}: traffic stays at {audience.describe()}")
                    return finish_as(Status.ROLLED_BACK, f"approval for {phase.name} timed out")
                decisions.append(
                    f"{phase.name}: {'approved' if decision.approved else 'rejected'} by "
                    f"{decision.approver}{': ' + decision.note if decision.note else ''}"
                )
                if not decision.approved:
                    return finish_as(
                        Status.ROLLED_BACK, f"{decision.approver} rejected {phase.name}", judged=True
                    )
            if phase.flags:
                enter(resolved, plan, run_id, Status.STEPPING, f"companion flags of {phase.name}")
                set_companion_flags(resolved, plan.name, phase.flags, fence)
            pilot = (
                choose_pilot_stores(resolved, phase.pilot_stores, plan.name, phase.name)
                if phase.pilot_stores
                else []
            )
            for step in phase_steps(phase, audience, pilot):
                audience = step.audience
                where = f"{phase.name} {audience.describe()}"
                if step.key in committed:
                    steps.append(
                        StepResult(phase.name, step.label, audience.describe(), "done before", "", {})
                    )
                    progress.advance()
                    continue
                enter(resolved, plan, run_id, Status.STEPPING, f"{where} ({step.key})")
                set_audience(resolved, plan.name, plan.flag, step.audience, fence)
                if step.window is None:
                    steps.append(StepResult(phase.name, step.label, audience.describe(), "set", "", {}))
                    _record(resolved, plan.name, step.key, steps[-1], audience, progress)
                    continue
                gates = {name: plan.gates[name] for name in step.window.gates}
                enter(resolved, plan, run_id, Status.OBSERVING, f"window of {where}")
                result: WindowResult = observe_window(resolved, step.window, gates)
                verdict = result.verdict
                steps.append(
                    StepResult(
                        phase.name,
                        step.label,
                        audience.describe(),
                        verdict.outcome.value,
                        verdict.reason,
                        result.last_values(),
                    )
                )
                _record(resolved, plan.name, step.key, steps[-1], audience, progress)
                if verdict.outcome.aborts:
                    return finish_as(
                        Status.ROLLED_BACK, f"{where}: {verdict.reason}", result.first_bad_at, judged=True
                    )
                if verdict.outcome is Outcome.INCONCLUSIVE:
                    inconclusive = f"{where} inconclusive: {verdict.reason}"
                    if step.window.on_inconclusive == "rollback":
                        return finish_as(Status.ROLLED_BACK, inconclusive, result.first_bad_at, judged=True)
                    wait = step.window.decision_timeout
                    enter(resolved, plan, run_id, Status.AWAITING_APPROVAL, inconclusive)
                    decision = _ask(f"inconclusive {step.key}", wait.total_seconds())
                    if decision is None or not decision.approved:
                        who = decision.approver if decision else "nobody in time"
                        decisions.append(f"{step.key}: inconclusive, rolled back ({who})")
                        return finish_as(
                            Status.ROLLED_BACK, inconclusive, result.first_bad_at, judged=decision is not None
                        )
                    decisions.append(f"{step.key}: inconclusive, continued by {decision.approver}")
                    continued = replace(steps[-1], outcome="continued", reason=decisions[-1])
                    record_step(resolved, plan.name, _entry(step.key, continued, audience))
    except LeaseLost as error:
        logger.error("%s", error)
        return RolloutResult(
            plan.name,
            "stopped",
            tuple(steps),
            audience.describe(),
            tuple(decisions),
            checks=checks,
            backup=backup,
            reason=str(error),
        )
    return finish_as(Status.PROMOTED)


def run_rollout(**parameters: Any) -> RolloutResult:
    """Run the rollout flow here, in this process, and return its result whatever its final state."""
    return result_of(rollout_flow(**parameters, return_state=True), RolloutResult)
