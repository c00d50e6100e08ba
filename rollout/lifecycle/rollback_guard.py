"""Whether a rollback may act on a rollout, and how much it restores: the safety net's own safety.

Pure: given the rollout as persisted and what was asked, a verdict. A rollback
never acts on a rollout that is already rolled back, that changed nothing, or
that was started on behalf of a run which no longer holds it; it refuses a
promoted rollout unless forced, and even then restores data only when asked.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from rollout.lifecycle.record import RunRecord
from rollout.lifecycle.statuses import RESUMABLE, Status

Action = Literal["roll-back", "nothing-to-do", "refused"]


@dataclass(frozen=True)
class RollbackAsk:
    """What was asked: forced or not, on behalf of which run, and a restore named explicitly."""

    force: bool = False
    on_behalf_of: str | None = None
    restore: str | None = None


@dataclass(frozen=True)
class GuardVerdict:
    """What the rollback does: roll back (restoring ``restore``), nothing, or refuse; and why."""

    action: Action
    message: str
    restore: str = "none"


def _when(record: RunRecord, status: Status) -> str:
    move = record.last_move(status)
    return f"at {move.at:%Y-%m-%d %H:%M:%S} UTC by {move.by}" if move else "(time not recorded)"


def _rolled_back(record: RunRecord) -> str:
    restore = record.restores[-1] if record.restores else None
    data = f"from backup {restore.backup}" if restore and restore.ok else "with no data restored"
    when = _when(record, Status.ROLLED_BACK)
    return f"rollout {record.rollout_id} of {record.plan} was rolled back {when}, {data}"


def judge(record: RunRecord | None, plan: str, ask: RollbackAsk, plan_restore: str) -> GuardVerdict:
    """Decide what a rollback of ``plan`` does, from the rollout on record and what was asked."""
    if record is None:
        return GuardVerdict(
            "refused", f"plan {plan} has no rollout on record: nothing to roll back (check the plan's name)"
        )
    if ask.on_behalf_of is not None:
        if record.run_id != ask.on_behalf_of:
            return GuardVerdict(
                "nothing-to-do",
                f"asked on behalf of run {ask.on_behalf_of}, which no longer holds plan {plan}: the rollout "
                f"on record is {record.rollout_id} of run {record.run_id} ({record.status}); nothing changed",
            )
        if record.status not in RESUMABLE:
            return GuardVerdict(
                "nothing-to-do",
                f"asked on behalf of run {ask.on_behalf_of}, whose rollout {record.rollout_id} is "
                f"{record.status} already; nothing changed",
            )
    if record.status is Status.BLOCKED:
        return GuardVerdict(
            "nothing-to-do",
            f"rollout {record.rollout_id} of {plan} was blocked by its data checks "
            f"{_when(record, Status.BLOCKED)} before anything changed: nothing to undo",
        )
    if record.status is Status.ROLLED_BACK and not ask.force:
        return GuardVerdict(
            "nothing-to-do", _rolled_back(record) + "; nothing changed (force to run the rollback again)"
        )
    if record.status is Status.PROMOTED and not ask.force:
        return GuardVerdict(
            "refused",
            f"rollout {record.rollout_id} of {plan} (release {record.version or 'unknown'}) was promoted "
            f"{_when(record, Status.PROMOTED)}: rolling it back takes it from every user. Pass --force "
            "(force: true in the API) with a reason to do it anyway; data is restored only if you also "
            "name a restore (--restore selective|full)",
        )
    if record.status in (Status.PROMOTED, Status.ROLLED_BACK):
        return GuardVerdict(
            "roll-back",
            f"forced rollback of {record.status} rollout {record.rollout_id} of {plan} "
            f"(release {record.version or 'unknown'})",
            ask.restore or "none",
        )
    return GuardVerdict(
        "roll-back",
        f"rollback of {record.status} rollout {record.rollout_id} of {plan} "
        f"(release {record.version or 'unknown'})",
        ask.restore or plan_restore,
    )


def as_judged(record: RunRecord, run_id: str) -> RunRecord | None:
    """The record as rollback run ``run_id`` judged it, if that run has taken it over already.

    A take-over whose answer was lost (the connection cut after the write) is retried; the retry
    finds the rollout rolling back by this very run, and judges it as it was before the move.
    """
    last = record.history[-1] if record.history else None
    if (
        record.status is not Status.ROLLING_BACK
        or record.rollback_run_id != run_id
        or last is None
        or last.target is not Status.ROLLING_BACK
        or last.source is None
        or last.by != f"rollback run {run_id}"
    ):
        return None
    return replace(record, status=last.source)
