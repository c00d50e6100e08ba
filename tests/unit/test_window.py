from collections.abc import Sequence
from datetime import datetime, timedelta

from rollout.clock import FakeClock
from rollout.gates import Measurement, Outcome, classify
from rollout.plan.model import Gate, Window
from rollout.window import run_window

GATES = {"errors": Gate(sli="error_ratio", max=0.05)}


def readings(values: Sequence[float | None]):  # type: ignore[no-untyped-def]
    it = iter(values)

    def measure(name: str, gate: Gate, at: datetime) -> Measurement:
        return classify(name, gate, next(it), at)

    return measure


def test_a_healthy_window_takes_every_measurement_without_real_sleep() -> None:
    clock = FakeClock()
    window = Window(
        interval=timedelta(minutes=5), duration=timedelta(hours=2), initial_delay=timedelta(minutes=1)
    )
    result = run_window(window, GATES, readings([0.01] * 24), clock)
    assert result.verdict.outcome is Outcome.SUCCESSFUL
    assert len(result.measurements) == 24
    assert clock.slept == [60.0] + [300.0] * 23


def test_a_failure_stops_the_window_at_once() -> None:
    clock = FakeClock()
    window = Window(interval=timedelta(seconds=30), count=10)
    result = run_window(window, GATES, readings([0.01, 0.01, 0.2] + [0.0] * 7), clock)
    assert result.verdict.outcome is Outcome.FAILED
    assert len(result.measurements) == 3
    assert result.first_bad_at == result.measurements[-1].at
    assert sum(clock.slept) == 60


def test_missing_data_to_the_end_is_inconclusive() -> None:
    result = run_window(
        Window(interval=timedelta(seconds=1), count=3), GATES, readings([None] * 3), FakeClock()
    )
    assert result.verdict.outcome is Outcome.INCONCLUSIVE
