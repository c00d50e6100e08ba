"""What a rollout run did and how it ended, and the Prefect state that says so."""

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from prefect import State

from flows.outcomes import completed, failed
from flows.rollback import RollbackResult
from rollout.analysis.check_result import CheckResult
from rollout.data.backup import BackupResult
from rollout.reporting.incident import failed_steps

Ending = Literal["promoted", "rolled_back", "held", "blocked", "stopped", "dry_run"]
"""How a run of the rollout ended (the rollout's own status is in :mod:`rollout.lifecycle.statuses`)."""


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


def final_state(result: RolloutResult) -> State[RolloutResult]:
    """The run's Prefect state: the outcome by name, the reason as its message."""
    if result.status == "promoted":
        decided = "".join(f"; {decision}" for decision in result.decisions)
        return completed("Promoted", f"{result.plan}: {result.final_audience}{decided}", result)
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
