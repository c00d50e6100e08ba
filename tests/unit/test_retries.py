from typing import Any

from prefect.states import Failed

from rollout.errors import GateQueryInvalid, ServiceUnavailable
from tasks.retries import TRANSIENT_RETRIES, retry_transient


def check(error: Exception) -> bool:
    return retry_transient(None, None, Failed(data=error))  # type: ignore[arg-type]


def test_transient_errors_are_retried() -> None:
    assert check(ServiceUnavailable("Prometheus", "connection refused"))


def test_permanent_errors_are_not_retried() -> None:
    assert not check(GateQueryInvalid("gate x: parse error"))


def test_foreign_errors_are_not_retried() -> None:
    assert not check(KeyError("x"))


def test_the_policy_backs_off() -> None:
    policy: dict[str, Any] = TRANSIENT_RETRIES
    assert policy["retries"] == 3
    assert policy["retry_delay_seconds"] == [1.0, 2.0, 4.0]
