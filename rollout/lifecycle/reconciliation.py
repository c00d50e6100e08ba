"""What the reconciler does for one rollout, from its record, its run's state in Prefect and the time. Pure.

The reconciler keeps rollouts going when no process holds them: it measures parked
windows (whatever Prefect says about their runs: a run shown Running or Pending may be
gone), wakes a parked run when there is something to change, adopts a rollout
whose run is gone (a new run carries it on from its record, never a rollback for a
dead process), finishes a rollback whose run died (a run of the emergency-rollback
deployment, whose steps are idempotent and which restores data at most once), and holds
a rollout whose run was cancelled. A park or a wake that did not take effect (the run is
neither suspended nor has it taken the rollout within :data:`WAKE_GRACE`) is adopted too,
never rolled back. Anything else it cannot act on is listed, with what a
person can do.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from rollout.lifecycle.record import RunRecord
from rollout.lifecycle.statuses import DRIVEN, Status

Kind = Literal["measure", "wake", "adopt", "finish-rollback", "hold", "report", "none"]

FINAL = frozenset({"COMPLETED", "FAILED", "CRASHED", "CANCELLED"})
"""Prefect state types after which a run never changes anything again."""
CANCELLED = frozenset({"CANCELLED", "CANCELLING"})


@dataclass(frozen=True)
class Chore:
    """One thing to do for a rollout, and why.

    ``measure``: take the parked window's due rounds first (and turn traffic off if they fail),
    whatever ``kind`` then does with its run. A parked rollout is measured whatever Prefect says
    about its run: the run's state decides only who carries the rollout on, never whether it is
    watched.
    """

    kind: Kind
    why: str = ""
    measure: bool = False


WAKE_GRACE = timedelta(minutes=2)
"""How long a parked rollout's run may be neither suspended nor claiming it (being woken, or a park
whose suspension did not take effect) before it counts as gone and is adopted."""

WAITING = frozenset({"SCHEDULED", "PENDING", "RUNNING"})
"""Prefect state types of a run on its way to (or in) a process."""


def chore_for(
    record: RunRecord,
    run_state: str | None,
    now: datetime,
    *,
    run_since: datetime | None = None,
    adoption: str | None = None,
    adoption_since: datetime | None = None,
    grace: timedelta = timedelta(seconds=5),
    wake_grace: timedelta = WAKE_GRACE,
) -> Chore:
    """What to do for ``record``, whose holder (:func:`holder`) is in Prefect state ``run_state``
    (None: no such run) since ``run_since``.

    ``adoption`` is the Prefect state of the run started to adopt it, if one was (since
    ``adoption_since``): while that run may still take the rollout, nothing more is started; one
    that has not taken it within ``wake_grace`` counts as gone. ``grace`` is how far past its
    lease a driven rollout must be before its run counts as gone.
    """
    run = f"run {record.run_id}"
    adopting = _Adoption(adoption, adoption_since, now, wake_grace)
    if record.status is Status.PARKED:
        return _parked(record, run_state, now, run_since, wake_grace, adopting)
    if record.status in DRIVEN:
        if run_state in CANCELLED:
            return Chore("hold", f"{run} was cancelled in Prefect")
        lease = record.lease_until
        if lease is not None and lease + grace > now:
            return Chore("none", f"driven by {run}")
        gone = (
            f"{run} stopped renewing its lease at {lease:%Y-%m-%d %H:%M:%S} UTC"
            if lease
            else f"{run} holds no lease"
        )
        # Its window is measured until the adopting run takes it on: nobody else is watching it.
        return _adopt(record, f"{gone} ({_named(run_state)})", adopting, measure=True)
    if record.status is Status.ROLLING_BACK:
        lease = record.lease_until
        if lease is None:  # a rollback from before rollbacks held a lease: judged by its run alone
            if run_state is None or run_state in FINAL - {"COMPLETED"}:
                return Chore(
                    "report",
                    f"the rollback by run {record.rollback_run_id} is {_named(run_state)} before it "
                    f"finished: run `rollout rollback` (or the emergency-rollback deployment) for "
                    f"{record.plan} to finish it",
                )
            return Chore("none", f"rolled back by run {record.rollback_run_id}")
        if lease + grace > now:
            return Chore("none", f"rolled back by run {record.rollback_run_id}")
        if adopting.under_way:
            return Chore("none", f"finishing; the new rollback run is {adopting.state}")
        if record.adoptions >= MAX_ADOPTIONS:
            return Chore(
                "report",
                f"{record.adoptions} rollback runs started to finish the rollback of {record.plan} stopped "
                f"(the last: {record.adopted_by}): read its logs, then run `rollout rollback` by hand",
            )
        return Chore(
            "finish-rollback",
            f"the rollback by run {record.rollback_run_id} stopped renewing its lease at "
            f"{lease:%Y-%m-%d %H:%M:%S} UTC ({_named(run_state)})",
        )
    return Chore("none")


def _parked(
    record: RunRecord,
    run_state: str | None,
    now: datetime,
    run_since: datetime | None,
    wake_grace: timedelta,
    adopting: _Adoption,
) -> Chore:
    """A parked rollout: its window measured whatever its run's state; the state says who carries it on."""
    run = f"run {record.run_id}"
    parked = record.parked
    measure = parked is None or not parked.for_decision
    if run_state in CANCELLED:
        return Chore("hold", f"{run} was cancelled in Prefect while parked", measure)
    if run_state == "PAUSED":
        if parked is not None and parked.for_decision:
            if parked.until is not None and now >= parked.until:
                return Chore("wake", f"nobody decided on {parked.about} by {parked.until:%Y-%m-%d %H:%M} UTC")
            return Chore("none", f"waits for a decision on {parked.about}")
        return Chore("measure", f"window of {parked.about if parked else 'its step'}", True)
    if run_state in WAITING:
        moments = [t for t in (run_since, parked.since if parked else None) if t is not None]
        since = max(moments) if moments else None
        state = _named(run_state)
        if since is None or since + wake_grace > now:
            return Chore("none", f"{run} is being woken ({state})", measure)
        why = (
            f"{run} has been {state} since {since:%Y-%m-%d %H:%M:%S} UTC while its rollout is parked: "
            "its park or its wake did not take effect"
        )
        return _adopt(record, why, adopting, measure)
    return _adopt(record, f"{run} is {_named(run_state)} while its rollout is parked", adopting, measure)


