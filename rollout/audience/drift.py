"""Whether someone else changed a flag since the rollout last wrote it: a person's change wins. Pure.

A rollout remembers the audience it wrote to each flag (:class:`Written`). Before its next change,
and at every reading of a window, the flag is compared with it by who it admits, not by version
(a provider may count edits that do not touch this flag's audience, such as Unleash's other
environments). A difference holds the rollout with traffic as the person left it; a flag turned
off by hand is never turned back on by the rollout.
"""

from __future__ import annotations

from dataclasses import dataclass

from rollout.audience.flag_state import FlagState
from rollout.errors import PermanentError


class FlagDrift(PermanentError):
    """A flag the rollout wrote was changed by someone else since: the rollout holds, changing nothing."""


@dataclass(frozen=True, kw_only=True)
class Written:
    """A flag's audience as the rollout last wrote it (or adopted it from a person)."""

    flag: str
    version: int
    enabled: bool
    percentage: float
    users: tuple[str, ...]
    stores: tuple[str, ...]
    foreign: tuple[str, ...] = ()

    @classmethod
    def of(cls, state: FlagState) -> Written:
        """What ``state`` admits, as the rollout keeps it."""
        return cls(
            flag=state.name,
            version=state.version,
            enabled=state.enabled,
            percentage=state.percentage,
            users=tuple(state.users),
            stores=tuple(state.stores),
            foreign=tuple(state.foreign),
        )

    def describe(self) -> str:
        """``on: 2 users, 0 stores, 25%`` or ``off``."""
        return _describe(self.enabled, self.percentage, self.users, self.stores, self.foreign)


def _describe(
    enabled: bool,
    percentage: float,
    users: tuple[str, ...],
    stores: tuple[str, ...],
    foreign: tuple[str, ...],
) -> str:
    if not enabled:
        return "off"
    also = f", and what the rollout does not manage: {'; '.join(foreign)}" if foreign else ""
    return f"on: {len(users)} users, {len(stores)} stores, {percentage:g}%{also}"


def drifted(written: Written | None, now: FlagState) -> str | None:
    """What changed in ``now`` since the rollout wrote ``written`` (None: nothing, or never written)."""
    if written is None:
        return None
    same = (
        written.enabled == now.enabled
        and (not now.enabled or written.percentage == now.percentage)
        and set(written.users) == set(now.users)
        and set(written.stores) == set(now.stores)
        and set(written.foreign) == set(now.foreign)
    )
    if same:
        return None
    when = f" at {now.updated_at:%Y-%m-%d %H:%M:%S} UTC" if now.updated_at else ""
    when += f" by {now.updated_by}" if now.updated_by else ""
    is_now = Written.of(now).describe()
    what = "turned off (a kill switch)" if written.enabled and not now.enabled else "changed"
    return (
        f"{now.name} was {what} by someone else since this rollout wrote it: it was "
        f"{written.describe()} (version {written.version}), it is "
        f"{is_now} (version {now.version}{when}). Held with traffic as they left it: run the plan "
        "again to carry on from their change, or roll it back"
    )


def killed(written: Written | None, now: FlagState) -> str | None:
    """Why carrying on would turn a flag someone turned off back on (None: it would not)."""
    if written is None or not written.enabled or now.enabled:
        return None
    return (
        f"{now.name} was turned off by someone else after this rollout turned it on: the rollout never "
        "turns a kill switch back on. Turn it on yourself if that is meant, then run the plan again; "
        "or roll it back"
    )


def router_drifted(router: str, written: int | None, now: int) -> str | None:
    """What someone else changed in the router's canary share since the rollout set ``written`` percent."""
    if written is None or written == now:
        return None
    return (
        f"{router} was changed by someone else since this rollout wrote it: it sent {written}% to the "
        f"canary, it sends {now}%. Held with traffic as they left it: run the plan again to carry on "
        "from their change, or roll it back"
    )
