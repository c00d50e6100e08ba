"""The rollout's lifecycle: the one status a rollout record holds, and which moves between them exist.

Pure, no I/O. The run-state store applies a move as a compare-and-set on the
record (its status and revision as read), keeping who, why and when in the
record's history; every reader (the rollout run, the rollback, ``rollout
status``, the exporter) decides from the status alone.

::

                 claim                      a run of the same rollout
    (none) ──────────────> checking <──────────────────────────────┐
    promoted/rolled-back/     │  \\ data check fails                │
    blocked                   │   └──────────> blocked             │
                              v                                    │
                          backing-up                               │
                              │                                    │
                              v                                    │
          ┌─────────> stepping ──> observing ──> promoted          │
          │               ^  │       │   ^ │                       │
          │               │  v       v   │ v                       │
          └─── awaiting-approval <─ parked (window failed,         │
                   │          └───────┘     automatic off)         │
                   │                           └────> stopped ─────┤
                   └ nobody in time, on_timeout: hold ──> held ────┘

    parked ── woken (a decision, a window's verdict) ──> checking
    a driven or parked rollout whose run was cancelled ── reconciler ──> held
    any of the above but blocked ── rollback ──> rolling-back ──> rolled-back
                                                      └─────────> rollback-incomplete
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from rollout.errors import PermanentError


class Status(StrEnum):
    """Where a rollout stands."""

    CHECKING = "checking"
    """Claimed by a run: gate queries and data checks; nothing changed yet."""
    BACKING_UP = "backing-up"
    """Taking the pre-rollout backup; nothing changed yet."""
    STEPPING = "stepping"
    """Writing a traffic step (flags, router)."""
    OBSERVING = "observing"
    """Holding a step's window: the gates are measured."""
    AWAITING_APPROVAL = "awaiting-approval"
    """Waiting for a person: before a phase, or after an inconclusive window."""
    PARKED = "parked"
    """Waiting with no process held: a long window the reconciler measures, or a decision to come.

    The record says until when and what comes next; its run is suspended in Prefect and
    resumed (by the reconciler, or by the person answering) when there is something to change.
    """
    PROMOTED = "promoted"
    """Reached the end of its plan; its release is the stable one."""
    ROLLING_BACK = "rolling-back"
    """A rollback has taken the rollout over."""
    ROLLED_BACK = "rolled-back"
    """Every rollback step succeeded."""
    ROLLBACK_INCOMPLETE = "rollback-incomplete"
    """A rollback ran, and some step of it failed: run it again to finish."""
    HELD = "held"
    """Nobody decided in time and the plan holds: traffic stays where it is."""
    STOPPED = "stopped"
    """Judged bad (by its gates, or a lost lease) and not rolled back: traffic stays where it is."""
    BLOCKED = "blocked"
    """A data check failed before anything changed."""


DRIVEN = frozenset(
    {Status.CHECKING, Status.BACKING_UP, Status.STEPPING, Status.OBSERVING, Status.AWAITING_APPROVAL}
)
"""A run is driving the rollout and holds it by a lease."""

UNDONE = frozenset({Status.ROLLED_BACK})
"""Rolled back already: a rollback has nothing left to do."""

UNDOABLE = DRIVEN | {
    Status.PARKED,
    Status.HELD,
    Status.STOPPED,
    Status.ROLLING_BACK,
    Status.ROLLBACK_INCOMPLETE,
}
"""A rollback undoes these without being forced: the rollout moved traffic, or may have, and is not done."""

RESUMABLE = DRIVEN | {Status.PARKED, Status.HELD, Status.STOPPED}
"""A run of the same rollout carries these on (a driven one only once its lease has run out)."""

REPLACEABLE = frozenset({Status.PROMOTED, Status.ROLLED_BACK, Status.BLOCKED})
"""Finished: a new rollout of the plan may start on top."""

SOURCES: dict[Status, frozenset[Status]] = {
    Status.CHECKING: RESUMABLE | REPLACEABLE,
    Status.BACKING_UP: frozenset({Status.CHECKING}),
    Status.STEPPING: DRIVEN | {Status.PARKED},
    Status.OBSERVING: frozenset({Status.CHECKING, Status.STEPPING, Status.OBSERVING, Status.PARKED}),
    Status.AWAITING_APPROVAL: DRIVEN | {Status.PARKED},
    Status.PARKED: frozenset({Status.OBSERVING, Status.AWAITING_APPROVAL, Status.STEPPING}),
    Status.PROMOTED: frozenset({Status.STEPPING, Status.OBSERVING, Status.AWAITING_APPROVAL}),
    Status.HELD: frozenset({Status.AWAITING_APPROVAL, Status.PARKED}) | DRIVEN,
    Status.STOPPED: DRIVEN,
    Status.BLOCKED: frozenset({Status.CHECKING}),
    Status.ROLLING_BACK: UNDOABLE | {Status.PROMOTED, Status.ROLLED_BACK},
    Status.ROLLED_BACK: frozenset({Status.ROLLING_BACK}),
    Status.ROLLBACK_INCOMPLETE: frozenset({Status.ROLLING_BACK}),
}
"""For each status, the statuses a rollout may come to it from."""

LEGACY = {
    "running": Status.STEPPING,
    "rolling_back": Status.ROLLING_BACK,
    "rolled_back": Status.ROLLED_BACK,
    "rollback_incomplete": Status.ROLLBACK_INCOMPLETE,
    "failed": Status.STOPPED,
}
"""Status names of records written before the lifecycle had its own names."""


class MoveRefused(PermanentError):
    """A move the lifecycle does not allow from where the rollout now stands."""


def parse_status(value: str) -> Status:
    """The status stored as ``value``, old names included."""
    return LEGACY.get(value) or Status(value)


def allowed(current: Status | None, to: Status) -> bool:
    """Whether a rollout at ``current`` (None: no record) may move to ``to``."""
    if current is None:
        return to is Status.CHECKING
    return current in SOURCES[to]


def check_move(current: Status | None, to: Status) -> None:
    """Raise :class:`MoveRefused` unless the lifecycle allows ``current`` -> ``to``."""
    if not allowed(current, to):
        raise MoveRefused(f"a rollout cannot go from {current or 'no record'} to {to}")


@dataclass(frozen=True)
class Move:
    """One change of status as the history keeps it."""

    source: Status | None
    target: Status
    at: datetime
    by: str
    why: str
