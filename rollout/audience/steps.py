"""Who gets the new code at each step of a plan: audiences and the flag writes behind them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rollout.audience.flag_state import FlagChange
from rollout.plan.model import Phase, Window


@dataclass(frozen=True)
class Audience:
    """Everyone admitted to the new code path: named users, named stores, and a percentage."""

    users: tuple[str, ...] = ()
    stores: tuple[str, ...] = ()
    percentage: float = 0.0

    def widened(
        self,
        users: Sequence[str] = (),
        stores: Sequence[str] = (),
        percentage: float | None = None,
    ) -> Audience:
        """This audience plus more users, stores, or a higher percentage."""
        return Audience(
            users=self.users + tuple(u for u in users if u not in self.users),
            stores=self.stores + tuple(s for s in stores if s not in self.stores),
            percentage=self.percentage if percentage is None else max(self.percentage, percentage),
        )

    def flag_change(self) -> FlagChange:
        """The flag write that admits exactly this audience."""
        return FlagChange(
            enabled=bool(self.users or self.stores or self.percentage),
            percentage=self.percentage,
            users=self.users,
            stores=self.stores,
        )

    def describe(self) -> str:
        """A short human description, e.g. ``2 users, 10 stores, 25%``."""
        parts = []
        if self.users:
            parts.append(f"{len(self.users)} user{'s' if len(self.users) != 1 else ''}")
        if self.stores:
            parts.append(f"{len(self.stores)} store{'s' if len(self.stores) != 1 else ''}")
        parts.append(f"{self.percentage:g}%")
        return ", ".join(parts)


@dataclass(frozen=True)
class TrafficStep:
    """One change of audience and the window that watches it."""

    phase: str
    index: int
    label: str
    audience: Audience
    window: Window | None

    @property
    def key(self) -> str:
        """A stable identifier of the step within its plan, e.g. ``ramp/2``."""
        return f"{self.phase}/{self.index}"


def phase_steps(phase: Phase, before: Audience, pilot_stores: Sequence[str] = ()) -> list[TrafficStep]:
    """The traffic steps of ``phase``, starting from the audience ``before`` it.

    Allowlisted users and pilot stores come first, as one step; then each ramp
    percentage is a step of its own. A phase that only sets companion flags
    has no traffic steps.
    """
    steps: list[TrafficStep] = []
    audience = before
    if phase.allowlist is not None or phase.pilot_stores is not None:
        users = phase.allowlist.users if phase.allowlist else []
        stores = [*(phase.allowlist.stores if phase.allowlist else []), *pilot_stores]
        audience = audience.widened(users=users, stores=stores)
        label = (
            ", ".join(
                part
                for part in (
                    f"+{len(users)} allowlisted users" if users else "",
                    f"+{len(stores)} stores" if stores else "",
                )
                if part
            )
            or "no one new"
        )
        steps.append(TrafficStep(phase.name, 0, label, audience, phase.window))
    for step in phase.ramp or []:
        audience = audience.widened(percentage=step.percentage)
        steps.append(
            TrafficStep(
                phase.name,
                len(steps),
                f"{step.percentage:g}% of users",
                audience,
                step.window or phase.window,
            )
        )
    return steps
