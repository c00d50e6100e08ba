"""Rollout progress as Prometheus metrics, read from the persisted run records."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from rollout.lifecycle.statuses import Status, parse_status

TRAFFIC_OFF = frozenset({Status.ROLLING_BACK, Status.ROLLED_BACK, Status.ROLLBACK_INCOMPLETE})
"""Statuses in which the new path takes no one: a rollback turns traffic off first."""


class RolloutCollector(Collector):
    """Reads the run records at every scrape (``records``, e.g. :meth:`RunStateStore.documents`):
    current percentage, steps, status and gate values."""

    def __init__(self, records: Callable[[], list[dict[str, Any]]]) -> None:
        self._records = records

    def collect(self) -> Iterator[Metric]:
        """The metrics of every plan on record."""
        percentage = GaugeMetricFamily(
            "rollout_traffic_percentage",
            "Percentage of users on the new path at the last step.",
            labels=["plan"],
        )
        steps = GaugeMetricFamily(
            "rollout_steps_done", "Traffic steps done in the last run.", labels=["plan"]
        )
        status = GaugeMetricFamily(
            "rollout_status", "1 for the last run's status.", labels=["plan", "status", "phase"]
        )
        gates = GaugeMetricFamily(
            "rollout_gate_value", "Last measured value of each gate.", labels=["plan", "gate"]
        )
        outcomes = GaugeMetricFamily(
            "rollout_step_outcomes", "Steps of the last run by outcome.", labels=["plan", "outcome"]
        )
        for doc in self._records():
            plan, records = str(doc["_id"]), doc.get("steps", [])
            last = records[-1] if records else {}
            current = parse_status(str(doc.get("status")))
            on_new_path = 0.0 if current in TRAFFIC_OFF else float(last.get("percentage", 0.0))
            percentage.add_metric([plan], on_new_path)
            steps.add_metric([plan], float(len(records)))
            status.add_metric([plan, current.value, str(last.get("phase", ""))], 1.0)
            for gate, value in (last.get("values") or {}).items():
                if value is not None:
                    gates.add_metric([plan, gate], float(value))
            for outcome, count in Counter(str(r.get("outcome")) for r in records).items():
                outcomes.add_metric([plan, outcome], float(count))
        yield from (percentage, steps, status, gates, outcomes)
