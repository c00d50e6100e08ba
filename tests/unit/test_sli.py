from datetime import timedelta

from rollout.analysis.sli import builtin_query, quote, render, traffic_share_query
from rollout.plan.model import SliSettings

SETTINGS = SliSettings(selector={"job": "orders"})


def test_quote_escapes_what_would_break_out_of_a_label() -> None:
    assert quote('a"b') == '"a\\"b"'
    assert quote("a\\b") == '"a\\\\b"'
    assert quote("x\ny") == '"x\\ny"'


def test_error_ratio_counts_missing_errors_as_zero_but_never_missing_traffic() -> None:
    q = builtin_query("error_ratio", SETTINGS, "candidate", timedelta(minutes=1))
    assert q == (
        '(sum(rate(http_requests_total{job="orders", variant="candidate", status=~"5.."}[1m]))'
        ' or vector(0)) / sum(rate(http_requests_total{job="orders", variant="candidate"}[1m]))'
    )


def test_latency_quantiles_use_histogram_quantile_by_le() -> None:
    q = builtin_query("latency_p99", SETTINGS, "candidate", timedelta(seconds=30))
    assert q.startswith("histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{")
    assert "[30s]" in q


def test_variant_values_are_escaped() -> None:
    q = builtin_query("latency_avg", SETTINGS, 'x"}) or vector(1', timedelta(minutes=1))
    assert 'variant="x\\"}) or vector(1"' in q


def test_render_and_share() -> None:
    assert render('rate(x{v="{{variant}}"}[1m])', "candidate") == 'rate(x{v="candidate"}[1m])'
    assert "variant=" not in traffic_share_query(SETTINGS, timedelta(seconds=10)).split(" / ")[1]
