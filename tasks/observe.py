"""Watching a traffic step: every gate read from Prometheus each interval and judged."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from rollout.adapters.clients import Clients
from rollout.analysis.compare import judge
from rollout.analysis.gates import Measurement, classify, limit_text, value_text
from rollout.analysis.sli import builtin_query, render, traffic_share_query
from rollout.data.data_gates import check_data_gate, read_data_gate
from rollout.errors import GateQueryInvalid, RolloutError, ServiceRejected
from rollout.lifecycle.progression import Round
from rollout.plan.model import Gate, Targets
from tasks.retries import TRANSIENT_RETRIES
from tasks.secrets import prefect_resolver
from tasks.traffic import check_drift


def gate_query(gate: Gate, targets: Targets, variant: str | None = None) -> str | None:
    """The PromQL a threshold gate reads (None for comparisons and data gates); the candidate by default."""
    settings = targets.prometheus.sli
    variant = variant or settings.candidate
    if gate.sli is not None:
        return builtin_query(gate.sli, settings, variant, gate.rate_window)
    if gate.query is not None:
        return render(gate.query, variant)
    return None


def comparison_queries(gate: Gate, targets: Targets, variant: str) -> dict[str, str]:
    """PromQL of each compared metric for one variant."""
    assert gate.compare is not None
    settings = targets.prometheus.sli
    return {
        m.name: builtin_query(m.sli, settings, variant, gate.rate_window)
        if m.sli
        else render(m.query or "", variant)
        for m in gate.compare.metrics
    }


ReadGate = Callable[[str, Gate, datetime], Measurement]
"""Reads one gate at a time and judges the reading."""


def measure_with(clients: Clients) -> ReadGate:
    """A ``ReadGate`` that reads gates from Prometheus through ``clients``."""
    targets = clients.targets

    def measure(name: str, gate: Gate, at: datetime) -> Measurement:
        try:
            if gate.compare is not None:
                return _compare(name, gate, at)
            if gate.data is not None:
                return classify(name, gate, read_data_gate(clients.db, name, gate.data, at), at)
            query = gate_query(gate, targets)
            assert query is not None
            samples = clients.prometheus.query(query)
        except RolloutError as error:
            return classify(name, gate, None, at, error=str(error))
        if len(samples) != 1:
            return classify(name, gate, None, at, error=f"expected one series, got {len(samples)}")
        return classify(name, gate, samples[0].value, at)

    def _compare(name: str, gate: Gate, at: datetime) -> Measurement:
        assert gate.compare is not None
        start, step = at - gate.compare.lookback, max(gate.rate_window.total_seconds() / 4, 1.0)
        samples: dict[str, tuple[list[float], list[float]]] = {}
        settings = targets.prometheus.sli
        cand = comparison_queries(gate, targets, settings.candidate)
        base = comparison_queries(gate, targets, settings.stable)
        for metric in gate.compare.metrics:
            series = [clients.prometheus.query_range(q[metric.name], start, at, step) for q in (cand, base)]
            values = [[v for s in found for _, v in s.points] for found in series]
            samples[metric.name] = (values[0], values[1])
        result = judge(gate.compare, samples)
        return Measurement(name, result.outcome, result.score, at, result.reason)

    return measure


def take_round(clients: Clients, gates: Mapping[str, Gate], at: datetime) -> Round:
    """Read every gate once at ``at`` and judge each reading."""
    measure = measure_with(clients)
    return Round(at, tuple(measure(name, gate, at) for name, gate in gates.items()))


def describe_round(taken: Round) -> str:
    """``error_ratio=0.002 (successful), p95=0.31 (successful)``, or ``no gates``."""
    return (
        ", ".join(
            f"{m.gate}={'no data' if m.value is None else format(m.value, '.4g')} ({m.outcome})"
            for m in taken.readings
        )
        or "no gates"
    )


@task(name="measure-gates", task_run_name="measure {where} ({number}/{total})", cache_policy=NO_CACHE)
def measure_round(
    targets: Targets,
    gates: dict[str, Gate],
    number: int,
    total: int,
    where: str = "",
    plan: str = "",
    flags: tuple[str, ...] = (),
) -> Round:
    """One round of a window: every gate read from Prometheus now and judged (errors are readings too).

    Given the ``plan`` and the ``flags`` it writes, each is first compared with what the rollout
    last wrote to it: someone else's change raises FlagDrift, and the rollout holds.
    """
    logger = get_run_logger()
    with Clients(targets, prefect_resolver) as clients:
        if plan:
            check_drift(clients, plan, flags)
        taken = take_round(clients, gates, datetime.now(UTC))
        rate_window = min((g.rate_window for g in gates.values()), default=timedelta(seconds=30))
        try:
            shares = clients.prometheus.query(traffic_share_query(targets.prometheus.sli, rate_window))
            share = f"{shares[0].value:.1%}" if shares and shares[0].is_number else "no data"
        except RolloutError:
            share = "unknown"
    logger.info("measurement %d/%d: candidate share %s; %s", number, total, share, describe_round(taken))
    return taken


@task(name="check-gate-queries", cache_policy=NO_CACHE, **TRANSIENT_RETRIES)
def check_gate_queries(targets: Targets, gates: dict[str, Gate]) -> None:
    """Evaluate every gate once, so a typo fails before any change: Prometheus queries, data gates."""
    with Clients(targets, prefect_resolver) as clients:
        for name, gate in gates.items():
            if gate.data is not None:
                value = check_data_gate(clients.db, name, gate.data, datetime.now(UTC))
                get_run_logger().info(
                    "data gate %s reads %s now (%s)", name, value_text(value), limit_text(gate)
                )
                continue
            queries = (
                [
                    q
                    for v in (targets.prometheus.sli.candidate, targets.prometheus.sli.stable)
                    for q in comparison_queries(gate, targets, v).values()
                ]
                if gate.compare is not None
                else [gate_query(gate, targets) or ""]
            )
            for query in queries:
                try:
                    clients.prometheus.query(query)
                except ServiceRejected as error:
                    raise GateQueryInvalid(
                        f"gate {name}: Prometheus refused {query}: {error.detail}"
                    ) from error
