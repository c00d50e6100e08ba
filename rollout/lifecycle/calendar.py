"""When a step may start: not before a date, inside deploy windows, outside change freezes.

Pure: a step's schedule (filled in from its phase's and the plan's) and two instants, the
rollout's beginning and now, give the first moment the step may start, with the reason
for any wait. Only starting a step (or switching a phase's companion flags) waits; a
window under way goes on, and a rollback is never held.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from rollout.durations import format_duration
from rollout.plan.model import WEEKDAYS, DeployWindow, Freeze, Phase, Plan, RampStep

UTC_ZONE = ZoneInfo("UTC")


@dataclass(frozen=True)
class Effective:
    """The schedule a step keeps: the most specific of each field, and every freeze."""

    zone: ZoneInfo
    not_before: datetime | timedelta | None
    windows: tuple[DeployWindow, ...]
    freezes: tuple[Freeze, ...]

    @property
    def free(self) -> bool:
        """Whether it allows any time at all (nothing to wait for)."""
        return self.not_before is None and not self.windows and not self.freezes


@dataclass(frozen=True)
class Opening:
    """When a step may start, and what it waits for until then ("" when it may start now)."""

    at: datetime
    why: str = ""


def effective(plan: Plan, phase: Phase, step: RampStep | None = None) -> Effective:
    """``step``'s schedule over ``phase``'s over the plan's."""
    layers = [s for s in (plan.schedule, phase.schedule, step.schedule if step else None) if s is not None]

    def last(field: str) -> object:
        found = [getattr(s, field) for s in layers if getattr(s, field) is not None]
        return found[-1] if found else None

    zone_name = last("timezone")
    windows = last("windows")
    return Effective(
        ZoneInfo(str(zone_name)) if zone_name else UTC_ZONE,
        last("not_before"),  # type: ignore[arg-type]
        tuple(windows) if isinstance(windows, list) else (),
        tuple(f for s in layers for f in s.freezes),
    )


def step_schedule(plan: Plan, phase: Phase, index: int) -> Effective:
    """The schedule of the phase's traffic step ``index`` (0 is the allowlist's when it has one)."""
    first_ramp = 1 if phase.allowlist is not None or phase.pilot_stores is not None else 0
    ramp = phase.ramp or []
    at = index - first_ramp
    return effective(plan, phase, ramp[at] if 0 <= at < len(ramp) else None)


def _aware(moment: datetime, zone: ZoneInfo) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=zone)


def _clock(text: str) -> time:
    return time.max if text == "24:00" else time.fromisoformat(text)


def _window_edges(window: DeployWindow, day: date, zone: ZoneInfo) -> tuple[datetime, datetime] | None:
    if WEEKDAYS[day.weekday()] not in window.days:
        return None
    start = datetime.combine(day, _clock(window.start), zone)
    end = datetime.combine(day + timedelta(days=1), time.min, zone) if window.end == "24:00" else None
    return start, end or datetime.combine(day, _clock(window.end), zone)


def _in_or_next_window(schedule: Effective, at: datetime) -> datetime | None:
    """``at`` when it is inside a window; else the next window's start (None: no window in a week)."""
    local = at.astimezone(schedule.zone)
    starts = []
    for offset in range(8):
        day = local.date() + timedelta(days=offset)
        for window in schedule.windows:
            edges = _window_edges(window, day, schedule.zone)
            if edges is None:
                continue
            start, end = edges
            if start <= at < end:
                return at
            if start > at:
                starts.append(start)
    return min(starts) if starts else None


def _describe(window: DeployWindow, zone: ZoneInfo) -> str:
    days = ",".join(window.days) if len(window.days) < 7 else "every day"
    return f"{days} {window.start}-{window.end} {zone.key}"


def opening(schedule: Effective, began: datetime | None, now: datetime) -> Opening:
    """The first moment at or after ``now`` the schedule lets a step start."""
    if schedule.free:
        return Opening(now)
    at, why = now, ""
    bound = schedule.not_before
    if isinstance(bound, timedelta):
        start = began or now
        earliest: datetime | None = start + bound
        label = f"not before {format_duration(bound)} after the rollout began"
    else:
        earliest = _aware(bound, schedule.zone) if bound is not None else None
        label = "not before the date the plan names"
    if earliest is not None and at < earliest:
        at, why = earliest, label
    for _ in range(366):  # each pass moves ``at`` forward to a freeze's end or a window's start
        moved = False
        for freeze in schedule.freezes:
            start, end = _aware(freeze.start, schedule.zone), _aware(freeze.end, schedule.zone)
            if start <= at < end:
                at, why, moved = end, f"change freeze{': ' + freeze.reason if freeze.reason else ''}", True
        if schedule.windows:
            inside = _in_or_next_window(schedule, at)
            if inside is None:
                raise ValueError("the schedule's windows name no day of the week")
            if inside != at:
                windows = "; ".join(_describe(w, schedule.zone) for w in schedule.windows)
                at, why, moved = inside, f"outside the deploy windows ({windows})", True
        if not moved:
            return Opening(at, why if at > now else "")
    return Opening(at, why)
