import time

import pytest

from rollout.breaker import CircuitOpen, breaker, guarded, reset_all
from rollout.errors import ServiceRejected, ServiceUnavailable


@pytest.fixture(autouse=True)
def closed_breakers() -> None:
    reset_all()


def failing() -> None:
    raise ServiceUnavailable("Prometheus", "connection refused")


def test_five_transient_failures_open_the_circuit_and_the_sixth_call_is_not_made() -> None:
    calls: list[int] = []

    def counted() -> None:
        calls.append(1)
        failing()

    for _ in range(5):
        with pytest.raises(ServiceUnavailable):
            guarded("Prometheus", "http://a", counted)
    with pytest.raises(CircuitOpen, match="circuit open after 5 failures"):
        guarded("Prometheus", "http://a", counted)
    assert len(calls) == 5
    assert (
        guarded("Prometheus", "http://b", lambda: "other endpoints are unaffected")
        == "other endpoints are unaffected"
    )


def test_permanent_errors_do_not_count_against_the_service() -> None:
    def refused() -> None:
        raise ServiceRejected("Prometheus", "parse error")

    for _ in range(10):
        with pytest.raises(ServiceRejected):
            guarded("Prometheus", "http://c", refused)
    assert breaker("Prometheus", "http://c").current_state == "closed"


def test_after_the_reset_timeout_one_trial_call_closes_it_again() -> None:
    current = breaker("Prometheus", "http://d")
    current.reset_timeout = 0.05
    for _ in range(5):
        with pytest.raises(ServiceUnavailable):
            guarded("Prometheus", "http://d", failing)
    assert current.current_state == "open"
    time.sleep(0.06)
    assert guarded("Prometheus", "http://d", lambda: 42) == 42
    assert current.current_state == "closed"
