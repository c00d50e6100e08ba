"""The incident report: Markdown with a chart of the gated metrics, as a file and a Prefect artifact."""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from rollout.adapters.clients import Clients
from rollout.chart import Points, metrics_chart
from rollout.errors import RolloutError
from rollout.incident import Incident, incident_markdown
from rollout.plan import Plan
from rollout.plan.model import Targets
from tasks.observe import gate_query
from tasks.secrets import prefect_resolver

REPORTS_DIR = "ROLLOUT_REPORTS_DIR"
"""Environment variable naming where reports are written (default: ``reports`` in the working directory)."""
CHART_POINTS = 200


def _series(targets: Targets, plan: Plan, start: datetime, end: datetime) -> dict[str, Points]:
    """Each threshold gate's candidate metric over ``start``..``end``; unreadable gates are left out."""
    step = max(1.0, (end - start).total_seconds() / CHART_POINTS)
    found: dict[str, Points] = {}
    with Clients(targets, prefect_resolver) as clients:
        for name, gate in plan.gates.items():
            query = gate_query(gate, targets)
            if query is None:
                continue
            try:
                series = clients.prometheus.query_range(query, start, end, step)
            except RolloutError as error:
                get_run_logger().warning("chart: gate %s not read: %s", name, error)
                continue
            if series:
                found[name] = series[0].points
    return found


@task(name="incident-report", cache_policy=NO_CACHE)
def write_incident_report(
    targets: Targets, plan: Plan, incident: Incident, rollout_started: datetime | None
) -> str:
    """Write ``incident.md`` and ``metrics.png`` in a folder of their own; returns the report's path."""
    folder = Path(os.environ.get(REPORTS_DIR, "reports")) / f"{plan.name}-{incident.started_at:%Y%m%d-%H%M%S}"
    start = (rollout_started or incident.started_at) - timedelta(minutes=1)
    marks = [(incident.started_at, "rollback")]
    if rollout_started is not None:
        marks.insert(0, (rollout_started, "rollout"))
    if incident.first_bad_at is not None:
        marks.append((incident.first_bad_at, "first failing sample"))
    limits = {name: gate.max for name, gate in plan.gates.items() if gate.max is not None}
    chart = metrics_chart(
        _series(targets, plan, start, incident.finished_at),
        limits,
        marks,
        folder / "metrics.png",
        f"{plan.name}: gated metrics of the candidate",
    )
    markdown = incident_markdown(incident, chart.name)
    path = folder / "incident.md"
    path.write_text(markdown)
    create_markdown_artifact(
        incident_markdown(incident, None) + f"\nChart and report files: `{folder.resolve()}`\n",
        key=f"{plan.name}-incident-report",
        description=f"Rollback of {plan.name} ({incident.severity})",
    )
    get_run_logger().info("incident report: %s", path.resolve())
    return str(path.resolve())
