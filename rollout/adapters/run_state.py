"""What a rollout has changed, persisted in MongoDB so a rollback can run from it alone.

One document per plan in ``rollout_runs``: the run's status, the steps done and
an undo log of every flag as it was before the rollout first touched it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pymongo.collection import Collection

from rollout.adapters.flags import FlagState
from rollout.adapters.mongo import Document, DuplicateKey, call
from rollout.errors import LeaseLost, RolloutBusy

COLLECTION = "rollout_runs"
RELEASES = "rollout_releases"
COMMITTED = frozenset({"successful", "set", "continued"})
"""Step outcomes after which the run went on: a resumed run does not do these steps again."""


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
    rollout_id: str | None = None
    lease_until: datetime | None = None
    pilots: dict[str, list[str]] = field(default_factory=dict)

    @property
    def committed(self) -> frozenset[str]:
        """Keys of the steps done and passed (``phase/index``)."""
        return frozenset(s["key"] for s in self.steps if s.get("outcome") in COMMITTED and "key" in s)

    def last_committed(self) -> str | None:
        """The key of the last step done and passed, if any."""
        keys = [s["key"] for s in self.steps if s.get("outcome") in COMMITTED and "key" in s]
        return keys[-1] if keys else None


@dataclass(frozen=True)
class Claim:
    """The plan, taken by a run: a fresh rollout, or the resumption of one that stopped half-way."""

    kind: Literal["fresh", "resumed"]
    previous: RunRecord | None = None

    @property
    def resumed(self) -> bool:
        """Whether the run carries on a rollout that stopped half-way."""
        return self.kind == "resumed"


def _aware(moment: datetime | None) -> datetime | None:
    # A client without tz_aware hands datetimes back without a zone; they were written in UTC.
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


def _taken_meanwhile(plan: str) -> RolloutBusy:
    return RolloutBusy(f"plan {plan} was taken by another run while this one was starting")


class RunStateStore:
    """Reads and writes ``rollout_runs``."""

    def __init__(self, collection: Collection[Document]) -> None:
        self._runs = collection

    def claim(
        self, plan: str, run_id: str, rollout_id: str, lease: timedelta, now: datetime | None = None
    ) -> Claim:
        """Take ``plan`` for ``run_id`` for ``lease``, or refuse with :class:`RolloutBusy`.

        A run still holding its lease keeps the plan. A run that stopped half-way
        (its lease ran out while it was ``running``) is resumed by a run of the same
        ``rollout_id``: its steps, undo log and backup are kept. A different rollout
        is refused until that one is resumed or rolled back.
        """
        now = now or datetime.now(UTC)
        previous = self.get(plan)
        if previous is not None and previous.status == "running":
            lease_until = previous.lease_until
            if previous.run_id != run_id and lease_until is not None and lease_until > now:
                raise RolloutBusy(
                    f"plan {plan} is being rolled out by run {previous.run_id} (rollout "
                    f"{previous.rollout_id}), which holds it until {lease_until:%Y-%m-%d %H:%M:%S} UTC "
                    "unless it renews: wait for it to finish, or roll it back with `rollout rollback`"
                )
            if previous.rollout_id != rollout_id:
                where = previous.last_committed() or "its first step"
                raise RolloutBusy(
                    f"rollout {previous.rollout_id} of plan {plan} stopped after {where} without finishing: "
                    f"resume it (run the plan again with rollout id {previous.rollout_id}) or roll it back "
                    "(`rollout rollback`) before starting rollout " + rollout_id
                )
            taken = call(
                f"resume run of {plan}",
                lambda: self._runs.update_one(
                    {"_id": plan, "run_id": previous.run_id, "status": "running"},
                    {"$set": {"run_id": run_id, "lease_until": now + lease, "resumed_at": now}},
                ),
            )
            if taken.modified_count != 1:
                raise _taken_meanwhile(plan)
            return Claim("resumed", previous)
        doc = {
            "run_id": run_id,
            "rollout_id": rollout_id,
            "status": "running",
            "lease_until": now + lease,
            "undo": [],
            "steps": [],
            "pilots": {},
            "started_at": now,
            "backup": None,
            "router_before": None,
            "deployment_image": None,
        }
        unchanged = {"_id": plan, "run_id": previous.run_id, "status": previous.status} if previous else None
        if unchanged is None:
            try:
                call(f"begin run of {plan}", lambda: self._runs.insert_one({"_id": plan, **doc}))
            except DuplicateKey:
                raise _taken_meanwhile(plan) from None
        else:
            replaced = call(f"begin run of {plan}", lambda: self._runs.replace_one(unchanged, doc))
            if replaced.modified_count != 1:
                raise _taken_meanwhile(plan)
        return Claim("fresh", previous)

    def renew(self, plan: str, run_id: str, lease: timedelta, now: datetime | None = None) -> None:
        """Extend ``run_id``'s hold on ``plan`` by ``lease``, or raise :class:`LeaseLost` if it lost it."""
        until = (now or datetime.now(UTC)) + lease
        renewed = call(
            f"renew lease on {plan}",
            lambda: self._runs.update_one(
                {"_id": plan, "run_id": run_id, "status": "running"}, {"$set": {"lease_until": until}}
            ),
        )
        if renewed.matched_count != 1:
            current = self.get(plan)
            by = f"{current.status} by run {current.run_id}" if current else "removed"
            raise LeaseLost(
                f"run {run_id} no longer holds plan {plan} (now {by}): stopping, changing nothing"
            )

    def take_over(self, plan: str, run_id: str) -> None:
        """Mark the plan ``rolling_back`` by ``run_id``, so a rollout still running stops at its next step."""
        call(
            f"take over {plan}",
            lambda: self._runs.update_one(
                {"_id": plan}, {"$set": {"status": "rolling_back", "rollback_run_id": run_id}}
            ),
        )

    def keep_backup(self, plan: str, uri: str) -> None:
        """Name the run's pre-rollout backup (the first one wins: a resumed run keeps the original)."""
        self._first(plan, "backup", uri)

    def remember_pilots(self, plan: str, phase: str, stores: list[str]) -> list[str]:
        """Keep the pilot stores chosen for ``phase``; returns the first choice (reused on resume)."""
        key = f"pilots.{phase}"
        call(
            f"record pilot stores of {plan}",
            lambda: self._runs.update_one({"_id": plan, key: {"$exists": False}}, {"$set": {key: stores}}),
        )
        kept = call(f"read pilot stores of {plan}", lambda: self._runs.find_one({"_id": plan}, {key: 1}))
        return list((kept or {}).get("pilots", {}).get(phase, stores))

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
            _aware(doc.get("started_at")),
            doc.get("rollout_id"),
            _aware(doc.get("lease_until")),
            dict(doc.get("pilots") or {}),
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
