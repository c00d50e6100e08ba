"""Whether a new run may start a rollout of a plan at all: no replay of a finished rollout, no silent
downgrade, no silent cut of a flag a promoted rollout left higher. Pure.

Each check answers with the reason to refuse, naming what it found and how to go on, or None. The
run-state store keeps what they read: the finished rollouts of the plan (run, rollout, release,
outcome, when) and the release history (which release was stable when).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rollout.audience.flag_state import FlagState
from rollout.audience.steps import Audience, phase_steps
from rollout.lifecycle.statuses import Status
from rollout.plan.model import Plan


@dataclass(frozen=True, kw_only=True)
class Finished:
    """A rollout of the plan that has ended, as its record kept it."""

    run_id: str
    rollout_id: str | None
    version: str | None
    status: Status
    at: datetime | None

    def describe(self) -> str:
        """``rollout v2 (release v2, run R) ended promoted at 2026-12-01 09:00:00 UTC``."""
        when = f" at {self.at:%Y-%m-%d %H:%M:%S} UTC" if self.at else ""
        return (
            f"rollout {self.rollout_id} (release {self.version}, run {self.run_id}) ended {self.status}{when}"
        )


def replayed(finished: Iterable[Finished], run_id: str, rollout_id: str, *, explicit: bool) -> str | None:
    """Why this start replays a finished rollout: the same flow run again (Prefect's Retry, a re-run),
    or a rollout id given explicitly that names a finished rollout. None when it does not."""
    for done in finished:
        if done.run_id == run_id:
            return (
                f"run {run_id} already ran {done.describe()}: running it again (Prefect's Retry, a "
                "re-run) would replay that rollout; start a new run of the plan instead"
            )
        if explicit and done.rollout_id == rollout_id:
            return (
                f"{done.describe()}: a finished rollout is not run again; start a new run (without "
                "a rollout id, or with a new one)"
            )
    return None


def downgrade(version: str, stable: str | None, history: Sequence[Mapping[str, Any]]) -> str | None:
    """Why rolling ``version`` out would put back a release the history shows as current or superseded.

    Order comes from the release history (each change of the plan's stable release, oldest first),
    never from parsing version names. None for a release never stable before.
    """
    if stable is not None and version == stable:
        return (
            f"release {version} is already the stable release of this plan: rolling it out again "
            "changes nothing it has not had; pass force with a reason to do so anyway"
        )
    became = [i for i, h in enumerate(history) if h.get("version") == version]
    if not became:
        return None
    # Superseded: another release promoted since. A release put back by a rollback supersedes nothing.
    later = [
        h
        for h in history[became[-1] + 1 :]
        if h.get("event") == "promoted" and h.get("version") not in (None, version)
    ]
    if not later:
        return None
    newer = later[-1]
    when = newer.get("at")
    at = f" at {when:%Y-%m-%d %H:%M:%S} UTC" if isinstance(when, datetime) else ""
    return (
        f"release {version} was superseded by {newer.get('version')} ({newer.get('event', 'stable')}{at}): "
        f"rolling it out would downgrade {stable or newer.get('version')} to {version}; pass force with "
        "a reason to do so anyway"
    )


def first_audience(plan: Plan) -> Audience | None:
    """Who the plan's first traffic step admits (pilot stores, chosen by a query at run time, aside)."""
    before = Audience()
    for phase in plan.phases:
        steps = phase_steps(phase, before)
        if steps:
            return steps[0].audience
    return None


def flag_cut(flag: FlagState, first: Audience | None, lost: int | None = None) -> str | None:
    """Why the first step would take the new code path away from people a promoted rollout gave it to.

    ``flag`` is the main flag as it is now; ``lost`` how many users of the plan's population the
    first step would stop admitting (the dry run's count), when it has one. None when the first
    step admits everyone the flag admits now.
    """
    if first is None or not flag.enabled or first.percentage >= 100:
        return None  # off, or a first step that admits everyone: nobody loses the new code path
    users = [u for u in flag.users if u not in first.users]
    stores = [s for s in flag.stores if s not in first.stores]
    if first.percentage >= flag.percentage and not users and not stores:
        return None
    now = Audience(flag.users, flag.stores, flag.percentage)
    who = f"{lost} users of the plan's population" if lost is not None else "everyone it admits beyond it"
    return (
        f"its first step would set {flag.name} to {first.describe()} while it is at {now.describe()}, as a "
        f"promoted rollout left it: {who} would lose the new code path. Start the ramp again on purpose "
        "with restart_ramp (`--restart-ramp`), or give this release train a flag of its own"
    )
