"""Phases: audiences (allowlists, pilot stores, ramps), windows, approvals and schedules."""

from __future__ import annotations

import itertools
import re
from datetime import datetime, timedelta
from typing import Any, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator

from rollout.durations import Duration
from rollout.plan.model.base import NAME_PATTERN, StrictModel

# --- phases --------------------------------------------------------------------------------


class Window(StrictModel):
    """An observe window: gates measured every `interval`, `count` times or for `duration`."""

    interval: Duration = Field(default=timedelta(seconds=30), description="Time between measurements.")
    count: int | None = Field(default=None, ge=1, description="Number of measurements.")
    duration: Duration | None = Field(default=None, description="How long to observe.")
    initial_delay: Duration = Field(
        default=timedelta(0),
        description="Wait before the first measurement (never less than the gates' built-in `rate_window`).",
    )
    gates: list[str] = Field(default_factory=list, description="Names of gates from `gates`.")
    on_inconclusive: Literal["pause", "rollback"] = Field(
        default="pause", description="Inconclusive result: wait for a person, or roll back."
    )
    decision_timeout: Duration = Field(
        default=timedelta(hours=1),
        description="How long an inconclusive pause waits before rolling back.",
    )

    @field_validator("interval", "duration", "decision_timeout")
    @classmethod
    def _positive(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value <= timedelta(0):
            raise ValueError("must be positive, e.g. '30s'")
        return value

    @field_validator("initial_delay")
    @classmethod
    def _not_negative(cls, value: timedelta) -> timedelta:
        if value < timedelta(0):
            raise ValueError("must not be negative")
        return value

    @model_validator(mode="after")
    def _count_or_duration(self) -> Self:
        if (self.count is None) == (self.duration is None):
            raise ValueError("set exactly one of count or duration")
        return self

    @property
    def measurements(self) -> int:
        """How many measurements the window takes."""
        if self.count is not None:
            return self.count
        assert self.duration is not None
        return max(1, int(self.duration / self.interval))

    @property
    def length(self) -> timedelta:
        """How long the window lasts when every measurement is taken."""
        return self.initial_delay + self.interval * self.measurements


class Allowlist(StrictModel):
    """Users and stores that get the new code regardless of percentage."""

    users: list[str] = Field(default_factory=list, description="User ids or emails.")
    stores: list[str] = Field(default_factory=list, description="Store ids.")

    @model_validator(mode="after")
    def _not_empty(self) -> Self:
        if not self.users and not self.stores:
            raise ValueError("name at least one user or store")
        return self


class PilotStores(StrictModel):
    """Stores chosen by a query, e.g. active shops with 10 < total_orders < 100."""

    collection: str = Field(default="shops", description="Collection of stores.")
    filter: dict[str, Any] = Field(default_factory=dict, description="MongoDB query filter.")
    sort: dict[str, Literal[1, -1]] = Field(
        default_factory=dict, description="Sort order, e.g. `created_at: -1` for newest first."
    )
    limit: int = Field(default=10, ge=1, le=10000, description="How many stores to pick.")
    id_field: str = Field(default="_id", description="Field holding the store id.")


Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
CLOCK = r"^([01][0-9]|2[0-3]):[0-5][0-9]$|^24:00$"


class DeployWindow(StrictModel):
    """When changes may start: some days of the week, between two times of day (local time)."""

    days: list[Weekday] = Field(
        default_factory=lambda: list(WEEKDAYS),
        min_length=1,
        description="Days, e.g. `[sun, mon, tue, wed, thu]`.",
    )
    start: str = Field(pattern=CLOCK, description="From, `HH:MM`, e.g. `09:00`.")
    end: str = Field(pattern=CLOCK, description="Until, `HH:MM` (`24:00` for midnight), after `start`.")

    @model_validator(mode="after")
    def _not_empty(self) -> Self:
        if self.end <= self.start:
            raise ValueError(
                f"the window {self.start}-{self.end} is empty: end must be after start on the same day "
                "(write two windows for one across midnight)"
            )
        return self


class Freeze(StrictModel):
    """A change freeze: no step starts between `start` and `end`."""

    start: datetime = Field(description="From, e.g. `2026-12-20T00:00` (in the schedule's time zone).")
    end: datetime = Field(description="Until, after `start`.")
    reason: str = Field(default="", description="Why, for the waiting message, e.g. `year-end freeze`.")

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.end <= self.start:
            raise ValueError(f"the freeze ends ({self.end}) before it starts ({self.start})")
        return self


class Schedule(StrictModel):
    """When steps may start. A step's schedule fills in from its phase's, the phase's from the plan's;
    freezes add up. A rollback is never held by a schedule."""

    timezone: str | None = Field(
        default=None, description="IANA time zone of `windows` and of dates without one, e.g. `Asia/Riyadh`."
    )
    not_before: datetime | Duration | None = Field(
        default=None,
        description="No start before this: a date (`2026-12-07T09:00`), or a time after the rollout began "
        "(`4d`: the guide's day 5).",
    )
    windows: list[DeployWindow] | None = Field(
        default=None, min_length=1, description="Allowed windows; a step starts only inside one."
    )
    freezes: list[Freeze] = Field(default_factory=list, description="Change freezes.")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"{value!r} is not a time zone: write an IANA name such as Europe/Berlin"
            ) from None
        return value


