import random

from rollout.analysis.compare import Classification, judge, judge_metric
from rollout.analysis.gates import Outcome
from rollout.plan.model import ComparedMetric, Comparison

ERRORS = ComparedMetric(name="errors", sli="error_ratio", critical=True)
P95 = ComparedMetric(name="p95", sli="latency_p95")
SPEC = Comparison(metrics=[ERRORS, P95])
rng = random.Random(1)


def around(center: float, n: int = 30) -> list[float]:
    return [rng.gauss(center, center * 0.05) for _ in range(n)]


def test_same_distributions_pass() -> None:
    j = judge_metric(P95, around(0.2), around(0.2), 0.98)
    assert j.classification is Classification.PASS and j.passed


def test_a_higher_candidate_is_high_and_fails_when_increase_is_bad() -> None:
    j = judge_metric(P95, around(0.4), around(0.2), 0.98)
    assert j.classification is Classification.HIGH and not j.passed


def test_a_lower_candidate_is_low_and_passes_when_increase_is_bad() -> None:
    j = judge_metric(P95, around(0.1), around(0.2), 0.98)
    assert j.classification is Classification.LOW and j.passed


def test_too_few_samples_is_nodata() -> None:
    assert judge_metric(P95, [0.1, 0.2], around(0.2), 0.98).classification is Classification.NODATA


def test_a_critical_failure_fails_the_whole_comparison() -> None:
    result = judge(SPEC, {"errors": (around(0.3), around(0.01)), "p95": (around(0.2), around(0.2))})
    assert result.outcome is Outcome.FAILED and result.score == 0


def test_a_marginal_score_is_inconclusive() -> None:
    spec = Comparison(
        metrics=[P95, ComparedMetric(name="avg", sli="latency_avg")], pass_score=95, marginal_score=50
    )
    result = judge(spec, {"p95": (around(0.4), around(0.2)), "avg": (around(0.2), around(0.2))})
    assert result.score == 50 and result.outcome is Outcome.INCONCLUSIVE


def test_no_data_at_all_is_never_a_pass() -> None:
    assert judge(SPEC, {}).outcome is Outcome.ERROR


def test_all_passing_succeeds() -> None:
    result = judge(SPEC, {"errors": (around(0.01), around(0.01)), "p95": (around(0.2), around(0.2))})
    assert result.outcome is Outcome.SUCCESSFUL and result.score == 100
