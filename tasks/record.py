"""Each traffic step's outcome, persisted (for `rollout status` and the exporter) and shown in the UI."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from prefect import get_run_logger
from prefect.artifacts import create_progress_artifact, create_table_artifact, update_progress_artifact
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import ArtifactUpdate
from prefect.client.schemas.objects import Artifact
from prefect.context import get_run_context

from rollout.adapters.clients import Clients
from rollout.plan.model import Targets
from rollout.reporting.rollout_table import Row
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


def _this_runs_artifact(key: str) -> UUID | None:
    """This flow run's artifact under ``key``: a run woken after parking starts over and finds it again."""
    flow_run = get_run_context().flow_run  # type: ignore[union-attr]
    assert flow_run is not None
    found = find_artifact(key, flow_run.id)
    return found.id if found is not None else None


def find_artifact(key: str, flow_run_id: UUID) -> Artifact | None:
    """The newest artifact under ``key`` that flow run ``flow_run_id`` made.

    Asked of the REST API directly: Prefect 3.8.8's ``read_artifacts`` sends filters this needs
    left out (none: refused with 422; empty: only artifacts of task runs are found).
    """
    body = {
        "artifacts": {"key": {"any_": [key]}, "flow_run_id": {"any_": [str(flow_run_id)]}},
        "sort": "CREATED_DESC",
        "limit": 1,
        "offset": 0,
    }
    with get_client(sync_client=True) as client:
        found = Artifact.model_validate_list(client.request("POST", "/artifacts/filter", json=body).json())
    return found[0] if found else None


def courtesy(what: str, show: Callable[[], object]) -> None:
    """Show something in the UI; failing to is logged, never a reason to stop a rollout."""
    try:
        show()
    except Exception as error:  # the UI's artifacts are a view; the rollout's record is the truth
        get_run_logger().warning("%s not shown in the UI: %s: %s", what, type(error).__name__, error)


def mark_run_views(plan: str, run_id: str, said: str) -> None:
    """Rewrite the descriptions of run ``run_id``'s rollout table and progress to say ``said``."""
    for kind in ("rollout", "progress"):
        found = find_artifact(f"{plan}-{kind}".lower(), UUID(run_id))
        if found is not None:
            with get_client(sync_client=True) as client:
                client.update_artifact(found.id, ArtifactUpdate(description=f"{plan}: {said}"))


def rename_run(run_id: str, name: str) -> None:
    """Give the flow run ``run_id`` the name people will find it by in the runs list."""
    with get_client(sync_client=True) as client:
        client.update_flow_run(UUID(run_id), name=name)


def _describe(artifact: UUID, description: str) -> None:
    with get_client(sync_client=True) as client:
        client.update_artifact(artifact, ArtifactUpdate(description=description))


class RampProgress:
    """A progress artifact for the whole rollout: steps done out of all steps, then how it ended."""

    def __init__(self, plan: str, total_steps: int) -> None:
        self._total = max(total_steps, 1)
        self._done = 0
        self._plan = plan
        self._key = f"{plan}-progress".lower()
        self._id: UUID | None = None
        courtesy("the progress", self._find)

    def _find(self) -> None:
        found = _this_runs_artifact(self._key)
        if found is None:
            made = create_progress_artifact(
                0.0, key=self._key, description=f"{self._plan}: traffic steps done"
            )
            # Called from synchronous code, Prefect's sync-compatible helper returns the id itself.
            assert isinstance(made, UUID)
            found = made
        self._id = found

    @property
    def share(self) -> float:
        """Percent of the steps done."""
        return 100.0 * min(self._done, self._total) / self._total

    def advance(self) -> None:
        """One more step done."""
        self._done += 1
        if self._id is not None:
            artifact = self._id
            courtesy("the progress", lambda: update_progress_artifact(artifact, self.share))

    def ended(self, how: str) -> None:
        """Say how the rollout ended, beside how far it got: ``RolledBack: ... (4 of 7 steps, 57 %)``."""
        if self._id is not None:
            artifact, said = self._id, f"{how} ({self._done} of {self._total} steps, {self.share:.0f} %)"
            courtesy("the progress", lambda: _describe(artifact, said))


class RolloutTable:
    """A table artifact per rollout run, rewritten at every step (:mod:`rollout.reporting.rollout_table`)."""

    def __init__(self, plan: str) -> None:
        self._key = f"{plan}-rollout".lower()
        self._plan = plan
        self._id: UUID | None = None
        self._looked = False

    def show(self, rows: list[Row], status: str) -> None:
        """Replace the table with ``rows``; ``status`` heads its description."""
        courtesy("the rollout table", lambda: self._show(rows, status))

    def _show(self, rows: list[Row], status: str) -> None:
        if not self._looked:
            self._id, self._looked = _this_runs_artifact(self._key), True
        description = f"{self._plan}: {status}"
        if self._id is None:
            made = create_table_artifact(rows, key=self._key, description=description)
            assert isinstance(made, UUID)  # the sync-compatible helper, called from synchronous code
            self._id = made
            return
        with get_client(sync_client=True) as client:
            client.update_artifact(self._id, ArtifactUpdate(data=json.dumps(rows), description=description))


def record_step(targets: Targets, plan: str, entry: StepRecordEntry) -> None:
    """Persist the step in the run's record."""
    data: dict[str, Any] = asdict(entry)
    with Clients(targets, prefect_resolver) as clients:
        clients.runs.step(plan, data)


def now() -> datetime:
    """The current time in UTC."""
    return datetime.now(UTC)
