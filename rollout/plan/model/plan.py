"""The plan itself: release, notifications, the users population, and the whole that holds every section."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Literal, Self

from pydantic import Field, model_validator

from rollout.durations import Duration
from rollout.plan.model.backup import BackupSettings
from rollout.plan.model.base import NAME_PATTERN, StrictModel
from rollout.plan.model.checks import Preflight
from rollout.plan.model.gates import Gate
from rollout.plan.model.phases import Phase, Schedule
from rollout.plan.model.rollback import Release, RollbackSettings, UserPopulation
from rollout.plan.model.targets import Targets

# --- the plan ------------------------------------------------------------------------------


NotifyEvent = Literal[
    "started",
    "awaiting-approval",
    "step-passed",
    "promoted",
    "rolled-back",
    "rollback-incomplete",
    "held",
    "stopped",
]
"""What a rollout tells people about."""

DEFAULT_EVENTS: list[NotifyEvent] = ["awaiting-approval", "promoted", "rolled-back", "rollback-incomplete"]


class Notification(StrictModel):
    """Who is told what: a Prefect block that delivers messages, and the events it is sent."""

    block: str = Field(
        pattern=r"^[a-z0-9-]+/[a-z0-9][a-z0-9-]*$",
        description="The Prefect block, as `<type>/<name>`: `slack-webhook/releases`, "
        "`custom-webhook/ops-webhook`, `email-server-credentials/ops-smtp` (from prefect-email), or any "
        "other notification block. Its secrets stay in the block.",
    )
    events: list[NotifyEvent] = Field(
        default_factory=lambda: list(DEFAULT_EVENTS),
        min_length=1,
        description="Events sent: started, awaiting-approval, step-passed, promoted, rolled-back, "
        "rollback-incomplete, held, stopped.",
    )
    email_to: list[str] = Field(
        default_factory=list, description="Recipients, for an `email-server-credentials` block."
    )

    @model_validator(mode="after")
    def _email_needs_recipients(self) -> Self:
        if self.block.startswith("email-server-credentials/") and not self.email_to:
            raise ValueError("an email block needs email_to: the addresses to send to")
        if self.email_to and not self.block.startswith("email-server-credentials/"):
            raise ValueError("email_to is for an email-server-credentials block; the block decides who hears")
        return self


PARK_MARGIN = 1.25
"""A parked window's interval must be this many reconciler intervals at least (a pass may run late)."""


class Plan(StrictModel):
    """A whole rollout, from data checks to 100 % and back."""

    name: str = Field(pattern=NAME_PATTERN, description="Plan name, lowercase with dashes.")
    description: str = Field(default="", description="What is being rolled out.")
    release: Release = Field(description="Versions being rolled out and back to.")
    flag: str = Field(
        pattern=r"^[A-Za-z][A-Za-z0-9_.\-]*$",
        description="The feature flag whose audience the phases grow, e.g. `USE_UNIFIED_ORDERS`.",
    )
    targets: Targets | None = Field(
        default=None, description="External systems; omit to run against the local sandbox."
    )
    preflight: Preflight = Field(default_factory=Preflight, description="Data checks.")
    backup: BackupSettings = Field(default_factory=BackupSettings, description="Backup.")
    gates: dict[str, Gate] = Field(default_factory=dict, description="Named health gates.")
    phases: list[Phase] = Field(min_length=1, description="Phases, run in order.")
    rollback: RollbackSettings = Field(default_factory=RollbackSettings, description="Rollback options.")
    schedule: Schedule | None = Field(
        default=None, description="When any step may start: deploy windows, freezes, a time zone."
    )
    notify: list[Notification] = Field(
        default_factory=list, description="Messages about the rollout: to Slack, a webhook, email."
    )
    users: UserPopulation | None = Field(
        default=None, description="The user population, for the dry run's per-step counts."
    )
    lease_ttl: Duration | None = Field(
        default=None,
        description="How long a run keeps the plan to itself after its last sign of life (its heartbeat "
        "renews it every third of this, whatever the windows' length); another run of the plan is "
        "refused until then, and a run that died blocks a resume for no longer. Default: 1m.",
    )

    park_after: Duration = Field(
        default=timedelta(minutes=2),
        description="A run started from a deployment that has nothing to change for at least this long (a "
        "window measured every 5m, a 7-day window, an approval) parks: it gives its process back, the "
        "reconciler takes the window's measurements, and the run is woken when there is something to do.",
    )
    reconcile_interval: Duration = Field(
        default=timedelta(minutes=1),
        description="How often the reconciler (the rollout-reconcile deployment, or `rollout reconcile` "
        "from cron) runs where this plan is rolled out. A window parks only when its interval is at "
        "least a quarter longer than this (75s with the default), since parked rounds are taken at the "
        "reconciler's passes; a window measured more often keeps its run attached.",
    )

    def parks_window(self, interval: timedelta) -> bool:
        """Whether a window measured every ``interval`` may park: the reconciler's passes can keep up."""
        return interval >= self.reconcile_interval * PARK_MARGIN

    @property
    def digest(self) -> str:
        """A fingerprint of the plan as validated (formatting and comments aside)."""
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:16]

    @property
    def lease(self) -> timedelta:
        """The lease a run holds on the plan, renewed by its heartbeat."""
        return self.lease_ttl if self.lease_ttl is not None else timedelta(minutes=1)

    @property
    def longest_window(self) -> timedelta:
        """The longest observation window of any step."""
        windows = [phase.window for phase in self.phases]
        windows += [step.window for phase in self.phases for step in phase.ramp or []]
        return max((w.length for w in windows if w is not None), default=timedelta(0))

    @property
    def flags_written(self) -> list[str]:
        """The main flag, then each phase's companion flags, each once."""
        names = [self.flag, *(name for phase in self.phases for name in phase.flags)]
        return list(dict.fromkeys(names))

    @property
    def uses_sandbox(self) -> bool:
        """Whether the plan runs against the local sandbox (no targets given)."""
        return self.targets is None
