"""The incident report: Markdown with a chart of the gated metrics, as a file and a Prefect artifact."""

from __future__ import annotations

import base64
import os
from datetime import datetime, timedelta
from pathlib import Path
from uuid import UUID

from prefect import get_run_logger, task
from prefect.artifacts import create_link_artifact, create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.settings import get_current_settings

from rollout.adapters.clients import Clients
from rollout.errors import RolloutError
from rollout.plan import Plan
from rollout.plan.model import Targets
from rollout.reporting.chart import Points, metrics_chart
from rollout.reporting.incident import Incident, incident_markdown
from tasks.observe import gate_query
from tasks.record import find_artifact
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


def incident_key(plan: str) -> str:
    """The incident report's artifact key."""
    return f"{plan}-incident-report".lower()


def show_on_rollout(plan: str, rollback_run: UUID | None) -> None:
    """Show the rollback's incident report on the rollout's own run, with a link to the rollback run."""
    if rollback_run is None:
        return
    report = find_artifact(incident_key(plan), rollback_run)
    if report is not None and isinstance(report.data, str):
        create_markdown_artifact(report.data, key=incident_key(plan), description=report.description)
    ui = get_current_settings().ui_url
    if ui:
        create_link_artifact(
            f"{ui.rstrip('/')}/runs/flow-run/{rollback_run}",
            link_text=f"The rollback run of {plan}",
            key=f"{plan}-rollback-run".lower(),
            description=f"Every step the rollback of {plan} took, with its logs",
        )


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
    embedded = base64.b64encode(chart.read_bytes()).decode("ascii")
    create_markdown_artifact(
        incident_markdown(incident, f"data:image/png;base64,{embedded}")
        + f"\nChart and report files on the worker: `{folder.resolve()}`\n",
        key=incident_key(plan.name),
        description=f"Rollback of {plan.name} ({incident.severity})",
    )
    get_run_logger().info("incident report: %s", path.resolve())
    return str(path.resolve())
