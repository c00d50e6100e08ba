"""A rollout as persisted: its record, the restores a rollback made, and a run's claim on it.

The record is the rollout: every run reads it, asks :mod:`rollout.lifecycle.progression`
what to do, and writes it back through :class:`rollout.adapters.run_state.RunStateStore`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from rollout.audience.drift import Written
from rollout.audience.flag_state import FlagState
from rollout.lifecycle.admission import Finished
from rollout.lifecycle.progression import PASSED, Decision, Parked, Progress, WindowState
from rollout.lifecycle.statuses import REPLACEABLE, Move, Status


@dataclass(frozen=True)
class RestoreRecord:
    """A data restore a rollback made for this rollout."""

    backup: str
    at: datetime
    by: str
    ok: bool


@dataclass(frozen=True)
class RunRecord:
    """A rollout as persisted."""

    plan: str
    run_id: str
    status: Status
    undo: tuple[FlagState, ...]
    steps: tuple[dict[str, Any], ...]
    backup: str | None = None
    router_before: dict[str, Any] | None = None
    deployment_image: str | None = None
    started_at: datetime | None = None
    rollout_id: str | None = None
    lease_until: datetime | None = None
    pilots: dict[str, list[str]] = field(default_factory=dict)
    version: str | None = None
    stable_before: str | None = None
    history: tuple[Move, ...] = ()
    revision: int = 0
    restores: tuple[RestoreRecord, ...] = ()
    backup_at: datetime | None = None
    rollback_run_id: str | None = None
    epoch: int = 0
    """Raised by every claim and take-over: the fencing token of the hold on the plan."""
    window: WindowState | None = None
    asked: dict[str, datetime] = field(default_factory=dict)
    decisions: dict[str, Decision] = field(default_factory=dict)
    companions: frozenset[str] = frozenset()
    parked: Parked | None = None
    plan_digest: str | None = None
    plan_path: str | None = None
    deployment_id: str | None = None
    """The Prefect deployment the driving run came from (None: started from the CLI)."""
    adopted_by: str | None = None
    """The run the reconciler started to carry the rollout on after its run was gone."""
    adoptions: int = 0
    """Runs the reconciler started for it since it last recorded a step."""
    finished_at: datetime | None = None
    earlier: tuple[Finished, ...] = ()
    """The plan's rollouts that ended before this one began, newest first."""
    written: tuple[Written, ...] = ()
    """Each flag's audience as the rollout last wrote it: a difference is someone else's change."""
    router_written: int | None = None
    """The canary's share the rollout last set on the router (None: it has not set one)."""

    def written_to(self, flag: str) -> Written | None:
        """The audience the rollout last wrote to ``flag`` (None: it has not written it)."""
        return next((w for w in self.written if w.flag == flag), None)

    def ended(self) -> tuple[Finished, ...]:
        """Every finished rollout of the plan on record: this one if it has ended, then the earlier."""
        if self.status not in REPLACEABLE:
            return self.earlier
        this = Finished(
            run_id=self.run_id,
            rollout_id=self.rollout_id,
            version=self.version,
            status=self.status,
            at=self.finished_at,
        )
        return (this, *self.earlier)

    def progress(self, *, restarted: bool, observe_again: bool = False) -> Progress:
        """The rollout as the progression core reads it.

        ``restarted`` when its last run stopped without finishing; ``observe_again`` (a held or stopped
        rollout carried on by a person) drops the window of a step judged bad before, which is watched
        afresh, and the questions nobody answered in time, which are asked again. A window still
        under way when the rollout was held (no verdict yet) keeps its rounds.
        """
        window = self.window
        outcomes = {s["key"]: str(s.get("outcome")) for s in self.steps if "key" in s}
        asked, decisions = dict(self.asked), dict(self.decisions)
        if observe_again:
            judged = window is not None and window.key in outcomes
            if window is not None and judged and window.key not in self.committed:
                outcomes.pop(window.key, None)
                window = None
            for about in [about for about, d in decisions.items() if d.approved is None]:
                del decisions[about]  # nobody answered in time: carried on, the question is asked again
                asked.pop(about, None)
        return Progress(
            outcomes=outcomes,
            pilots={phase: tuple(stores) for phase, stores in self.pilots.items()},
            companions=self.companions,
            window=window,
            asked=asked,
            decisions=decisions,
            backed_up=self.backup is not None,
            restarted=restarted,
            moved=bool(self.undo or self.committed),
            began_at=self.started_at,
        )

    @property
    def committed(self) -> frozenset[str]:
        """Keys of the steps done and passed (``phase/index``)."""
        return frozenset(s["key"] for s in self.steps if s.get("outcome") in PASSED and "key" in s)

    def last_committed(self) -> str | None:
        """The key of the last step done and passed, if any."""
        keys = [s["key"] for s in self.steps if s.get("outcome") in PASSED and "key" in s]
        return keys[-1] if keys else None

    def last_committed_step(self) -> dict[str, Any] | None:
        """The last step done and passed, as persisted, if any."""
        done = [s for s in self.steps if s.get("outcome") in PASSED]
        return done[-1] if done else None

    def last_move(self, to: Status) -> Move | None:
        """The latest move into ``to``, if the history has one."""
        return next((m for m in reversed(self.history) if m.target is to), None)

    def restored(self, backup: str) -> RestoreRecord | None:
        """The successful restore of ``backup`` already made for this rollout, if any."""
        return next((r for r in self.restores if r.backup == backup and r.ok), None)


@dataclass(frozen=True)
class Claim:
    """The plan, taken by a run: a fresh rollout, or the resumption of one that stopped half-way."""

    kind: Literal["fresh", "resumed"]
    previous: RunRecord | None = None
    epoch: int = 0
    """The fencing token this run writes with."""

    @property
    def resumed(self) -> bool:
        """Whether the run carries on a rollout that stopped half-way."""
        return self.kind == "resumed"
