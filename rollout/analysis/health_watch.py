"""Probes of the service (health, smoke requests), and the post-rollback watch of its health."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from rollout.clock import Clock


@dataclass(frozen=True)
class Probe:
    """One request's outcome: whether it answered as expected, and what it answered."""

    name: str
    ok: bool
    detail: str
    transient: bool = False
    """Failed in a way that may pass if tried again: no answer, or a 5xx."""


@dataclass(frozen=True)
class WatchResult:
    """How many probes were healthy, and the first unhealthy answer if any."""

    probes: int
    healthy: int
    first_failure: str | None

    @property
    def ok(self) -> bool:
        """Healthy at every probe."""
        return self.probes > 0 and self.healthy == self.probes

    def describe(self) -> str:
        """``12/12 probes healthy``, with the first failure when there was one."""
        text = f"{self.healthy}/{self.probes} probes healthy"
        return text if self.first_failure is None else f"{text}; first failure: {self.first_failure}"


def watch(probe: Callable[[], Probe], interval: timedelta, duration: timedelta, clock: Clock) -> WatchResult:
    """Probe at once, then every ``interval`` until ``duration`` has passed."""
    end = clock.now() + duration
    probes = healthy = 0
    first_failure = None
    while True:
        result = probe()
        probes += 1
        if result.ok:
            healthy += 1
        elif first_failure is None:
            first_failure = f"{clock.now():%H:%M:%S} {result.detail}"
        if clock.now() + interval > end:
            return WatchResult(probes, healthy, first_failure)
        clock.sleep(interval.total_seconds())
