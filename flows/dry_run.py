"""The dry run: everything a rollout run would read, nothing it would write."""

from prefect import get_run_logger
from prefect.artifacts import create_table_artifact

from flows.rollout_result import RolloutResult, StepResult
from rollout.analysis.check_result import CheckResult
from rollout.audience.steps import Audience, phase_steps
from rollout.plan import Plan
from rollout.plan.model import Targets
from tasks.dry_run import check_bucket, count_audiences
from tasks.traffic import (
    choose_pilot_stores,
)


def run_dry(plan: Plan, targets: Targets, checks: tuple[CheckResult, ...]) -> RolloutResult:
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
