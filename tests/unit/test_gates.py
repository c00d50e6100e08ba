from datetime import UTC, datetime

from rollout.analysis.gates import Measurement, Outcome, Verdict, classify, gate_verdict, worst
from rollout.plan.model import Gate

AT = datetime(2026, 1, 1, tzinfo=UTC)
GATE = Gate(sli="error_ratio", max=0.05)


def m(outcome: Outcome, value: float | None = 0.0) -> Measurement:
    return Measurement("g", outcome, value, AT, outcome.value)


def test_a_value_within_bounds_succeeds() -> None:
    assert classify("g", GATE, 0.01, AT).outcome is Outcome.SUCCESSFUL


def test_a_value_above_max_fails() -> None:
    assert classify("g", GATE, 0.2, AT).outcome is Outcome.FAILED


def test_a_value_below_min_fails() -> None:
    assert classify("g", Gate(sli="success_rate", min=0.99), 0.9, AT).outcome is Outcome.FAILED


def test_no_data_is_an_error_never_a_success() -> None:
    assert classify("g", GATE, None, AT).outcome is Outcome.ERROR


def test_nan_is_an_error_never_a_success() -> None:
    assert classify("g", GATE, float("nan"), AT).outcome is Outcome.ERROR


def test_a_query_error_is_an_error() -> None:
    got = classify("g", GATE, None, AT, error="Prometheus unavailable")
    assert (got.outcome, got.message) == (Outcome.ERROR, "Prometheus unavailable")


def test_one_failure_over_a_zero_limit_fails_at_once() -> None:
    assert gate_verdict(GATE, [m(Outcome.FAILED)], final=False).outcome is Outcome.FAILED


def test_failures_within_the_limit_keep_running() -> None:
    gate = Gate(sli="error_ratio", max=0.05, failure_limit=1)
    assert gate_verdict(gate, [m(Outcome.FAILED)], final=False).outcome is Outcome.RUNNING
    assert gate_verdict(gate, [m(Outcome.FAILED)] * 2, final=False).outcome is Outcome.FAILED


def test_errors_in_a_row_over_the_limit_abort() -> None:
    assert gate_verdict(GATE, [m(Outcome.ERROR)] * 4, final=False).outcome is Outcome.RUNNING
    assert gate_verdict(GATE, [m(Outcome.ERROR)] * 5, final=False).outcome is Outcome.ERROR


def test_a_success_resets_the_consecutive_error_count() -> None:
    history = [m(Outcome.ERROR)] * 4 + [m(Outcome.SUCCESSFUL)] + [m(Outcome.ERROR)] * 4
    assert gate_verdict(GATE, history, final=False).outcome is Outcome.RUNNING


def test_inconclusive_over_the_limit_is_inconclusive() -> None:
    assert gate_verdict(GATE, [m(Outcome.INCONCLUSIVE)], final=False).outcome is Outcome.INCONCLUSIVE


def test_a_window_ending_on_an_error_is_not_a_pass() -> None:
    history = [m(Outcome.SUCCESSFUL), m(Outcome.ERROR)]
    assert gate_verdict(GATE, history, final=True).outcome is Outcome.INCONCLUSIVE


def test_a_window_without_measurements_is_not_a_pass() -> None:
    assert gate_verdict(GATE, [], final=True).outcome is Outcome.INCONCLUSIVE


def test_a_clean_window_succeeds() -> None:
    assert gate_verdict(GATE, [m(Outcome.SUCCESSFUL)] * 3, final=True).outcome is Outcome.SUCCESSFUL


def test_the_worst_gate_wins() -> None:
    verdicts = {
        "a": Verdict(Outcome.SUCCESSFUL, ""),
        "b": Verdict(Outcome.FAILED, "too many errors"),
        "c": Verdict(Outcome.INCONCLUSIVE, ""),
    }
    assert worst(verdicts) == Verdict(Outcome.FAILED, "b: too many errors")
