"""A feature flag as the rollout reads and writes it, whichever provider holds it.

:class:`FlagState` is who a flag admits and at which version; :class:`FlagChange` the fields
a write overwrites; :class:`Fence` the writer's hold on its plan. Providers
(:mod:`rollout.adapters.flags`) turn these into their own documents.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from rollout.audience.bucketing import admitted
from rollout.errors import LeaseLost, PermanentError


class FlagConflict(PermanentError):
    """The flag changed since it was read; re-read it and decide again."""


class FencedOff(LeaseLost):
    """A newer holder of the plan (a rollback, or a run that resumed it) writes this flag now."""


@dataclass(frozen=True)
class Fence:
    """A writer's fencing token: the plan it writes for and the epoch of its hold on the plan.

    The flag keeps the highest epoch each plan has written with; a write with an older one
    is refused, so a run that lost its hold (revived after a pause, cancelled but still
    running, cut off) can never move traffic after its successor did.
    """

    plan: str
    epoch: int


@dataclass(frozen=True)
class FlagState:
    """A flag as stored: who is admitted and at which version."""

    name: str
    enabled: bool = False
    percentage: float = 0.0
    users: tuple[str, ...] = ()
    stores: tuple[str, ...] = ()
    version: int = 0
    updated_at: datetime | None = None
    foreign: tuple[str, ...] = ()
    """What else admits people, beyond what the rollout manages (Unleash: a strategy added or changed
    by hand, described); none where the provider has no such thing."""
    updated_by: str | None = None
    """Who made the latest change, where the provider records it (Unleash's event log)."""

    def admits(self, user: str | None, store: str | None = None) -> bool:
        """Tell whether a request from ``user`` (at ``store``) takes the new code path.

        An empty user or store is none at all. A user id that is not valid Unicode raises
        :class:`~rollout.audience.bucketing.InvalidUserId`: the caller refuses the request.
        """
        if not self.enabled:
            return False
        if user and user in self.users:
            return True
        if store and store in self.stores:
            return True
        return bool(user) and admitted(self.name, user or "", self.percentage)


@dataclass(frozen=True)
class FlagChange:
    """The fields of a flag to overwrite; ``None`` leaves a field as it is."""

    enabled: bool | None = None
    percentage: float | None = None
    users: tuple[str, ...] | None = None
    stores: tuple[str, ...] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def applied_to(self, state: FlagState) -> FlagState:
        """``state`` with this change's fields written over it (``extra`` aside; version kept)."""
        return replace(
            state,
            enabled=state.enabled if self.enabled is None else self.enabled,
            percentage=state.percentage if self.percentage is None else float(self.percentage),
            users=state.users if self.users is None else tuple(self.users),
            stores=state.stores if self.stores is None else tuple(self.stores),
        )
