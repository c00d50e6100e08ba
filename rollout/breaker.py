"""Circuit breakers around external services, so a dead dependency fails fast instead of stalling.

pybreaker keeps the state (closed, open, half-open). The defaults are the
post-deployment directive's: open after 5 consecutive transient failures, try
again after 60 s. Permanent errors (a refused query) say nothing about the
service's health and do not count.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

import pybreaker

from rollout.errors import ServiceUnavailable, is_transient

T = TypeVar("T")
FAIL_MAX = 5
RESET_TIMEOUT_SECONDS = 60.0

_breakers: dict[tuple[str, str], pybreaker.CircuitBreaker] = {}
_lock = threading.Lock()


class CircuitOpen(ServiceUnavailable):
    """The service failed too often lately; the call was not even tried."""


def breaker(service: str, endpoint: str) -> pybreaker.CircuitBreaker:
    """The process-wide breaker of one service endpoint."""
    with _lock:
        found = _breakers.get((service, endpoint))
        if found is None:
            found = pybreaker.CircuitBreaker(
                fail_max=FAIL_MAX,
                reset_timeout=RESET_TIMEOUT_SECONDS,
                exclude=[lambda error: not is_transient(error)],
                name=f"{service} {endpoint}",
                throw_new_error_on_trip=False,
            )
            _breakers[(service, endpoint)] = found
        return found


def guarded(service: str, endpoint: str, call: Callable[[], T]) -> T:
    """Run ``call`` through the endpoint's breaker; an open breaker raises :class:`CircuitOpen` at once."""
    current = breaker(service, endpoint)
    try:
        result: T = current.call(call)
    except pybreaker.CircuitBreakerError as error:
        raise CircuitOpen(
            service,
            f"{endpoint}: circuit open after {current.fail_counter or FAIL_MAX} failures in a row; "
            f"not called again before {current.reset_timeout:.0f} s have passed",
        ) from error
    return result


def reset_all() -> None:
    """Close every breaker (for tests and a fresh start)."""
    with _lock:
        for each in _breakers.values():
            each.close()
