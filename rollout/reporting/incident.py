"""The rollback report, on the backend handbook's template."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from rollout.redact import redact

SEVERITY_TARGETS = {"SEV1": "15 min", "SEV2": "1 h", "SEV3": "4 h"}


@dataclass(frozen=True)
class StepRecord:
    """One rollback step as it went."""

    name: str
    ok: bool
    detail: str
    started_at: datetime
    finished_at: datetime


@dataclass(frozen=True)
class Incident:
    """Everything the report states."""

    plan: str
    release: str
    version_restored: str
    severity: str
    cause: str
    started_at: datetime
    finished_at: datetime
    steps: tuple[StepRecord, ...]
    first_bad_at: datetime | None = None
    traffic_off_at: datetime | None = None
    decisions: tuple[str, ...] = ()
    """The people's decisions during the rollout (who, when, boxes ticked, note)."""

    @property
    def ok(self) -> bool:
        """Whether every step succeeded."""
        return all(step.ok for step in self.steps)


def _duration(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if minutes else f"{rest} s"


def incident_markdown(incident: Incident, chart: str | None = None) -> str:
    """The report as Markdown: facts, each step's result, decisions, data restored, the chart (a
    file name or a ``data:`` URI), and room for lessons."""
    took = (incident.finished_at - incident.started_at).total_seconds()
    restored = [s for s in incident.steps if s.name == "data restore"]
    lines = [
        f"# Rollback of {incident.plan}: {'complete' if incident.ok else 'INCOMPLETE'}",
        "",
        "| | |",
        "|---|---|",
        f"| time | {incident.started_at:%Y-%m-%d %H:%M:%S} UTC |",
        f"| severity | {incident.severity} (resolve within {SEVERITY_TARGETS.get(incident.severity, '?')}) |",
        f"| cause | {incident.cause} |",
        f"| release rolled back | {incident.release} |",
        f"| version restored | {incident.version_restored} |",
        f"| start / end | {incident.started_at:%H:%M:%S} / {incident.finished_at:%H:%M:%S} UTC |",
        f"| duration | {_duration(took)} |",
    ]
    if incident.first_bad_at and incident.traffic_off_at:
        safety = (incident.traffic_off_at - incident.first_bad_at).total_seconds()
        lines.append(f"| time to safety | {safety:.1f} s from the first failing sample to traffic off |")
    lines += ["", "## Steps", "", "| step | result | took | detail |", "|---|---|---:|---|"]
    for step in incident.steps:
        took_step = (step.finished_at - step.started_at).total_seconds()
        detail = step.detail.replace("|", "\\|").replace("\n", " ")
        lines.append(f"| {step.name} | {'ok' if step.ok else '**FAILED**'} | {took_step:.1f} s | {detail} |")
    if incident.decisions:
        lines += ["", "## Decisions", ""] + [f"- {decision}" for decision in incident.decisions]
    lines += ["", "## Data restored", ""]
    lines += [f"- {s.detail}" for s in restored] or ["- none: the plan restores no data"]
    if chart:
        lines += ["", "## Gated metrics over the rollout", "", f"![gated metrics]({chart})"]
    lines += [
        "",
        "## Lessons",
        "",
        "- _What went wrong, why the gates caught it (or not), what changes._",
        "",
    ]
    return redact("\n".join(lines))


def failed_steps(steps: Sequence[StepRecord]) -> list[str]:
    """Names of the steps that did not succeed."""
    return [step.name for step in steps if not step.ok]
