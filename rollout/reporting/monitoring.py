"""Monitoring shipped with a plan: Prometheus alert rules from its gates, and a Grafana dashboard."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from rollout.analysis.sli import builtin_query, matchers, render
from rollout.plan import Plan
from rollout.plan.model import SliSettings

ALERT_WINDOW = timedelta(minutes=5)
SEVERITY_LABEL = {"SEV1": "critical", "SEV2": "warning", "SEV3": "info"}


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", name) if part)


def sli_settings(plan: Plan) -> SliSettings:
    """The plan's SLI metric names; the sandbox's when the plan names no targets."""
    if plan.targets is not None:
        return plan.targets.prometheus.sli
    return SliSettings(selector={"job": "orders"})


def alert_rules(plan: Plan, settings: SliSettings | None = None) -> dict[str, Any]:
    """A rule group: the runbooks' standing alerts for the service, then one alert per threshold gate.

    Standing alerts (post-deployment directive): ``High5xxErrorRate`` above 2 % for 5 minutes and
    ``HighP95Latency`` above 2 s for 5 minutes, over all of the service's traffic. Gate alerts watch
    the candidate with the gate's own threshold, for 5 minutes, while it serves traffic.
    """
    settings = settings or sli_settings(plan)
    service = {"plan": plan.name}
    rules: list[dict[str, Any]] = [
        {
            "alert": "High5xxErrorRate",
            "expr": f"{builtin_query('error_ratio', settings, None, ALERT_WINDOW)} > 0.02",
            "for": "5m",
            "labels": {**service, "severity": "critical"},
            "annotations": {
                "summary": "More than 2% of requests fail with a 5xx",
                "description": "5xx ratio {{ $value | humanizePercentage }} over 5m.",
            },
        },
        {
            "alert": "HighP95Latency",
            "expr": f"{builtin_query('latency_p95', settings, None, ALERT_WINDOW)} > 2",
            "for": "5m",
            "labels": {**service, "severity": "critical"},
            "annotations": {
                "summary": "p95 latency above 2 s",
                "description": "p95 latency {{ $value | humanizeDuration }} over 5m.",
            },
        },
    ]
    severity = SEVERITY_LABEL[plan.rollback.severity]
    for name, gate in plan.gates.items():
        if gate.compare is not None or gate.data is not None:
            continue  # a comparison has no single series; a data gate is no metric at all
        if gate.sli is not None:
            query = builtin_query(gate.sli, settings, settings.candidate, ALERT_WINDOW)
        else:
            query = render(gate.query or "", settings.candidate)
        for bound, op in ((gate.max, ">"), (gate.min, "<")):
            if bound is None:
                continue
            rules.append(
                {
                    "alert": f"RolloutGate{_camel(name)}",
                    "expr": f"({query}) {op} {bound:g}",
                    "for": "5m",
                    "labels": {**service, "gate": name, "severity": severity},
                    "annotations": {
                        "summary": f"Gate {name} of {plan.name} {_crossed(op)} {bound:g}",
                        "description": f"The candidate's {name} is {{{{ $value }}}}: roll back "
                        f"(`rollout rollback` or the emergency-rollback deployment).",
                    },
                }
            )
    return {"groups": [{"name": f"rollout-{plan.name}", "rules": rules}]}


def _crossed(op: str) -> str:
    return "above" if op == ">" else "below"


def _panel(title: str, targets: list[tuple[str, str]], y: int, unit: str) -> dict[str, Any]:
    return {
        "type": "timeseries",
        "title": title,
        "gridPos": {"h": 8, "w": 12, "x": 0 if y % 16 == 0 else 12, "y": y - (y % 16)},
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "targets": [
            {"refId": chr(ord("A") + i), "expr": expr, "legendFormat": legend}
            for i, (expr, legend) in enumerate(targets)
        ],
    }


def dashboard(plan: Plan, settings: SliSettings | None = None) -> dict[str, Any]:
    """A Grafana dashboard: error ratio, p95 and p99 per variant, traffic on the new path, phase marks."""
    settings = settings or sli_settings(plan)
    window = timedelta(minutes=1)
    both = [settings.candidate, settings.stable]
    share = f"sum(rate({settings.requests_metric}{matchers(settings, settings.candidate)}[1m])) / " + (
        f"sum(rate({settings.requests_metric}{matchers(settings, None)}[1m]))"
    )
    flag = f'feature_flag_percentage{{flag="{plan.flag}"}}'
    panels = [
        _panel(
            "5xx ratio",
            [(builtin_query("error_ratio", settings, v, window), v) for v in both],
            0,
            "percentunit",
        ),
        _panel("p95 latency", [(builtin_query("latency_p95", settings, v, window), v) for v in both], 8, "s"),
        _panel(
            "p99 latency", [(builtin_query("latency_p99", settings, v, window), v) for v in both], 16, "s"
        ),
        _panel(
            "traffic on the new path",
            [(share, "candidate share"), (f"{flag} / 100", plan.flag)],
            24,
            "percentunit",
        ),
    ]
    return {
        "title": f"Rollout: {plan.name}",
        "uid": f"rollout-{plan.name}"[:40],
        "schemaVersion": 39,
        "tags": ["rollout"],
        "time": {"from": "now-6h", "to": "now"},
        "templating": {
            "list": [
                {"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Prometheus"}
            ]
        },
        "annotations": {
            "list": [
                {
                    "name": "flag changes",
                    "datasource": {"type": "prometheus", "uid": "${datasource}"},
                    "enable": True,
                    "expr": f"changes({flag}[1m]) > 0",
                    "titleFormat": "traffic step",
                    "iconColor": "orange",
                }
            ]
        },
        "panels": panels,
    }
