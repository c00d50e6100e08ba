"""Where a rollout stands, read from its persisted record (and what Prefect says of its run)."""

from __future__ import annotations

from datetime import UTC, datetime

from rollout.audience.flag_state import FlagState
from rollout.lifecycle.reconciliation import holder
from rollout.lifecycle.record import RunRecord
from rollout.lifecycle.statuses import DRIVEN, Status


def _values(values: dict[str, float | None]) -> str:
    shown = [
        f"{gate} {'no data' if value is None else format(value, '.4g')}" for gate, value in values.items()
    ]
    return "; ".join(shown) or "no gates"


def _lease(record: RunRecord, now: datetime) -> str:
    until = record.lease_until
    if until is None:
        return "lease     none recorded"
    if until > now:
        return f"lease     held until {until:%Y-%m-%d %H:%M:%S} UTC (another run of the plan is refused)"
    return (
        f"lease     expired {until:%Y-%m-%d %H:%M:%S} UTC: the run stopped half-way; run the plan again "
        f"with rollout id {record.rollout_id} to resume it, or roll it back"
    )


def _flag_text(flag: FlagState) -> str:
    who = [f"{len(flag.users)} user(s)"] if flag.users else []
    who += [f"{len(flag.stores)} store(s)"] if flag.stores else []
    who.append(f"{flag.percentage:g}%")
    state = "enabled" if flag.enabled else "disabled, admits no one"
    return f"{flag.name}: {', '.join(who)} ({state}, version {flag.version})"


def _expected(record: RunRecord) -> tuple[str, tuple[bool, float, tuple[str, ...], tuple[str, ...]]] | None:
    """What the flag should say by the record: off once rolled back, else the last committed step."""
    if record.status in (Status.ROLLED_BACK, Status.ROLLING_BACK, Status.ROLLBACK_INCOMPLETE):
        return "the rollback (traffic off)", (False, 0.0, (), ())
    step = record.last_committed_step()
    if step is None or "admitted" not in step:
        return None
    admitted = step["admitted"]
    audience = (True, float(admitted["percentage"]), tuple(admitted["users"]), tuple(admitted["stores"]))
    return f"the last committed step ({step['key']}: {step['audience']})", audience


def _flag_lines(record: RunRecord, flag: FlagState) -> list[str]:
    lines = [f"flag      {_flag_text(flag)}"]
    expected = _expected(record)
    if expected is None:
        return lines
    what, (enabled, percentage, users, stores) = expected
    if not enabled:
        matches = not flag.enabled or (flag.percentage == 0 and not flag.users and not flag.stores)
    else:
        matches = flag.enabled and (flag.percentage, flag.users, flag.stores) == (percentage, users, stores)
    if matches:
        lines.append(f"          as {what} says")
    else:
        lines.append(
            f"          DIFFERS from {what}: a step written but not yet committed, "
            "or a change made outside this rollout"
        )
    return lines


def _prefect_line(record: RunRecord, run_state: str, now: datetime) -> str:
    """What Prefect says of the run holding the rollout, and whether that agrees with the record."""
    said = f"prefect   run {holder(record)} is {run_state}"
    if record.status is Status.PARKED and run_state not in ("Suspended", "Paused"):
        return (
            f"{said}, while the record says parked: they disagree (a suspension that did not take, "
            "or a wake on its way); the reconciler measures the window all the same and adopts the "
            "rollout if that run has not taken it within its grace"
        )
    lease = record.lease_until
    if record.status in DRIVEN and lease is not None and lease < now and run_state in ("Running", "Pending"):
        return (
            f"{said}, while its lease ran out at {lease:%Y-%m-%d %H:%M:%S} UTC: they disagree (its "
            "process is likely gone); the reconciler adopts the rollout"
        )
    return said


def describe_run(
    record: RunRecord | None,
    plan: str,
    stable: str | None,
    now: datetime | None = None,
    flag: FlagState | None = None,
    run_state: str | None = None,
) -> str:
    """Plan, run, status (and its lease while a run drives it), the step it is at with its last gate
    values, the main flag as the flag store has it, the backup and the stable release.

    ``run_state`` is the Prefect state name of the run holding the rollout, when Prefect could be
    asked: said beside the record's own status, and where the two disagree, what that means."""
    if record is None:
        return f"plan {plan}: no rollout recorded yet"
    moved = record.history[-1] if record.history else None
    since = f" since {moved.at:%Y-%m-%d %H:%M:%S} UTC ({moved.by}: {moved.why})" if moved else ""
    lines = [
        f"plan      {plan}",
        f"run       {record.run_id}" + (f" (rollout {record.rollout_id})" if record.rollout_id else ""),
        f"status    {record.status}{since}",
        f"started   {record.started_at:%Y-%m-%d %H:%M:%S} UTC" if record.started_at else "started   unknown",
    ]
    if record.status in DRIVEN:
        lines.append(_lease(record, now or datetime.now(UTC)))
    if record.status is Status.PARKED and record.parked is not None:
        until = record.parked.until
        lines.append(
            f"parked    until {until:%Y-%m-%d %H:%M:%S} UTC" if until else "parked    until someone decides"
        )
        lines.append(f"next      {record.parked.next} (its run holds no process while parked)")
    if run_state is not None:
        lines.append(_prefect_line(record, run_state, now or datetime.now(UTC)))
    if record.window is not None and record.window.key not in record.committed:
        lines.append(f"window    {record.window.key}: {len(record.window.rounds)} round(s) measured")
    for about, decision in record.decisions.items():
        lines.append(f"decision  {decision.describe(about)}")
        if decision.ticked:
            lines.append(f"          ticked: {'; '.join(decision.ticked)}")
    if record.steps:
        last = record.steps[-1]
        lines += [
            f"phase     {last['phase']} ({last['step']})",
            f"traffic   {last['audience']}",
            f"gates     {_values(last.get('values', {}))} -> {last['outcome']}",
            f"steps     {len(record.steps)} done",
        ]
    else:
        lines.append("phase     not started (no traffic moved)")
    if flag is not None:
        lines += _flag_lines(record, flag)
    lines += [
        f"backup    {record.backup or 'none'}",
        f"undo log  {len(record.undo)} flag(s)" + (", router weight" if record.router_before else ""),
        f"stable    {stable or 'not recorded'}"
        + (f" (before this rollout: {record.stable_before})" if record.stable_before else ""),
    ]
    return "\n".join(lines)
