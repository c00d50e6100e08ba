"""What a rollout has changed, persisted in MongoDB so a rollback can run from it alone.

One document per plan in ``rollout_runs``: the rollout's status (see
:mod:`rollout.lifecycle.statuses`) with the history of its moves, the steps done, an undo
log of every flag as it was before the rollout first touched it, the backup
taken before it began and the restores a rollback made from it.

One module though long: every operation here is a compare-and-set on the same document,
and the record's fields, their parsing and the moves that change them must change together.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo.collection import Collection

from rollout.adapters.mongo import Document, DuplicateKey, call
from rollout.analysis.gates import Measurement, Outcome
from rollout.audience.drift import Written
from rollout.audience.flag_state import FlagState
from rollout.errors import LeaseLost, RolloutBusy
from rollout.lifecycle.admission import Finished
from rollout.lifecycle.progression import Decision, Parked, Progress, Round, WindowState
from rollout.lifecycle.record import Claim, RestoreRecord, RunRecord
from rollout.lifecycle.statuses import (
    DRIVEN,
    LEGACY,
    REPLACEABLE,
    Move,
    MoveRefused,
    Status,
    check_move,
    parse_status,
)

COLLECTION = "rollout_runs"
RELEASES = "rollout_releases"


def _aware(moment: datetime | None) -> datetime | None:
    # A client without tz_aware hands datetimes back without a zone; they were written in UTC.
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


def _taken_meanwhile(plan: str) -> RolloutBusy:
    return RolloutBusy(f"plan {plan} was taken by another run while this one was starting")


def _stored(statuses: frozenset[Status]) -> list[str]:
    """The values a record at one of ``statuses`` may hold, old names included."""
    return [s.value for s in statuses] + [old for old, new in LEGACY.items() if new in statuses]


def _same_revision(record: RunRecord) -> dict[str, Any]:
    """A filter matching the record only while nothing has moved it since it was read."""
    return {"_id": record.plan, "revision": record.revision or {"$in": [None, 0]}}


def _history(source: Status | None, target: Status, at: datetime, by: str, why: str) -> dict[str, Any]:
    return {"from": source.value if source else None, "to": target.value, "at": at, "by": by, "why": why}


def _when(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC" if moment is not None else "someone decides"


def progress_fields(progress: Progress) -> Document:
    """The record's fields for what the progression core adds to steps, pilots and the backup."""
    return {
        "window": _window_doc(progress.window),
        "asked": dict(progress.asked),
        "decisions": {about: asdict(d) for about, d in progress.decisions.items()},
        "companions": sorted(progress.companions),
    }


def _window_doc(window: WindowState | None) -> Document | None:
    if window is None:
        return None
    return {
        "key": window.key,
        "started_at": window.started_at,
        "rounds": [
            {"at": r.at, "readings": [{**asdict(m), "outcome": m.outcome.value} for m in r.readings]}
            for r in window.rounds
        ],
    }


def _window_of(doc: Document | None) -> WindowState | None:
    if not doc:
        return None
    rounds = tuple(
        Round(
            _aware(r["at"]) or r["at"],
            tuple(
                Measurement(
                    m["gate"],
                    Outcome(m["outcome"]),
                    m.get("value"),
                    _aware(m["at"]) or m["at"],
                    m.get("message", ""),
                )
                for m in r.get("readings", [])
            ),
        )
        for r in doc.get("rounds", [])
    )
    return WindowState(doc["key"], _aware(doc["started_at"]) or doc["started_at"], rounds)


def _decision_of(doc: Document) -> Decision:
    return Decision(
        doc.get("approved"),
        doc.get("by", ""),
        _aware(doc["at"]) or doc["at"],
        doc.get("note", ""),
        tuple(doc.get("ticked") or ()),
    )


EARLIER_KEPT = 50
"""Finished rollouts of a plan kept in its record (for refusing a replay), newest first."""


def _finished_doc(done: Finished) -> Document:
    return {**asdict(done), "status": done.status.value}


def _finished_of(doc: Document) -> Finished:
    return Finished(
        run_id=doc["run_id"],
        rollout_id=doc.get("rollout_id"),
        version=doc.get("version"),
        status=parse_status(doc["status"]),
        at=_aware(doc.get("at")),
    )


