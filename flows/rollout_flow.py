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
from typing import Annotated, Literal

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact
from prefect.context import get_run_context
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run
from pydantic import BaseModel, Field

from flows.rollback import RollbackResult, rollback_flow
from rollout import events
from rollout.adapters.clients import Clients
from rollout.data.backup import BackupResult
from rollout.data.checks import CheckResult
from rollout.durations import parse_duration
from rollout.errors import LeaseLost, PlanInvalid, Problem
from rollout.gates import Outcome
from rollout.plan import Plan, load_plan
from rollout.plan.model import Targets
from rollout.plan.source import plan_source
from rollout.targets import resolve_targets
from rollout.traffic import Audience, phase_steps
from rollout.window import WindowResult
from tasks.data import backup_data, run_data_checks
from tasks.dry_run import check_bucket, count_audiences
from tasks.lease import claim_plan, renew_lease
from tasks.observe import check_gate_queries, observe_window
from tasks.record import RampProgress, StepRecordEntry, now, record_step
from tasks.secrets import prefect_resolver
from tasks.traffic import choose_pilot_stores, record_deployment, set_audience, set_companion_flags

Status = Literal["promoted", "rolled_back", "held", "blocked", "stopped", "dry_run"]


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
    status: Status
    steps: tuple[StepResult, ...]
    final_audience: str
    decisions: tuple[str, ...] = ()
    rollback: RollbackResult | None = None
    first_bad_at: datetime | None = None
    checks: tuple[CheckResult, ...] = ()
    backup: BackupResult | None = None

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
) -> RolloutResult:
    """Run a plan and roll it back by itself if the service is not healthy.

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
    logger = get_run_logger()
    plan_path = plan_source(plan_path, plan_yaml)
    timeout_override = _approval_timeout(approval_timeout)
    plan = load_plan(plan_path)
    resolved = resolve_targets(plan, targets)
    check_gate_queries(resolved, dict(plan.gates))
    if dry_run:
        return _dry_run(plan, resolved, tuple(run_data_checks(resolved, plan.name, plan.preflight)))
    run_id = str(get_run_context().flow_run.id)  # type: ignore[union-attr]
    claim = claim_plan(resolved, plan, run_id, rollout_id or plan.release.version)
    previous = claim.previous if claim.resumed else None
    if previous is not None:
        logger.warning(
            "resuming rollout %s after %s (run %s stopped without finishing)",
            previous.rollout_id,
            previous.last_committed() or "no completed step",
            previous.run_id,
        )
    checks = tuple(run_data_checks(resolved, plan.name, plan.preflight))
    failed = [c.name for c in checks if not c.passed]
    if failed:
        logger.error("data checks failed (%s): nothing was changed", ", ".join(failed))
        with Clients(resolved, prefect_resolver) as clients:
            clients.runs.finish(plan.name, "blocked")
        return RolloutResult(plan.name, "blocked", (), Audience().describe(), checks=checks)
    backup = None
    if previous is not None and previous.backup:
        logger.info("keeping the backup taken before the rollout began: %s", previous.backup)
    elif plan.backup.enabled:
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

    def finish(status: Status, reason: str = "", first_bad: datetime | None = None) -> RolloutResult:
        rollback = None
        if status == "rolled_back" and not plan.rollback.automatic:
            # The plan leaves the decision to a person or an automation: say so loudly, change nothing.
            status = "stopped"
            logger.error("stopped without rolling back (rollback.automatic is off): %s", reason)
            events.emit(events.FAILED, plan.name, plan_path, reason=reason, run_id=run_id)
            with Clients(resolved, prefect_resolver) as clients:
                clients.runs.finish(plan.name, "stopped")
        elif status == "rolled_back":
            rollback = rollback_flow(
                plan_path=plan_path, reason=reason, targets=resolved, first_bad_at=first_bad
            )
            events.emit(events.ROLLED_BACK, plan.name, plan_path, reason=reason, ok=rollback.ok)
        else:
            with Clients(resolved, prefect_resolver) as clients:
                clients.runs.finish(plan.name, status)
                if status == "promoted":
                    clients.releases.mark_stable(plan.name, plan.release.version)
            if status == "promoted":
                events.emit(events.PROMOTED, plan.name, plan_path, version=plan.release.version)
        return RolloutResult(
            plan.name,
            status,
            tuple(steps),
            audience.describe(),
            tuple(decisions),
            rollback,
            first_bad,
            checks,
            backup,
        )

    committed = previous.committed if previous is not None else frozenset()
    if previous is not None and plan.rollback.on_restart == "rollback":
        where = previous.last_committed() or "its first step"
        return finish(
            "rolled_back",
            f"rollout {previous.rollout_id} stopped after {where}; the plan rolls back on restart",
        )

    try:
        for phase in plan.phases:
            logger.info("phase %s", phase.name)
            begun = any(key.startswith(f"{phase.name}/") for key in committed)
            if phase.approval is not None and not begun:
                wait = timeout_override or phase.approval.timeout
                renew_lease(resolved, plan, run_id, extra=wait)
                decision = _ask(f"starting phase {phase.name}", wait.total_seconds())
                if decision is None:
                    decisions.append(f"{phase.name}: no decision in time ({phase.approval.on_timeout})")
                    if phase.approval.on_timeout == "hold":
                        return finish("held")
                    return finish("rolled_back", f"approval for {phase.name} timed out")
                decisions.append(
                    f"{phase.name}: {'approved' if decision.approved else 'rejected'} by "
                    f"{decision.approver}{': ' + decision.note if decision.note else ''}"
                )
                if not decision.approved:
                    return finish("rolled_back", f"{decision.approver} rejected {phase.name}")
            if phase.flags:
                renew_lease(resolved, plan, run_id)
                set_companion_flags(resolved, plan.name, phase.flags)
            pilot = (
                choose_pilot_stores(resolved, phase.pilot_stores, plan.name, phase.name)
                if phase.pilot_stores
                else []
            )
            for step in phase_steps(phase, audience, pilot):
                audience = step.audience
                if step.key in committed:
                    steps.append(
                        StepResult(phase.name, step.label, audience.describe(), "done before", "", {})
                    )
                    progress.advance()
                    continue
                renew_lease(resolved, plan, run_id)
                set_audience(resolved, plan.name, plan.flag, step.audience)
                if step.window is None:
                    steps.append(StepResult(phase.name, step.label, audience.describe(), "set", "", {}))
                    _record(resolved, plan.name, step.key, steps[-1], audience, progress)
                    continue
                gates = {name: plan.gates[name] for name in step.window.gates}
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
                    return finish("rolled_back", f"{step.key}: {verdict.reason}", result.first_bad_at)
                if verdict.outcome is Outcome.INCONCLUSIVE:
                    if step.window.on_inconclusive == "rollback":
                        return finish(
                            "rolled_back", f"{step.key} inconclusive: {verdict.reason}", result.first_bad_at
                        )
                    wait = step.window.decision_timeout
                    renew_lease(resolved, plan, run_id, extra=wait)
                    decision = _ask(f"inconclusive {step.key}", wait.total_seconds())
                    if decision is None or not decision.approved:
                        who = decision.approver if decision else "nobody in time"
                        decisions.append(f"{step.key}: inconclusive, rolled back ({who})")
                        return finish(
                            "rolled_back", f"{step.key} inconclusive: {verdict.reason}", result.first_bad_at
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
        )
    return finish("promoted")