@dataclass(frozen=True)
class _Adoption:
    """The run the reconciler started to carry a rollout on, as Prefect shows it now."""

    state_type: str | None
    since: datetime | None
    now: datetime
    grace: timedelta

    @property
    def state(self) -> str:
        return _named(self.state_type)

    @property
    def under_way(self) -> bool:
        """Started and may still take the rollout: not ended, and not stuck past the grace."""
        if self.state_type is None or self.state_type in FINAL:
            return False
        return self.since is None or self.since + self.grace > self.now


def watch_chore(record: RunRecord, now: datetime, grace: timedelta = timedelta(seconds=5)) -> Chore:
    """What a pass that cannot ask Prefect does for ``record``: measure it if no live run holds it.

    A parked window, or the window of a rollout whose run stopped renewing its lease, is measured
    (and traffic turned off if it fails); nothing else can be done until Prefect answers again.
    """
    lease = record.lease_until
    if record.status is Status.PARKED:
        parked = record.parked
        if parked is not None and parked.for_decision:
            return Chore("none", f"waits for a decision on {parked.about}")
        return Chore("none", "parked: measured while Prefect cannot be asked", True)
    if record.status in DRIVEN and (lease is None or lease + grace <= now):
        why = "its run's lease ran out and Prefect cannot be asked to adopt it: measured meanwhile"
        return Chore("report", why, True)
    return Chore("none")


def holder(record: RunRecord) -> str | None:
    """The run that holds the rollout now: the rollback's while one is under way, else the driver's."""
    return record.rollback_run_id if record.status is Status.ROLLING_BACK else record.run_id


def _named(run_state: str | None) -> str:
    return "gone from Prefect" if run_state is None else run_state.lower()


MAX_ADOPTIONS = 3
"""Runs started for a rollout that records no step in between, before a person is asked to look."""


def _adopt(record: RunRecord, why: str, adopting: _Adoption, measure: bool = False) -> Chore:
    if adopting.under_way:
        return Chore("none", f"adopted; the new run is {adopting.state}", measure)
    if record.adoptions >= MAX_ADOPTIONS:
        return Chore(
            "report",
            f"{why}; {record.adoptions} runs started to carry it on stopped without recording a step "
            f"(the last: {record.adopted_by}): read that run's logs, then run the plan again with "
            f"rollout id {record.rollout_id} or roll it back",
            measure,
        )
    if record.deployment_id is None:
        return Chore(
            "report",
            f"{why}; it was started from the CLI, so no deployment can carry it on: run it again with "
            f"`rollout run {record.plan_path or 'PLAN'} --rollout-id {record.rollout_id}`, or roll it back",
            measure,
        )
    return Chore("adopt", why, measure)


@dataclass(frozen=True)
class Acted:
    """What the pass did for one rollout."""

    plan: str
    did: str
    why: str


@dataclass(frozen=True)
class PassReport:
    """One reconciler pass: what it did, what it could not act on, how long it took.

    ``not_configured`` are the databases of plans whose secrets nobody has created yet (a fresh
    install's example plans): no rollout can have run there, so they are not for a person to look at.
    """

    rollouts: int
    rounds: int
    acted: tuple[Acted, ...]
    cannot_act: tuple[Acted, ...]
    seconds: float
    parked: int = 0
    not_configured: tuple[Acted, ...] = ()

    def summary(self) -> str:
        """``12 rollouts (10 parked), 10 rounds measured, 1 woken, 0 adopted, 0 held, ... 0.4 s``."""
        kinds = ("woken", "adopted", "held", "traffic off")
        count = {kind: sum(a.did == kind for a in self.acted) for kind in kinds}
        idle = f", {len(self.not_configured)} not configured" if self.not_configured else ""
        return (
            f"{self.rollouts} rollouts ({self.parked} parked), {self.rounds} rounds measured, "
            f"{count['woken']} woken, {count['adopted']} adopted, {count['held']} held, "
            f"{count['traffic off']} turned traffic off, {len(self.cannot_act)} to look at{idle}, "
            f"{self.seconds:.1f} s"
        )
