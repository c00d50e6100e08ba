"""What a rollout has changed, persisted in MongoDB so a rollback can run from it alone.

One document per plan in ``rollout_runs``: the run's status, the steps done and
an undo log of every flag as it was before the rollout first touched it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from pymongo.collection import Collection

from rollout.adapters.flags import FlagState
from rollout.adapters.mongo import Document, call

COLLECTION = "rollout_runs"
RELEASES = "rollout_releases"


@dataclass(frozen=True)
class RunRecord:
    """A rollout as persisted."""

    plan: str
    run_id: str
    status: str
    undo: tuple[FlagState, ...]
    steps: tuple[dict[str, Any], ...]
    backup: str | None = None
    router_before: dict[str, Any] | None = None
    deployment_image: str | None = None
    started_at: datetime | None = None


class RunStateStore:
    """Reads and writes ``rollout_runs``."""

    def __init__(self, collection: Collection[Document]) -> None:
        self._runs = collection

    def begin(self, plan: str, run_id: str, backup: str | None = None) -> None:
        """Start a new record for ``plan``, naming its pre-rollout backup.

        If the previous run never finished, its undo log and its backup are kept:
        they describe the system as it was before either run changed anything.
        """
        now = datetime.now(UTC)
        previous = self.get(plan)
        unfinished = previous is not None and previous.status == "running"
        undo = [asdict(s) for s in previous.undo] if previous and unfinished else []
        if previous is not None and unfinished and previous.backup:
            backup = previous.backup
        doc = {
            "run_id": run_id,
            "status": "running",
            "undo": undo,
            "steps": [],
            "started_at": now,
            "backup": backup,
            "router_before": previous.router_before if previous and unfinished else None,
            "deployment_image": previous.deployment_image if previous and unfinished else None,
        }
        call(f"begin run of {plan}", lambda: self._runs.replace_one({"_id": plan}, doc, upsert=True))

    def remember(self, plan: str, before: FlagState) -> None:
        """Add ``before`` to the undo log unless the flag is there already (the first state wins)."""
        entry = asdict(before)
        call(
            f"record undo of {before.name}",
            lambda: self._runs.update_one(
                {"_id": plan, "undo.name": {"$ne": before.name}}, {"$push": {"undo": entry}}
            ),
        )

    def remember_router(self, plan: str, before: dict[str, Any]) -> None:
        """Keep the router's split from before the rollout first changed it (the first one wins)."""
        self._first(plan, "router_before", before)

    def remember_deployment(self, plan: str, image: str) -> None:
        """Keep the image the Deployment ran when the rollout began (the first one wins)."""
        self._first(plan, "deployment_image", image)

    def _first(self, plan: str, field: str, value: Any) -> None:
        call(
            f"record {field} of {plan}",
            lambda: self._runs.update_one({"_id": plan, field: None}, {"$set": {field: value}}),
        )

    def step(self, plan: str, step: dict[str, Any]) -> None:
        """Append a completed step."""
        call(
            f"record step of {plan}", lambda: self._runs.update_one({"_id": plan}, {"$push": {"steps": step}})
        )

    def finish(self, plan: str, status: str) -> None:
        """Mark the run ``promoted``, ``rolled_back``, ``held`` or ``failed``."""
        update = {"$set": {"status": status, "finished_at": datetime.now(UTC)}}
        call(f"finish run of {plan}", lambda: self._runs.update_one({"_id": plan}, update))

    def get(self, plan: str) -> RunRecord | None:
        """The plan's last run, if any."""
        doc = call(f"read run of {plan}", lambda: self._runs.find_one({"_id": plan}))
        if doc is None:
            return None
        undo = tuple(
            FlagState(**{**u, "users": tuple(u["users"]), "stores": tuple(u["stores"])})
            for u in doc.get("undo", [])
        )
        return RunRecord(
            plan,
            doc["run_id"],
            doc["status"],
            undo,
            tuple(doc.get("steps", [])),
            doc.get("backup"),
            doc.get("router_before"),
            doc.get("deployment_image"),
            doc.get("started_at"),
        )


class ReleaseStore:
    """The last stable release of each plan (the seeds' ``.last-stable-version``), in ``rollout_releases``."""

    def __init__(self, collection: Collection[Document]) -> None:
        self._releases = collection

    def stable(self, plan: str) -> str | None:
        """The plan's last release that reached 100 %, if one did."""
        doc = call(f"read stable release of {plan}", lambda: self._releases.find_one({"_id": plan}))
        return None if doc is None else str(doc["stable"])

    def mark_stable(self, plan: str, version: str) -> None:
        """Record ``version`` as the plan's stable release, keeping the one it replaces."""
        previous = self.stable(plan)
        update = {"$set": {"stable": version, "previous": previous, "updated_at": datetime.now(UTC)}}
        call(
            f"record stable release of {plan}",
            lambda: self._releases.update_one({"_id": plan}, update, upsert=True),
        )
