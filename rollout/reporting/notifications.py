"""What a rollout tells people: one message per event, the same for Slack, a webhook or email."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from rollout.plan.model import NotifyEvent, Plan
from rollout.reporting.rollout_table import gate_cell

TITLES: dict[str, str] = {
    "started": "rollout started",
    "awaiting-approval": "waiting for a decision",
    "step-passed": "step passed",
    "promoted": "promoted",
    "rolled-back": "ROLLED BACK",
    "rollback-incomplete": "ROLLBACK INCOMPLETE",
    "held": "held",
    "stopped": "STOPPED",
}


@dataclass(frozen=True)
class Notice:
    """One event of one rollout, as people read it."""

    event: NotifyEvent
    plan: str
    release: str
    what: str
    gates: tuple[str, ...] = ()
    details: tuple[str, ...] = ()
    run_url: str | None = None

    @property
    def subject(self) -> str:
        """``[rollout] sandbox-demo backend-v2026.11.21-1200: ROLLED BACK``."""
        return f"[rollout] {self.plan} {self.release}: {TITLES[self.event]}"

    @property
    def body(self) -> str:
        """What happened, the gates' last values against their limits, and where to look."""
        lines = [self.what]
        if self.gates:
            lines += ["", "Gates:", *(f"  {g}" for g in self.gates)]
        lines += [*(["", *self.details] if self.details else [])]
        if self.run_url:
            lines += ["", f"Run: {self.run_url}"]
        return "\n".join(lines)


def notice(
    plan: Plan,
    event: NotifyEvent,
    what: str,
    values: Mapping[str, float | None] | None = None,
    details: tuple[str, ...] = (),
    run_url: str | None = None,
) -> Notice:
    """The notice of ``event``, each gate's value shown against its limit with its verdict."""
    gates = tuple(f"{name}: {gate_cell(plan, name, value)}" for name, value in (values or {}).items())
    return Notice(event, plan.name, plan.release.version, what, gates, details, run_url)


def recipients(plan: Plan, event: NotifyEvent) -> list[int]:
    """Which of the plan's ``notify`` entries want ``event`` (their indexes)."""
    return [i for i, n in enumerate(plan.notify) if event in n.events]
