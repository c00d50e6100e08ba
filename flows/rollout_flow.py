"""The rollout flow: gate queries and data checked, a verified backup taken, then phases in order.

Nothing changes until every gate query is accepted by Prometheus, every data
check passes and the backup's archive has been read back against its manifest.
Each traffic step is then set and observed. A failed or errored window rolls
back at once; an inconclusive one waits for a person (or rolls back, as the
plan says); a phase with ``approval`` waits for one before it starts.
"""

from datetime import timedelta
from typing import Annotated, Any

from prefect import State, flow, get_run_logger
from prefect.context import get_run_context
from pydantic import Field

from flows.dry_run import run_dry
from flows.outcomes import refusal, result_of
from flows.rollout_driver import RolloutDriver
from flows.rollout_result import RolloutResult, final_state
from flows.run_names import rollout_run_name
from rollout.durations import parse_duration
from rollout.errors import InputRejected, PlanInvalid, Problem, RolloutBusy, RolloutRefused
from rollout.plan import load_plan
from rollout.plan.model import Targets
from rollout.plan.source import plan_source
from rollout.targets import resolve_targets
from tasks.data import run_data_checks
from tasks.lease import claim_plan, heartbeat
from tasks.notify import check_notifications
from tasks.observe import check_gate_queries
from tasks.traffic import check_flags

PlanYaml = Annotated[str, Field(json_schema_extra={"format": "textarea"})]
"""Pasted YAML: a multi-line box in the UI's form."""


def _approval_timeout(value: str) -> timedelta | None:
    """The override as a duration (None when empty); a clear error naming the parameter otherwise."""
    if not value.strip():
        return None
    try:
        parsed = parse_duration(value)
    except ValueError as error:
        raise PlanInvalid([Problem("approval_timeout", str(error))]) from None
    if parsed <= timedelta(0):
        raise PlanInvalid([Problem("approval_timeout", "must be positive, e.g. '30m'")])
    return parsed


@flow(name="rollout", flow_run_name=rollout_run_name)
def rollout_flow(
    plan_path: str = "",
    targets: Targets | None = None,
    dry_run: bool = False,
    plan_yaml: PlanYaml = "",
    approval_timeout: str = "",
    rollout_id: str = "",
    force: bool = False,
    reason: str = "",
    restart_ramp: bool = False,
) -> State[RolloutResult]:
    """Run a plan and roll it back by itself if the service is not healthy.

    The run ends Promoted (Completed), or RolledBack, Held, Stopped, Blocked (Failed, with the
    reason); a plan or parameter that cannot be used ends InvalidInput, a start refused because
    another run holds the plan ends Refused: neither changes anything.

    Args:
        plan_path: The plan file, relative to the project (e.g. deployments/plans/unified-orders.yaml).
            A plan pasted as plan_yaml is run instead.
        targets: The systems to act on, instead of the plan's (or the local sandbox's).
        dry_run: Check everything (gate queries, data checks, the bucket, pilot stores, who each step
            would admit) and change nothing.
        plan_yaml: The whole plan as YAML; when given, it is run instead of plan_path. It is
            validated, then kept as a file so the rollback can find it.
        approval_timeout: How long every approval waits for a decision in this run, instead of the
            plan's (e.g. '30m', '2h'; empty: the plan's).
        rollout_id: Which rollout this run is (default: the plan's release version). A run of the same
            rollout after one stopped half-way resumes it after its last completed step (or rolls it
            back, as the plan's rollback.on_restart says); a different rollout is refused meanwhile.
            A finished rollout is never run again: this run again (Prefect's Retry) or its id given
            here is refused.
        force: Roll out a release the history shows as the stable one now, or as superseded by a
            newer one (refused otherwise, naming both). Needs a reason.
        reason: Why it is forced; kept in the run's log.
        restart_ramp: Start the ramp again from the first step although a promoted rollout of the plan
            left its flag higher (refused otherwise, saying how many users would lose the new code).
    """
    try:
        forced = _forced(force, reason)
        result = _rollout(
            plan_path, targets, dry_run, plan_yaml, approval_timeout, rollout_id, forced, restart_ramp
        )
    except (InputRejected, RolloutBusy, RolloutRefused) as error:
        get_run_logger().error("nothing was changed: %s", error)
        return refusal(error)
    return final_state(result)


def _forced(force: bool, reason: str) -> str:
    """The reason a forced start gives; a clear error when force comes without one."""
    if force and not reason.strip():
        raise PlanInvalid([Problem("reason", "force needs a reason: say why this release goes out again")])
    if reason.strip() and not force:
        raise PlanInvalid([Problem("force", "a reason is given, but not force: set force to use it")])
    return reason.strip() if force else ""


def _rollout(
    plan_path: str,
    targets: Targets | None,
    dry_run: bool,
    plan_yaml: str,
    approval_timeout: str,
    rollout_id: str,
    forced: str = "",
    restart_ramp: bool = False,
) -> RolloutResult:
    plan_path = plan_source(plan_path, plan_yaml)
    timeout_override = _approval_timeout(approval_timeout)
    plan = load_plan(plan_path)
    resolved = resolve_targets(plan, targets)
    check_gate_queries(resolved, dict(plan.gates))
    check_flags(resolved, plan.flags_written)
    check_notifications(plan)
    if dry_run:
        return run_dry(plan, resolved, tuple(run_data_checks(resolved, plan.name, plan.preflight)))
    flow_run = get_run_context().flow_run  # type: ignore[union-attr]
    assert flow_run is not None
    run_id = str(flow_run.id)
    deployment = str(flow_run.deployment_id) if flow_run.deployment_id else None
    about = {"plan_path": plan_path, "plan_digest": plan.digest, "deployment_id": deployment}
    claim = claim_plan(
        resolved,
        plan,
        run_id,
        rollout_id or plan.release.version,
        about,
        explicit_id=bool(rollout_id),
        forced=forced,
        restart_ramp=restart_ramp,
    )
    driver = RolloutDriver(plan, plan_path, resolved, run_id, rollout_id, claim, timeout_override, deployment)
    with heartbeat(resolved, plan, run_id):
        return driver.drive()


def run_rollout(**parameters: Any) -> RolloutResult:
    """Run the rollout flow here, in this process, and return its result whatever its final state."""
    return result_of(rollout_flow(**parameters, return_state=True), RolloutResult)