def _written_of(doc: Document) -> Written:
    return Written(
        flag=doc["flag"],
        version=int(doc.get("version") or 0),
        enabled=bool(doc.get("enabled")),
        percentage=float(doc.get("percentage") or 0),
        users=tuple(doc.get("users") or ()),
        stores=tuple(doc.get("stores") or ()),
        foreign=tuple(doc.get("foreign") or ()),
    )


def _parked_doc(parked: Parked) -> Document:
    return {**asdict(parked), "status": parked.status.value}


def _parked_of(doc: Document | None) -> Parked | None:
    if not doc:
        return None
    return Parked(
        _aware(doc["since"]) or doc["since"],
        _aware(doc.get("until")),
        doc.get("next", ""),
        doc.get("about", ""),
        doc.get("key", ""),
        parse_status(doc["status"]),
    )


class RunStateStore:
    """Reads and writes ``rollout_runs``; the only place a rollout's status is changed."""

    def __init__(self, collection: Collection[Document]) -> None:
        self._runs = collection

    def claim(
        self,
        plan: str,
        run_id: str,
        rollout_id: str,
        lease: timedelta,
        now: datetime | None = None,
        *,
        version: str | None = None,
        stable_before: str | None = None,
        epoch_floor: int = 0,
        about: dict[str, Any] | None = None,
    ) -> Claim:
        """Take ``plan`` for ``run_id`` for ``lease`` (``checking``), or refuse with :class:`RolloutBusy`.

        A run still holding its lease keeps the plan. A rollout that stopped half-way
        (its lease ran out while a run drove it, or it is held or stopped) is resumed by
        a run of the same ``rollout_id``: its steps, undo log and backup are kept. A
        different rollout is refused until that one is resumed or rolled back, and so is
        any rollout while a rollback is under way or left incomplete. ``version`` is the
        release rolled out, ``stable_before`` the release stable before it (what a
        rollback puts back). The claim's epoch is above both the record's and ``epoch_floor``
        (the highest the plan has written flags with), so it is never fenced off by its own past.
        ``about`` is kept with a fresh rollout (plan_path, plan_digest, deployment_id); a resumed one
        keeps what it began with, except the deployment of the run now driving it.

        A parked rollout is carried on by its own run, woken (the same ``run_id``), only.
        """
        now = now or datetime.now(UTC)
        about = dict(about or {})
        previous = self.get(plan)
        if previous is None or previous.status in REPLACEABLE:
            epoch = max(previous.epoch if previous else 0, epoch_floor) + 1
            return self._begin(
                plan, run_id, rollout_id, now + lease, now, version, stable_before, previous, epoch, about
            )
        if previous.run_id == run_id and previous.status is Status.CHECKING:
            return Claim("fresh", epoch=previous.epoch)  # this run's own claim, tried again
        if previous.status is Status.PARKED and previous.run_id != run_id:
            parked = previous.parked
            raise RolloutBusy(
                f"rollout {previous.rollout_id} of plan {plan} is parked (run {previous.run_id} is "
                f"suspended{', ' + parked.next if parked else ''}): it carries on by itself, or answer it "
                "with `rollout promote`; roll it back with `rollout rollback`"
            )
        if previous.status is not Status.PARKED:
            self._refuse_busy(plan, previous, rollout_id, now)
        taken = call(
            f"resume run of {plan}",
            lambda: self._runs.update_one(
                {**_same_revision(previous), "run_id": previous.run_id},
                {
                    "$set": {
                        "run_id": run_id,
                        "lease_until": now + lease,
                        "resumed_at": now,
                        "status": Status.CHECKING.value,
                        "revision": previous.revision + 1,
                        "epoch": max(previous.epoch, epoch_floor) + 1,
                        "parked": None,
                        "adopted_by": None,
                        **self._carried_on(previous, about),
                    },
                    "$push": {
                        "history": _history(
                            previous.status,
                            Status.CHECKING,
                            now,
                            f"run {run_id}",
                            f"wakes rollout {rollout_id}"
                            if previous.run_id == run_id
                            else f"resumes rollout {rollout_id} after run {previous.run_id}",
                        )
                    },
                },
            ),
        )
        if taken.modified_count != 1:
            raise _taken_meanwhile(plan)
        return Claim("resumed", previous, max(previous.epoch, epoch_floor) + 1)

    @staticmethod
    def _carried_on(previous: RunRecord, about: dict[str, Any]) -> dict[str, Any]:
        """What a resumed record takes from the run now driving it: its deployment; and, when a person
        carries a held or stopped rollout on, the plan they ran (its digest then counts from it)."""
        taken = {k: v for k, v in about.items() if k == "deployment_id"}
        if previous.status in (Status.HELD, Status.STOPPED):
            taken |= {k: v for k, v in about.items() if k in ("plan_path", "plan_digest")}
        return taken

    @staticmethod
    def _refuse_busy(plan: str, previous: RunRecord, rollout_id: str, now: datetime) -> None:
        """Raise :class:`RolloutBusy` unless a run of ``rollout_id`` may carry ``previous`` on."""
        if previous.status is Status.ROLLING_BACK:
            raise RolloutBusy(
                f"plan {plan} is being rolled back by run {previous.rollback_run_id}: "
                "start the next rollout once it has finished"
            )
        if previous.status is Status.ROLLBACK_INCOMPLETE:
            raise RolloutBusy(
                f"the rollback of rollout {previous.rollout_id} of plan {plan} did not finish: "
                "run `rollout rollback` again to finish it before starting another rollout"
            )
        lease_until = previous.lease_until
        if previous.status in DRIVEN and lease_until is not None and lease_until > now:
            raise RolloutBusy(
                f"plan {plan} is being rolled out by run {previous.run_id} (rollout "
                f"{previous.rollout_id}), which holds it until {lease_until:%Y-%m-%d %H:%M:%S} UTC "
                "unless it renews: wait for it to finish, or roll it back with `rollout rollback`"
            )
        if previous.rollout_id != rollout_id:
            where = previous.last_committed() or "its first step"
            how = "stopped" if previous.status in DRIVEN else f"is {previous.status}"
            raise RolloutBusy(
                f"rollout {previous.rollout_id} of plan {plan} {how} after {where} without finishing: "
                f"resume it (run the plan again with rollout id {previous.rollout_id}) or roll it back "
                "(`rollout rollback`) before starting rollout " + rollout_id
            )

    def _begin(
        self,
        plan: str,
        run_id: str,
        rollout_id: str,
        lease_until: datetime,
        now: datetime,
        version: str | None,
        stable_before: str | None,
        previous: RunRecord | None,
        epoch: int,
        about: dict[str, Any],
    ) -> Claim:
        doc: Document = {
            **about,
            "run_id": run_id,
            "rollout_id": rollout_id,
            "version": version,
            "stable_before": stable_before,
            "status": Status.CHECKING.value,
            "revision": 1,
            "epoch": epoch,
            "history": [
                _history(
                    previous.status if previous else None,
                    Status.CHECKING,
                    now,
                    f"run {run_id}",
                    f"rollout {rollout_id} begins",
                )
            ],
            "lease_until": lease_until,
            "undo": [],
            "steps": [],
            "pilots": {},
            "restores": [],
            "started_at": now,
            "backup": None,
            "router_before": None,
            "deployment_image": None,
            "window": None,
            "asked": {},
            "decisions": {},
            "companions": [],
            "parked": None,
            "earlier": [_finished_doc(f) for f in (previous.ended() if previous else ())[:EARLIER_KEPT]],
        }
        if previous is None:
            try:
                call(f"begin run of {plan}", lambda: self._runs.insert_one({"_id": plan, **doc}))
            except DuplicateKey:
                raise _taken_meanwhile(plan) from None
        else:
            replaced = call(
                f"begin run of {plan}", lambda: self._runs.replace_one(_same_revision(previous), doc)
            )
            if replaced.modified_count != 1:
                raise _taken_meanwhile(plan)
        return Claim("fresh", previous, doc["epoch"])

    def move(
        self,
        plan: str,
        to: Status,
        *,
        by: str,
        why: str,
        run_id: str | None = None,
        lease: timedelta | None = None,
        also: dict[str, Any] | None = None,
        now: datetime | None = None,
        revision: int | None = None,
        epoch_floor: int | None = None,
    ) -> RunRecord:
        """Move the rollout to ``to`` as one compare-and-set, kept in its history; returns the record.

        Given ``run_id`` (the run driving the rollout), the move is made only while that
        run holds the rollout, and :class:`LeaseLost` is raised otherwise; ``lease``
        renews its hold at the same time. ``also`` sets more fields in the same write.
        Given ``revision``, the move is made only on the record as it was at that revision.
        Given ``epoch_floor``, the fencing token is raised above both it and the record's: writes
        with an older one are refused from then on.
        A move the lifecycle does not allow raises :class:`MoveRefused`.
        """
        for _ in range(5):
            at = now or datetime.now(UTC)
            extra = dict(also or {})
            moved = self._try_move(plan, to, by, why, run_id, lease, extra, at, revision, epoch_floor)
            if moved is not None:
                return moved
        raise MoveRefused(f"plan {plan} kept changing while it was being moved to {to}: try again")

    def _try_move(
        self,
        plan: str,
        to: Status,
        by: str,
        why: str,
        run_id: str | None,
        lease: timedelta | None,
        also: dict[str, Any],
        at: datetime,
        revision: int | None,
        epoch_floor: int | None = None,
    ) -> RunRecord | None:
        """One compare-and-set attempt; None when the record moved between the read and the write."""
        record = self.get(plan)
        if revision is not None and (record is None or record.revision != revision):
            raise MoveRefused(f"plan {plan} changed since it was read: judge it again")
        if run_id is not None and record is not None and record.run_id == run_id and record.status is to:
            # Already there (a retried call whose first answer was lost): only the lease moves on.
            if lease is not None and to in DRIVEN:
                self.renew(plan, run_id, lease, at)
            return record
        # The run drives the rollout while the record names it and a run's status holds: a rollback
        # taking over (rolling-back) or another run claiming it ends that.
        drives = record is not None and record.run_id == run_id and record.status in DRIVEN
        if run_id is not None and not drives:
            raise self._lost(plan, run_id, record)
        if record is None:
            raise MoveRefused(f"plan {plan} has no rollout on record to move to {to}")
        check_move(record.status, to)
        fields: dict[str, Any] = {"status": to.value, "revision": record.revision + 1, **also}
        if epoch_floor is not None:
            fields["epoch"] = max(record.epoch, epoch_floor) + 1
        if lease is not None:
            fields["lease_until"] = at + lease
        if to in (Status.PROMOTED, Status.ROLLED_BACK, Status.ROLLBACK_INCOMPLETE, Status.BLOCKED):
            fields["finished_at"] = at
        update = {"$set": fields, "$push": {"history": _history(record.status, to, at, by, why)}}
        where = {**_same_revision(record), **({"run_id": run_id} if run_id else {})}
        moved = call(f"move {plan} to {to}", lambda: self._runs.update_one(where, update))
        return self.get(plan) if moved.modified_count == 1 else None

    def _lost(self, plan: str, run_id: str, current: RunRecord | None) -> LeaseLost:
        by = f"{current.status} by run {current.run_id}" if current else "removed"
        if current is not None and current.status is Status.ROLLING_BACK:
            by = f"{current.status} by run {current.rollback_run_id}"
        return LeaseLost(f"run {run_id} no longer holds plan {plan} (now {by}): stopping, changing nothing")

    def renew(self, plan: str, run_id: str, lease: timedelta, now: datetime | None = None) -> None:
        """Extend ``run_id``'s hold on ``plan`` by ``lease``, or raise :class:`LeaseLost` if it lost it.

        A rollout this run has just parked still counts as its own: the beat goes on until the process
        ends, so if the suspension fails and the park is taken back, the lease is still alive.
        """
        until = (now or datetime.now(UTC)) + lease
        renewed = call(
            f"renew lease on {plan}",
            lambda: self._runs.update_one(
                {"_id": plan, "run_id": run_id, "status": {"$in": _stored(DRIVEN | {Status.PARKED})}},
                {"$set": {"lease_until": until}},
            ),
        )
        if renewed.matched_count != 1:
            raise self._lost(plan, run_id, self.get(plan))

    def take_over(
        self,
        plan: str,
        run_id: str,
        why: str = "rollback",
        revision: int | None = None,
        epoch_floor: int = 0,
        lease: timedelta | None = None,
    ) -> RunRecord:
        """Mark the plan ``rolling-back`` by ``run_id`` under a new epoch: a rollout still running stops at
        its next step, and any flag write it already started is refused.

        Given ``revision``, only if the record is still as it was read then.
        """
        return self.move(
            plan,
            Status.ROLLING_BACK,
            by=f"rollback run {run_id}",
            why=why,
            also={"rollback_run_id": run_id, "adopted_by": None},
            revision=revision,
            epoch_floor=epoch_floor,
            lease=lease,
        )

    def renew_rollback(self, plan: str, run_id: str, lease: timedelta) -> bool:
        """Extend rollback run ``run_id``'s hold on ``plan``; False once another took it or it ended."""
        renewed = call(
            f"renew rollback lease on {plan}",
            lambda: self._runs.update_one(
                {"_id": plan, "rollback_run_id": run_id, "status": Status.ROLLING_BACK.value},
                {"$set": {"lease_until": datetime.now(UTC) + lease}},
            ),
        )
        return renewed.matched_count == 1

    def keep_backup(self, plan: str, uri: str, at: datetime | None = None) -> None:
        """Name the run's pre-rollout backup (the first one wins: a resumed run keeps the original)."""
        self._first(plan, "backup", uri)
        self._first(plan, "backup_at", at or datetime.now(UTC))

    def record_restore(self, plan: str, restore: RestoreRecord) -> None:
        """Keep a restore the rollback made, so the same backup is not restored twice unasked."""
        entry = asdict(restore)
        call(
            f"record restore of {plan}",
            lambda: self._runs.update_one({"_id": plan}, {"$push": {"restores": entry}}),
        )

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

    def wrote(self, plan: str, state: FlagState) -> None:
        """Keep ``state`` as the audience the rollout last wrote to its flag (or adopted from a person)."""
        record = self.get(plan)
        kept = [w for w in (record.written if record else ()) if w.flag != state.name]
        entries = [asdict(w) for w in (*kept, Written.of(state))]
        call(
            f"record flag written by {plan}",
            lambda: self._runs.update_one({"_id": plan}, {"$set": {"written": entries}}),
        )

    def wrote_router(self, plan: str, percent: int | None) -> None:
        """Keep the canary's share the rollout last set on the router (or adopted from a person)."""
        call(
            f"record router weight written by {plan}",
            lambda: self._runs.update_one({"_id": plan}, {"$set": {"router_written": percent}}),
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
        """Append a completed step (the rollout made progress: its adoptions count from zero again)."""
        call(
            f"record step of {plan}",
            lambda: self._runs.update_one(
                {"_id": plan}, {"$push": {"steps": step}, "$set": {"adoptions": 0}}
            ),
        )

    def save_progress(self, plan: str, run_id: str, progress: Progress, lease: timedelta) -> None:
        """Keep the rollout's progress (window, questions, decisions, companions) as ``run_id`` made it.

        Only while ``run_id`` drives the rollout (:class:`LeaseLost` otherwise); renews its lease.
        """
        fields = {**progress_fields(progress), "lease_until": datetime.now(UTC) + lease}
        saved = call(
            f"record progress of {plan}",
            lambda: self._runs.update_one(
                {"_id": plan, "run_id": run_id, "status": {"$in": _stored(DRIVEN)}}, {"$set": fields}
            ),
        )
        if saved.matched_count != 1:
            raise self._lost(plan, run_id, self.get(plan))

    def park(self, plan: str, run_id: str, parked: Parked, progress: Progress) -> RunRecord:
        """Park ``run_id``'s rollout: nothing due before ``parked.until``; its run gives its process back."""
        return self.move(
            plan,
            Status.PARKED,
            by=f"run {run_id}",
            why=f"parked until {_when(parked.until)}: {parked.next}",
            run_id=run_id,
            also={**progress_fields(progress), "parked": _parked_doc(parked)},
        )

    def take_back_park(self, plan: str, run_id: str, parked: Parked, lease: timedelta) -> None:
        """``run_id``'s park undone (its suspension failed): back where it parked from, leased to it.

        Only while the rollout is still parked by ``run_id`` (:class:`LeaseLost` otherwise: the
        reconciler adopted it meanwhile, and the new run carries it on). Safe to retry.
        """
        check_move(Status.PARKED, parked.status)
        now = datetime.now(UTC)
        why = f"its suspension failed: carried on attached ({parked.next})"
        taken = call(
            f"take back the park of {plan}",
            lambda: self._runs.update_one(
                {"_id": plan, "run_id": run_id, "status": Status.PARKED.value},
                {
                    "$set": {"status": parked.status.value, "parked": None, "lease_until": now + lease},
                    "$inc": {"revision": 1},
                    "$push": {"history": _history(Status.PARKED, parked.status, now, f"run {run_id}", why)},
                },
            ),
        )
        if taken.matched_count == 1:
            return
        current = self.get(plan)
        if current is None or current.run_id != run_id or current.status not in DRIVEN:
            raise self._lost(plan, run_id, current)  # a retry whose first write landed finds it driven

    @staticmethod
    def _unheld(record: RunRecord) -> dict[str, Any]:
        """A filter matching the record while no live run holds it as it was read: parked, or driven by
        a run whose lease has run out (a process that lives on renews it, and then it is its own)."""
        unheld: dict[str, Any] = {"_id": record.plan, "status": record.status.value, "epoch": record.epoch}
        if record.status in DRIVEN:
            unheld["lease_until"] = {"$lt": datetime.now(UTC)}
        return unheld

    def save_unheld_window(self, record: RunRecord, window: WindowState) -> bool:
        """Keep rounds the reconciler measured for a rollout no run holds; False if it moved or was taken."""
        saved = call(
            f"record unheld window of {record.plan}",
            lambda: self._runs.update_one(self._unheld(record), {"$set": {"window": _window_doc(window)}}),
        )
        return saved.modified_count == 1

    def fence_unheld(self, record: RunRecord, why: str) -> int | None:
        """Raise the epoch of a rollout no run holds (flag writes with the old one are refused); None if
        it moved or was taken since it was read."""
        raised = call(
            f"fence unheld {record.plan}",
            lambda: self._runs.update_one(
                self._unheld(record), {"$set": {"epoch": record.epoch + 1, "fenced_because": why}}
            ),
        )
        return record.epoch + 1 if raised.modified_count == 1 else None

    def unpark(self, record: RunRecord, by: str, why: str) -> RunRecord:
        """A parked rollout whose run is gone: back where it parked from, unleased, for a new run to take."""
        assert record.parked is not None
        return self.move(
            record.plan,
            record.parked.status,
            by=by,
            why=why,
            revision=record.revision,
            also={"parked": None, "lease_until": datetime.now(UTC) - timedelta(seconds=1)},
        )

    def mark_adopted(self, record: RunRecord, run_id: str, why: str) -> bool:
        """Note that ``run_id`` was started to carry the rollout on; False if it moved since it was read."""
        marked = call(
            f"record adoption of {record.plan}",
            lambda: self._runs.update_one(
                _same_revision(record),
                {
                    "$set": {"adopted_by": run_id, "revision": record.revision + 1},
                    "$inc": {"adoptions": 1},
                    "$push": {
                        "history": _history(
                            record.status,
                            record.status,
                            datetime.now(UTC),
                            "reconciler",
                            f"adopted by run {run_id}: {why}",
                        )
                    },
                },
            ),
        )
        return marked.modified_count == 1

    def documents(self) -> list[Document]:
        """Every run record as stored, for readers that take what they need (the metrics exporter)."""
        return call("read rollout runs", lambda: list(self._runs.find({})))

    def all(self) -> list[RunRecord]:
        """Every plan's rollout on record in this database."""
        plans = call("list rollouts", lambda: [doc["_id"] for doc in self._runs.find({}, {"_id": 1})])
        return [record for plan in plans if (record := self.get(plan)) is not None]

    def get(self, plan: str) -> RunRecord | None:
        """The plan's last run, if any."""
        doc = call(f"read run of {plan}", lambda: self._runs.find_one({"_id": plan}))
        if doc is None:
            return None
        undo = tuple(
            FlagState(
                **{
                    **u,
                    "users": tuple(u["users"]),
                    "stores": tuple(u["stores"]),
                    "foreign": tuple(u.get("foreign") or ()),
                }
            )
            for u in doc.get("undo", [])
        )
        history = tuple(
            Move(
                parse_status(m["from"]) if m.get("from") else None,
                parse_status(m["to"]),
                _aware(m["at"]) or m["at"],
                m.get("by", ""),
                m.get("why", ""),
            )
            for m in doc.get("history", [])
        )
        restores = tuple(
            RestoreRecord(r["backup"], _aware(r["at"]) or r["at"], r.get("by", ""), bool(r.get("ok")))
            for r in doc.get("restores", [])
        )
        return RunRecord(
            plan,
            doc["run_id"],
            parse_status(doc["status"]),
            undo,
            tuple(doc.get("steps", [])),
            doc.get("backup"),
            doc.get("router_before"),
            doc.get("deployment_image"),
            _aware(doc.get("started_at")),
            doc.get("rollout_id"),
            _aware(doc.get("lease_until")),
            dict(doc.get("pilots") or {}),
            doc.get("version"),
            doc.get("stable_before"),
            history,
            int(doc.get("revision") or 0),
            restores,
            _aware(doc.get("backup_at")),
            doc.get("rollback_run_id"),
            int(doc.get("epoch") or 0),
            _window_of(doc.get("window")),
            {about: _aware(at) or at for about, at in (doc.get("asked") or {}).items()},
            {about: _decision_of(d) for about, d in (doc.get("decisions") or {}).items()},
            frozenset(doc.get("companions") or ()),
            _parked_of(doc.get("parked")),
            doc.get("plan_digest"),
            doc.get("plan_path"),
            doc.get("deployment_id"),
            doc.get("adopted_by"),
            int(doc.get("adoptions") or 0),
            _aware(doc.get("finished_at")),
            tuple(_finished_of(f) for f in doc.get("earlier") or ()),
            tuple(_written_of(w) for w in doc.get("written") or ()),
            doc.get("router_written"),
        )


class ReleaseStore:
    """Each plan's stable release (the seeds' ``.last-stable-version``) and its history.

    The history is kept, not only the last one: a rollback of a promoted release goes
    back to the release that was stable before it, not to the promoted one.
    """

    def __init__(self, collection: Collection[Document]) -> None:
        self._releases = collection

    def _doc(self, plan: str) -> Document | None:
        return call(f"read stable release of {plan}", lambda: self._releases.find_one({"_id": plan}))

    def stable(self, plan: str) -> str | None:
        """The plan's stable release: the last one promoted (or put back by a rollback), if any."""
        doc = self._doc(plan)
        return None if doc is None or doc.get("stable") is None else str(doc["stable"])

    def stable_before(self, plan: str, version: str, declared: str | None = None) -> str | None:
        """The release a rollout of ``version`` goes back to: the latest stable one other than it.

        Without one on record, ``declared`` (the plan's ``release.stable_version``), unless
        that is ``version`` itself: a rollback never "restores" the release it takes back.
        """
        doc = self._doc(plan) or {}
        if doc.get("stable") not in (None, version):
            return str(doc["stable"])
        earlier = [h["version"] for h in doc.get("history", []) if h.get("version") not in (None, version)]
        if earlier:
            return str(earlier[-1])
        return declared if declared != version else None

    def history(self, plan: str) -> list[dict[str, Any]]:
        """Every change of the plan's stable release, oldest first (version, event, at, by)."""
        return list((self._doc(plan) or {}).get("history", []))

    def mark_stable(self, plan: str, version: str, by: str = "") -> None:
        """Record ``version`` as the plan's stable release, keeping the one it replaces."""
        self._set(plan, version, {"event": "promoted", "by": by})

    def put_back(self, plan: str, version: str | None, rolled_back: str, by: str = "") -> None:
        """After ``rolled_back`` was taken back from a promoted state: ``version`` is stable again."""
        self._set(plan, version, {"event": f"reinstated after the rollback of {rolled_back}", "by": by})

    def _set(self, plan: str, version: str | None, entry: dict[str, Any]) -> None:
        now = datetime.now(UTC)
        previous = self.stable(plan)
        update = {
            "$set": {"stable": version, "previous": previous, "updated_at": now},
            "$push": {"history": {"version": version, "at": now, **entry}},
        }
        call(
            f"record stable release of {plan}",
            lambda: self._releases.update_one({"_id": plan}, update, upsert=True),
        )
