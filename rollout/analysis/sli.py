"""PromQL for the built-in SLIs, scoped to one variant, with label values escaped safely."""

from __future__ import annotations

from datetime import timedelta

from rollout.durations import format_duration
from rollout.plan.model import BuiltinSli, SliSettings


def quote(value: str) -> str:
    """A PromQL string literal holding ``value`` exactly."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def matchers(settings: SliSettings, variant: str | None, extra: str = "") -> str:
    """The label matchers ``{...}`` for the plan's selector, a variant and ``extra``."""
    parts = [f"{name}={quote(value)}" for name, value in sorted(settings.selector.items())]
    if variant is not None:
        parts.append(f"{settings.variant_label}={quote(variant)}")
    if extra:
        parts.append(extra)
    return "{" + ", ".join(parts) + "}"


def builtin_query(sli: BuiltinSli, settings: SliSettings, variant: str | None, window: timedelta) -> str:
    """The PromQL of a built-in SLI for ``variant`` (None: the whole service) over ``window``.

    A numerator that may have no series yet (no 5xx so far) falls back to 0 with
    ``or vector(0)``; a denominator never does, so "no traffic" stays "no data".
    """
    w = format_duration(window)
    req, dur = settings.requests_metric, settings.duration_metric
    all_requests = f"sum(rate({req}{matchers(settings, variant)}[{w}]))"
    if sli == "error_ratio":
        failing = matchers(settings, variant, 'status=~"5.."')
        errors = f"sum(rate({req}{failing}[{w}]))"
        return f"({errors} or vector(0)) / {all_requests}"
    if sli == "success_rate":
        passing = matchers(settings, variant, 'status!~"5.."')
        good = f"sum(rate({req}{passing}[{w}]))"
        return f"({good} or vector(0)) / {all_requests}"
    if sli in ("latency_p95", "latency_p99"):
        q = "0.95" if sli == "latency_p95" else "0.99"
        buckets = f"sum by (le) (rate({dur}_bucket{matchers(settings, variant)}[{w}]))"
        return f"histogram_quantile({q}, {buckets})"
    if sli == "latency_avg":
        total = f"sum(rate({dur}_sum{matchers(settings, variant)}[{w}]))"
        count = f"sum(rate({dur}_count{matchers(settings, variant)}[{w}]))"
        return f"{total} / {count}"
    raise ValueError(f"unknown SLI {sli!r}")


def traffic_share_query(settings: SliSettings, window: timedelta) -> str:
    """The candidate's share of all requests over ``window``."""
    w = format_duration(window)
    req = settings.requests_metric
    candidate = f"sum(rate({req}{matchers(settings, settings.candidate)}[{w}]))"
    return f"({candidate} or vector(0)) / sum(rate({req}{matchers(settings, None)}[{w}]))"


def render(query: str, variant: str) -> str:
    """Fill a user's query template: ``{{variant}}`` becomes the quoted-safe variant value."""
    return query.replace("{{variant}}", quote(variant)[1:-1])
