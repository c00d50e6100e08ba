"""An observe window: measure every gate each interval, stop early on a decisive result."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from rollout.clock import Clock
from rollout.gates import Measurement, Outcome, Verdict, gate_verdict, worst
from rollout.plan.model import Gate, Window

Measure = Callable[[str, Gate, datetime], Measurement]
"""Reads one gate at a time and judges the reading (``rollout.gates.classify`` for thresholds)."""


@dataclass(frozen=True)
class WindowResult:
    """How a window ended."""

    verdict: Verdict
    gates: dict[str, Verdict]
    measurements: tuple[Measurement, ...]
    first_bad_at: datetime | None

    def last_values(self) -> dict[str, float | None]:
        """The latest value read per gate."""
        values: dict[str, float | None] = {}
        for m in self.measurements:
            values[m.gate] = m.value
        return values


def run_window(
    window: Window,
    gates: Mapping[str, Gate],
    measure: Measure,
    clock: Clock,
    on_measurement: Callable[[int, dict[str, Verdict], list[Measurement]], None] | None = None,
) -> WindowResult:
    """Measure ``gates`` every ``window.interval`` and judge them as Argo Rollouts does.

    Returns as soon as a gate fails, errors or turns inconclusive, so a bad
    release is acted on at the first decisive measurement, not at the window's end.
    """
    history: dict[str, list[Measurement]] = {name: [] for name in gates}
    first_bad: datetime | None = None
    verdicts: dict[str, Verdict] = {}
    clock.sleep(window.initial_delay.total_seconds())
    total = window.measurements
    for n in range(total):
        if n:
            clock.sleep(window.interval.total_seconds())
        now = clock.now()
        taken = []
        for name, gate in gates.items():
            m = measure(name, gate, now)
            history[name].append(m)
            taken.append(m)
            if first_bad is None and m.outcome in (Outcome.FAILED, Outcome.ERROR, Outcome.INCONCLUSIVE):
                first_bad = m.at
        final = n == total - 1
        verdicts = {name: gate_verdict(gates[name], ms, final=final) for name, ms in history.items()}
        if on_measurement is not None:
            on_measurement(n, verdicts, taken)
        overall = worst(verdicts)
        if overall.outcome.aborts or overall.outcome is Outcome.INCONCLUSIVE:
            return WindowResult(overall, verdicts, _flatten(history), first_bad)
    overall = worst(verdicts) if gates else Verdict(Outcome.SUCCESSFUL, "no gates")
    return WindowResult(overall, verdicts, _flatten(history), first_bad)


def _flatten(history: dict[str, list[Measurement]]) -> tuple[Measurement, ...]:
    return tuple(sorted((m for ms in history.values() for m in ms), key=lambda m: m.at))