class RampStep(StrictModel):
    """One step of a percentage ramp."""

    percentage: float = Field(ge=1, le=100, description="Share of users, 1..100.")
    window: Window | None = Field(default=None, description="Observe window; defaults to phase's.")
    schedule: Schedule | None = Field(default=None, description="When this step may start.")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return {"percentage": value}
        return value


class Approval(StrictModel):
    """A person must approve before the phase starts."""

    timeout: Duration = Field(default=timedelta(hours=24), description="How long to wait for a decision.")
    on_timeout: Literal["rollback", "hold"] = Field(
        default="rollback",
        description="No decision in time: roll back, or stop with traffic where it is.",
    )
    checklist: list[str] = Field(
        default_factory=list,
        description=(
            "What the approver confirms, one box each in the approval form (e.g. 'support team "
            "ready'); every box must be ticked to approve."
        ),
    )

    @field_validator("timeout")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be positive, e.g. '24h'")
        return value

    @field_validator("checklist")
    @classmethod
    def _distinct_items(cls, items: list[str]) -> list[str]:
        seen: dict[str, str] = {}
        for item in items:
            key = checklist_field(item)
            if not key:
                raise ValueError(f"{item!r}: an item needs letters or digits")
            if key in seen:
                raise ValueError(f"{item!r} and {seen[key]!r} are the same item; word them apart")
            seen[key] = item
        return items


def checklist_field(item: str) -> str:
    """The approval form's field for a checklist item: ``Support team ready`` -> ``support_team_ready``."""
    return re.sub(r"[^a-z0-9]+", "_", item.lower()).strip("_")


class Phase(StrictModel):
    """A stage of the rollout: who gets the new code, and how long it is watched."""

    name: str = Field(pattern=NAME_PATTERN, description="Unique name, lowercase with dashes.")
    description: str = Field(default="", description="What this phase is for.")
    approval: Approval | None = Field(
        default=None, description="Pause for a person's approval before the phase starts."
    )
    flags: dict[str, bool] = Field(
        default_factory=dict, description="Companion on/off flags set when the phase starts."
    )
    allowlist: Allowlist | None = Field(default=None, description="Users and stores to admit.")
    pilot_stores: PilotStores | None = Field(default=None, description="Stores to admit.")
    ramp: list[RampStep] | None = Field(default=None, description="Percentage steps, in order.")
    window: Window | None = Field(
        default=None, description="Observe window after the phase's change (and ramp default)."
    )
    schedule: Schedule | None = Field(default=None, description="When the phase's steps may start.")

    @field_validator("ramp")
    @classmethod
    def _ramp_increasing(cls, steps: list[RampStep] | None) -> list[RampStep] | None:
        if steps is None:
            return None
        if not steps:
            raise ValueError("list at least one step, e.g. [10, 25, 50, 75, 100]")
        for before, after in itertools.pairwise(steps):
            if after.percentage <= before.percentage:
                raise ValueError(
                    f"percentages must increase strictly: {after.percentage:g} follows {before.percentage:g}"
                )
        return steps

    @model_validator(mode="after")
    def _does_something(self) -> Self:
        if not (self.flags or self.allowlist or self.pilot_stores or self.ramp):
            raise ValueError("a phase needs flags, allowlist, pilot_stores or ramp")
        changes_traffic = self.allowlist is not None or self.pilot_stores is not None
        if changes_traffic and self.window is None:
            raise ValueError("a phase that admits users or stores needs a window to observe them")
        if self.ramp and self.window is None:
            missing = [i for i, s in enumerate(self.ramp) if s.window is None]
            if missing:
                raise ValueError(
                    f"ramp steps {missing} have no window: give each step one or set the phase's window"
                )
        return self
