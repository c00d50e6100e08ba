"""The compensating rollback: every traffic change the rollout made, undone newest first.

Traffic comes first because that is what makes the service safe; data is
restored after it, and only once an emergency backup holds the current state,
so a restore can itself be undone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from prefect import flow, get_run_logger

from rollout.adapters.clients import Clients
from rollout.errors import RolloutError
from rollout.plan import Plan, load_plan
from rollout.plan.model import Targets
from rollout.targets import resolve_targets
from tasks.data import backup_data, restore_data
from tasks.secrets import prefect_resolver
from tasks.traffic import restore_flag


@dataclass(frozen=True)
class RollbackStep:
    """One undo action and how it went."""

    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class RollbackResult:
    """What the rollback did; ``traffic_off_at`` is when the main flag stopped admitting anyone."""

    plan: str
    reason: str
    steps: tuple[RollbackStep, ...]
    traffic_off_at: datetime | None

    @property
    def ok(self) -> bool:
        """Whether every step succeeded."""
        return all(step.ok for step in self.steps)


@flow(name="rollback")
def rollback_flow(plan_path: str, reason: str, targets: Targets | None = None) -> RollbackResult:
    """Undo the plan's last rollout from its persisted undo log; a failing step does not stop the rest."""
    logger = get_run_logger()
    plan = load_plan(plan_path)
    resolved = resolve_targets(plan, targets)
    logger.warning("rolling back %s: %s", plan.name, reason)
    with Clients(resolved, prefect_resolver) as clients:
        record = clients.runs.get(plan.name)
    undo = list(record.undo) if record else []
    # The main flag goes first, whatever the log's order: traffic off is what makes it safe.
    undo.sort(key=lambda s: s.name != plan.flag)
    if not any(s.name == plan.flag for s in undo):
        with Clients(resolved, prefect_resolver) as clients:
            undo.insert(0, clients.flags.get(plan.flag))
    steps: list[RollbackStep] = []
    traffic_off_at = None
    primary, companions = undo[0], list(reversed(undo[1:]))
    for before in [primary, *companions]:
        is_primary = before.name == plan.flag
        try:
            restore_flag(resolved, before, traffic_off=is_primary)
            if is_primary:
                traffic_off_at = datetime.now(UTC)
            steps.append(RollbackStep(f"flag {before.name}", True, "traffic 0" if is_primary else "restored"))
        except RolloutError as error:
            steps.append(RollbackStep(f"flag {before.name}", False, str(error)))
    if plan.rollback.restore.mode != "none":
        steps += _restore(plan, resolved, record.backup if record else None)
    result = RollbackResult(plan.name, reason, tuple(steps), traffic_off_at)
    with Clients(resolved, prefect_resolver) as clients:
        clients.runs.finish(plan.name, "rolled_back" if result.ok else "rollback_incomplete")
    return result


def _restore(plan: Plan, targets: Targets, backup_uri: str | None) -> list[RollbackStep]:
    """Emergency backup of the current state, then the restore the plan asks for."""
    settings = plan.rollback.restore
    if backup_uri is None:
        return [
            RollbackStep(
                "data restore",
                False,
                "no pre-rollout backup is recorded for this plan: pick one and run `rollout restore`",
            )
        ]
    try:
        emergency = backup_data(targets, plan, "emergency")
    except RolloutError as error:
        return [
            RollbackStep("emergency backup", False, str(error)),
            RollbackStep(
                "data restore", False, "not attempted: the current state could not be backed up first"
            ),
        ]
    steps = [RollbackStep("emergency backup", True, emergency.uri)]
    try:
        restored = restore_data(
            targets,
            backup_uri,
            collections=settings.collections if settings.mode == "selective" else None,
            document_filter=settings.filter,
        )
    except RolloutError as error:
        return [*steps, RollbackStep("data restore", False, str(error))]
    counts = ", ".join(f"{c.name} {c.restored}/{c.archived} {c.how}" for c in restored.collections)
    return [*steps, RollbackStep("data restore", restored.ok, f"{settings.mode} from {backup_uri}: {counts}")]
