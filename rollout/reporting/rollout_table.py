"""The rollout at a glance: one row per traffic step, each gate's value against its limit, the decisions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from rollout.analysis.gates import Outcome, classify, limit_text, value_text
from rollout.lifecycle.progression import Decision, WindowState
from rollout.plan import Plan

Row = dict[str, str]


def gate_cell(plan: Plan, name: str, value: float | None) -> str:
    """``0.012 (max 0.05) ok``, or why not."""
    gate = plan.gates.get(name)
    if gate is None:
        return value_text(value)
    if gate.compare is not None:
        return f"{value_text(value)} ({limit_text(gate)})"
    reading = classify(name, gate, value, datetime.min)
    verdict = "ok" if reading.outcome is Outcome.SUCCESSFUL else reading.outcome.value.upper()
    return f"{value_text(value)} ({limit_text(gate)}) {verdict}"


def _when(at: Any) -> str:
    return f"{at:%Y-%m-%d %H:%M:%S} UTC" if isinstance(at, datetime) else str(at or "")


def rollout_rows(
    plan: Plan,
    steps: Sequence[Mapping[str, Any]],
    window: WindowState | None = None,
    decisions: Mapping[str, Decision] | None = None,
    traffic_now: str = "",
) -> list[Row]:
    """Every step recorded (as the run record keeps them), then the window under way, if any.

    Columns: step, phase, traffic, one per gate of the plan, outcome, at, why; ``traffic_now`` is
    whom the step under way admits. A phase's approval is told on its first step's row, or on a
    row of its own when the phase has no step yet (it was rejected, or has only just been approved).
    An inconclusive window's decision is on its own step's row (its outcome ``continued``).
    """
    decided = dict(decisions or {})
    rows: list[Row] = []
    seen_phases: set[str] = set()
    for step in steps:
        phase = str(step.get("phase", ""))
        why = str(step.get("reason", ""))
        if phase not in seen_phases:
            seen_phases.add(phase)
            approval = decided.get(f"approval:{phase}")
            if approval is not None:
                why = "; ".join(filter(None, [approval.describe("approval"), why]))
        row: Row = {
            "step": str(step.get("step", "")),
            "phase": phase,
            "traffic": str(step.get("audience", "")),
        }
        values = step.get("values") or {}
        for gate in plan.gates:
            row[gate] = gate_cell(plan, gate, values[gate]) if gate in values else ""
        row |= {"outcome": str(step.get("outcome", "")), "at": _when(step.get("at")), "why": why}
        rows.append(row)
    for about, decision in decided.items():
        kind, _, phase = about.partition(":")
        if kind == "approval" and phase not in seen_phases:
            # Decided before the phase set any traffic (a rejection, or an approval just given).
            verdict = (
                "no decision"
                if decision.approved is None
                else "approved"
                if decision.approved
                else "rejected"
            )
            row = {"step": "approval", "phase": phase, "traffic": ""} | {gate: "" for gate in plan.gates}
            rows.append(
                row | {"outcome": verdict, "why": decision.describe("approval"), "at": _when(decision.at)}
            )
    done = {str(s.get("key")) for s in steps}
    if window is not None and window.key not in done:
        row = {"step": window.key, "phase": window.key.split("/", 1)[0], "traffic": traffic_now}
        values = window.last_values()
        for gate in plan.gates:
            row[gate] = gate_cell(plan, gate, values[gate]) if gate in values else ""
        measured = f"{len(window.rounds)} round(s) measured" if window.rounds else "not measured yet"
        last = window.rounds[-1].at if window.rounds else window.started_at
        row |= {"outcome": "observing", "at": _when(last), "why": measured}
        rows.append(row)
    return rows
