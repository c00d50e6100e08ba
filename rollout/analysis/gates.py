"""Gate evaluation with Argo Rollouts' analysis semantics, as pure functions.

Each interval a gate yields one :class:`Measurement`. A query error, an empty
result or NaN is an ``ERROR`` measurement, never a success. A gate's verdict
over its measurements so far:

- ``FAILED`` once failed measurements exceed ``failure_limit``;
- ``ERROR`` once consecutive errors exceed ``consecutive_error_limit``;
- ``INCONCLUSIVE`` once inconclusive measurements exceed ``inconclusive_limit``;
- at the end of the window, ``SUCCESSFUL`` only if the last measurement
  succeeded; a window that ends on errors or without any success is
  ``INCONCLUSIVE`` (missing data is never read as success);
- otherwise still ``RUNNING``.

The worst verdict of all gates is the window's verdict.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from rollout.plan.model import Gate


class Outcome(StrEnum):
    """The result of one measurement, or of a gate, or of a whole window."""

    SUCCESSFUL = "successful"
    RUNNING = "running"
    INCONCLUSIVE = "inconclusive"
    ERROR = "error"
    FAILED = "failed"

    @property
    def severity(self) -> int:
        """Rank for "the worst wins": higher is worse."""
        return _SEVERITY[self]

    @property
    def aborts(self) -> bool:
        """Whether this outcome stops the rollout at once."""
        return self in (Outcome.FAILED, Outcome.ERROR)


_SEVERITY = {
    Outcome.SUCCESSFUL: 0,
    Outcome.RUNNING: 1,
    Outcome.INCONCLUSIVE: 2,
    Outcome.ERROR: 3,
    Outcome.FAILED: 4,
}


@dataclass(frozen=True)
class Measurement:
    """One reading of one gate."""

    gate: str
    outcome: Outcome
    value: float | None
    at: datetime
    message: str = ""


@dataclass(frozen=True)
class Verdict:
    """A gate's (or a window's) judgement so far, and why."""

    outcome: Outcome
    reason: str


def limit_text(gate: Gate) -> str:
    """The gate's bound for people: ``max 0.05``, ``min 0.99``, ``0.9..1``, or the comparison's scores."""
    if gate.compare is not None:
        return f"score >= {gate.compare.pass_score:g} against stable"
    if gate.min is not None and gate.max is not None:
        return f"{gate.min:g}..{gate.max:g}"
    return f"max {gate.max:g}" if gate.max is not None else f"min {gate.min:g}"


def value_text(value: float | None) -> str:
    """A reading for people: four significant digits, or ``no data``."""
    return "no data" if value is None or math.isnan(value) else f"{value:.4g}"


def classify(
    name: str, gate: Gate, value: float | None, at: datetime, error: str | None = None
) -> Measurement:
    """Judge one threshold reading of ``gate``; errors, no data and NaN are ``ERROR``."""
    if error is not None:
        return Measurement(name, Outcome.ERROR, None, at, error)
    if value is None or math.isnan(value):
        return Measurement(name, Outcome.ERROR, None, at, "no data")
    if gate.max is not None and value > gate.max:
        return Measurement(name, Outcome.FAILED, value, at, f"{value:.4g} > max {gate.max:g}")
    if gate.min is not None and value < gate.min:
        return Measurement(name, Outcome.FAILED, value, at, f"{value:.4g} < min {gate.min:g}")
    return Measurement(name, Outcome.SUCCESSFUL, value, at)


def gate_verdict(gate: Gate, measurements: Sequence[Measurement], *, final: bool) -> Verdict:
    """Judge a gate from its measurements so far; ``final`` at the end of its window."""
    failed = sum(m.outcome is Outcome.FAILED for m in measurements)
    inconclusive = sum(m.outcome is Outcome.INCONCLUSIVE for m in measurements)
    consecutive_errors = 0
    for m in reversed(measurements):
        if m.outcome is not Outcome.ERROR:
            break
        consecutive_errors += 1
    if failed > gate.failure_limit:
        last = next(m for m in reversed(measurements) if m.outcome is Outcome.FAILED)
        return Verdict(Outcome.FAILED, f"{failed} failed (limit {gate.failure_limit}): {last.message}")
    if consecutive_errors > gate.consecutive_error_limit:
        return Verdict(
            Outcome.ERROR,
            f"{consecutive_errors} errors in a row (limit {gate.consecutive_error_limit}): "
            f"{measurements[-1].message}",
        )
    if inconclusive > gate.inconclusive_limit:
        return Verdict(Outcome.INCONCLUSIVE, f"{inconclusive} inconclusive (limit {gate.inconclusive_limit})")
    if not final:
        return Verdict(Outcome.RUNNING, f"{len(measurements)} measured")
    if not measurements or measurements[-1].outcome is Outcome.ERROR:
        why = measurements[-1].message if measurements else "no measurement"
        return Verdict(Outcome.INCONCLUSIVE, f"window ended without data: {why}")
    if not any(m.outcome is Outcome.SUCCESSFUL for m in measurements):
        return Verdict(Outcome.INCONCLUSIVE, "window ended without a successful measurement")
    return Verdict(Outcome.SUCCESSFUL, f"{len(measurements)} measured")


def worst(verdicts: dict[str, Verdict]) -> Verdict:
    """The worst verdict, named after its gate; successful when there are none."""
    if not verdicts:
        return Verdict(Outcome.SUCCESSFUL, "no gates")
    name, verdict = max(verdicts.items(), key=lambda item: item[1].outcome.severity)
    return Verdict(verdict.outcome, f"{name}: {verdict.reason}")
