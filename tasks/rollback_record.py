"""The rollback's reads and writes of the rollout's record, each a task so a transient failure is retried.

Each one is safe to retry: reads are reads, and every write recognises its own earlier success
(a take-over or an end already recorded by this run is not made again).
"""

from __future__ import annotations

from datetime import UTC, datetime

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from rollout.adapters.clients import Clients
from rollout.audience.flag_state import FlagState
from rollout.lifecycle.record import RestoreRecord, RunRecord
from rollout.lifecycle.rollback_guard import GuardVerdict, RollbackAsk, as_judged, judge
from rollout.lifecycle.statuses import MoveRefused, Status
from rollout.plan import Plan
from rollout.plan.model import Targets
from tasks.retries import TRANSIENT_RETRIES
from tasks.secrets import prefect_resolver


@task(name="take-over-rollout", cache_policy=NO_CACHE, **TRANSIENT_RETRIES)
def take_over(
    targets: Targets, plan: Plan, run_id: str, ask: RollbackAsk, reason: str
) -> tuple[GuardVerdict, RunRecord | None]:
    """Judge the rollout on record and, when it is to be rolled back, take it over in one compare-and-set.

    Judged again if the record moved between the read and the take-over (another
    rollback, or the rollout's own next step), so the verdict is about what is taken.
    """
    with Clients(targets, prefect_resolver) as clients:
        for _ in range(5):
            record = clients.runs.get(plan.name)
            before = as_judged(record, run_id) if record is not None else None
            if before is not None:  # this run took it over already: the answer was lost, not the write
                return judge(before, plan.name, ask, plan.rollback.restore.mode), record
            verdict = judge(record, plan.name, ask, plan.rollback.restore.mode)
            if verdict.action != "roll-back" or record is None:
                return verdict, record
            try:
                floor = clients.flags.highest_fence(plan.name)
                taken = clients.runs.take_over(
                    plan.name,
                    run_id,
                    why=reason,
                    revision=record.revision,
                    epoch_floor=floor,
                    lease=plan.lease,
                )
            except MoveRefused:
                continue
            return verdict, taken
    raise MoveRefused(f"the rollout of {plan.name} kept changing while the rollback tried to take it over")


@task(name="stable-release", cache_policy=NO_CACHE, **TRANSIENT_RETRIES)
def stable_release(targets: Targets, plan: Plan, record: RunRecord) -> str | None:
    """The release stable before this rollout: what the Deployment goes back to (None if unknown)."""
    release = record.version or plan.release.version
    if record.stable_before not in (None, release):
        return record.stable_before
    with Clients(targets, prefect_resolver) as clients:
        return clients.releases.stable_before(plan.name, release, plan.release.stable_version)


@task(name="main-flag-undo", cache_policy=NO_CACHE, **TRANSIENT_RETRIES)
def main_flag_undo(targets: Targets, plan: Plan) -> FlagState | None:
    """The main flag's undo entry as the record holds it now: a step that landed late is in it too."""
    with Clients(targets, prefect_resolver) as clients:
        record = clients.runs.get(plan.name)
    return next((s for s in record.undo if s.name == plan.flag), None) if record else None


@task(name="record-restore", cache_policy=NO_CACHE, **TRANSIENT_RETRIES)
def record_restore(targets: Targets, plan: Plan, backup: str, run_id: str, ok: bool) -> None:
    """Keep the restore made from ``backup`` with the rollout (a retry may keep it twice, harmlessly)."""
    with Clients(targets, prefect_resolver) as clients:
        clients.runs.record_restore(
            plan.name, RestoreRecord(backup, datetime.now(UTC), f"rollback run {run_id}", ok)
        )


@task(name="finish-rollback", cache_policy=NO_CACHE, **TRANSIENT_RETRIES)
def finish_rollback(
    targets: Targets,
    plan: Plan,
    record: RunRecord,
    run_id: str,
    stable: str | None,
    reason: str,
    ok: bool,
) -> None:
    """Record how the rollback ended; a promoted release taken back gives the stable release back.

    Only while this rollback is still the one on record: a later rollback that took the rollout
    over (this one's process paused, or slow) ends it, not this one.
    """
    to = Status.ROLLED_BACK if ok else Status.ROLLBACK_INCOMPLETE
    by = f"rollback run {run_id}"
    with Clients(targets, prefect_resolver) as clients:
        now = clients.runs.get(plan.name)
        ended = now is not None and now.status is to and now.rollback_run_id == run_id
        if not ended:
            if now is None or now.rollback_run_id != run_id or now.status is not Status.ROLLING_BACK:
                holder = f"rollback run {now.rollback_run_id}" if now else "nobody"
                get_run_logger().warning("not recording the end: the rollout is now held by %s", holder)
                return
            clients.runs.move(plan.name, to, by=by, why=reason, revision=now.revision)
        taken_from = record.history[-1].source if record.history else None
        if ok and taken_from is Status.PROMOTED:
            release = record.version or plan.release.version
            clients.releases.put_back(plan.name, stable, release, by=by)
