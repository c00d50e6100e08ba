"""Watching a traffic step: SLI values of the candidate, measured every interval."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from rollout.adapters.clients import Clients
from rollout.clock import Clock, SystemClock
from rollout.errors import RolloutError
from rollout.plan.model import Gate, Targets, Window
from rollout.sli import builtin_query, render, traffic_share_query
from tasks.secrets import prefect_resolver


@dataclass(frozen=True)
class Observation:
    """The last value read for each gate, and the candidate's share of traffic."""

    measurements: int
    traffic_share: float | None
    values: dict[str, float | None]


def gate_query(gate: Gate, targets: Targets) -> str | None:
    """The PromQL a threshold gate reads for the candidate (None for comparisons)."""
    settings = targets.prometheus.sli
    if gate.sli is not None:
        return builtin_query(gate.sli, settings, settings.candidate, gate.rate_window)
    if gate.query is not None:
        return render(gate.query, settings.candidate)
    return None


def _read(clients: Clients, query: str) -> float | None:
    try:
        samples = clients.prometheus.query(query)
    except RolloutError as error:
        get_run_logger().warning("query failed: %s", error)
        return None
    values = [s.value for s in samples if s.is_number]
    return values[0] if len(values) == 1 else None


@task(name="observe-window", cache_policy=NO_CACHE)
def observe_window(
    targets: Targets, window: Window, gates: dict[str, Gate], clock: Clock | None = None
) -> Observation:
    """Measure every gate of ``window`` each interval and return the last values read."""
    clock = clock or SystemClock()
    logger = get_run_logger()
    rate_window = min((g.rate_window for g in gates.values()), default=timedelta(seconds=30))
    share_query = traffic_share_query(targets.prometheus.sli, rate_window)
    values: dict[str, float | None] = {}
    share: float | None = None
    clock.sleep(window.initial_delay.total_seconds())
    with Clients(targets, prefect_resolver) as clients:
        for n in range(window.measurements):
            if n:
                clock.sleep(window.interval.total_seconds())
            share = _read(clients, share_query)
            for name in window.gates:
                query = gate_query(gates[name], targets)
                values[name] = _read(clients, query) if query else None
            shown = ", ".join(f"{k}={_fmt(v)}" for k, v in values.items())
            logger.info(
                "measurement %d/%d: candidate share %s; %s",
                n + 1,
                window.measurements,
                _fmt(share),
                shown or "no gates",
            )
    return Observation(window.measurements, share, values)


def _fmt(value: float | None) -> str:
    return "no data" if value is None or math.isnan(value) else f"{value:.4g}"
