"""Where a rollout stands, read from its persisted record alone."""

from __future__ import annotations

from datetime import UTC, datetime

from rollout.adapters.run_state import RunRecord


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


def describe_run(record: RunRecord | None, plan: str, stable: str | None, now: datetime | None = None) -> str:
    """Plan, run, status (and its lease while running), the step it is at with its last gate values,
    the backup and the stable release."""
    if record is None:
        return f"plan {plan}: no rollout recorded yet"
    lines = [
        f"plan      {plan}",
        f"run       {record.run_id}" + (f" (rollout {record.rollout_id})" if record.rollout_id else ""),
        f"status    {record.status}",
        f"started   {record.started_at:%Y-%m-%d %H:%M:%S} UTC" if record.started_at else "started   unknown",
    ]
    if record.status == "running":
        lines.append(_lease(record, now or datetime.now(UTC)))
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
    lines += [
        f"backup    {record.backup or 'none'}",
        f"undo log  {len(record.undo)} flag(s)" + (", router weight" if record.router_before else ""),
        f"stable    {stable or 'not recorded'}",
    ]
    return "\n".join(lines)
