"""Rollout progress as metrics, scraped over HTTP from records in MongoDB."""

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.parser import text_string_to_metric_families

from rollout.adapters.run_state import RunStateStore
from rollout.lifecycle.statuses import Status
from rollout.reporting.exporter import RolloutCollector
from rollout.sandbox.processes import free_port

pytestmark = pytest.mark.integration


def test_the_exporter_serves_percentage_status_gates_and_outcomes(shop_db: Any) -> None:
    runs = RunStateStore(shop_db.rollout_runs)
    runs.claim("orders", "run-1", "v2", timedelta(minutes=5))
    for pct, outcome, errors in ((10, "successful", 0.001), (25, "failed", 0.12)):
        runs.step(
            "orders",
            {
                "phase": "full-launch",
                "step": f"{pct}% of users",
                "audience": f"{pct}%",
                "percentage": pct,
                "outcome": outcome,
                "reason": "",
                "values": {"error-ratio": errors, "p95": None},
                "at": datetime.now(UTC),
            },
        )
    runs.claim("checkout", "run-2", "v7", timedelta(minutes=5))
    runs.move("checkout", Status.STEPPING, by="run run-2", why="ramp", run_id="run-2")
    runs.move("checkout", Status.PROMOTED, by="run run-2", why="done", run_id="run-2")
    runs.claim("payments", "run-3", "v4", timedelta(minutes=5))
    runs.step("payments", {"phase": "ramp", "percentage": 50, "outcome": "successful", "values": {}})
    runs.take_over("payments", "rollback-1")
    registry = CollectorRegistry()
    registry.register(RolloutCollector(runs.documents))
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    finally:
        server.shutdown()
        thread.join(5)
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert samples[("rollout_traffic_percentage", (("plan", "orders"),))] == 25
    assert samples[("rollout_steps_done", (("plan", "orders"),))] == 2
    assert (
        samples[("rollout_status", (("phase", "full-launch"), ("plan", "orders"), ("status", "checking")))]
        == 1
    )
    assert samples[("rollout_gate_value", (("gate", "error-ratio"), ("plan", "orders")))] == 0.12
    assert ("rollout_gate_value", (("gate", "p95"), ("plan", "orders"))) not in samples  # no data is not 0
    assert samples[("rollout_step_outcomes", (("outcome", "failed"), ("plan", "orders")))] == 1
    assert samples[("rollout_status", (("phase", ""), ("plan", "checkout"), ("status", "promoted")))] == 1
    # A rollback in progress has already put traffic at 0: the last step's 50 % is history.
    assert samples[("rollout_traffic_percentage", (("plan", "payments"),))] == 0
