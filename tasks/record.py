"""Each traffic step's outcome, persisted (for `rollout status` and the exporter) and shown in the UI."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from prefect.artifacts import create_progress_artifact, create_table_artifact, update_progress_artifact

from rollout.adapters.clients import Clients
from rollout.plan.model import Targets
from tasks.secrets import prefect_resolver


@dataclass(frozen=True)
class StepRecordEntry:
    """What is persisted of one step."""

    key: str
    phase: str
    step: str
    audience: str
    percentage: float
    outcome: str
    reason: str
    values: dict[str, float | None]
    at: datetime
    admitted: dict[str, Any]


class RampProgress:
    """A progress artifact for the whole rollout: steps done out of all steps."""

    def __init__(self, plan: str, total_steps: int) -> None:
        self._total = max(total_steps, 1)
        self._done = 0
        artifact = create_progress_artifact(0.0, description=f"{plan}: traffic steps done")
        # Called from synchronous code, Prefect's sync-compatible helper returns the id itself.
        assert isinstance(artifact, UUID)
        self._id = artifact

    def advance(self) -> None:
        """One more step done."""
        self._done += 1
        update_progress_artifact(self._id, 100.0 * min(self._done, self._total) / self._total)


def record_step(targets: Targets, plan: str, entry: StepRecordEntry) -> None:
    """Persist the step in the run's record and publish its gate values as a table artifact."""
    data: dict[str, Any] = asdict(entry)
    with Clients(targets, prefect_resolver) as clients:
        clients.runs.step(plan, data)
    if entry.values:
        create_table_artifact(
            [
                {"gate": gate, "value": "no data" if value is None else f"{value:.4g}"}
                for gate, value in entry.values.items()
            ],
            key=f"{plan}-gates".lower(),
            description=f"{entry.phase} / {entry.step} at {entry.audience}: {entry.outcome}",
        )


def now() -> datetime:
    """The current time in UTC."""
    return datetime.now(UTC)
