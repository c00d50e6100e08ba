"""Candidate against stable, judged as Spinnaker's Kayenta does.

Each metric's samples from both variants are compared with a two-sided
Mann-Whitney U test. At the plan's confidence (0.98 by default) a metric is
``High`` or ``Low`` when the candidate differs, ``Pass`` when it does not, and
``NoData`` when either side has too few samples. A difference in the bad
direction fails the metric. The score is the weighted share of passing metrics
among those with data; a failing critical metric fails the whole comparison.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from scipy.stats import mannwhitneyu

from rollout.analysis.gates import Outcome
from rollout.plan.model import ComparedMetric, Comparison

MIN_SAMPLES = 3


class Classification(StrEnum):
    """Kayenta's per-metric classification."""

    PASS = "Pass"
    HIGH = "High"
    LOW = "Low"
    NODATA = "NoData"


@dataclass(frozen=True)
class MetricJudgement:
    """How one metric of the candidate compares with stable."""

    name: str
    classification: Classification
    passed: bool
    p_value: float | None
    candidate_median: float | None
    stable_median: float | None
    critical: bool


@dataclass(frozen=True)
class ComparisonResult:
    """The whole comparison: a score, an outcome and the metrics behind it."""

    score: float | None
    outcome: Outcome
    metrics: tuple[MetricJudgement, ...]
    reason: str


def _clean(values: Sequence[float]) -> list[float]:
    return [v for v in values if math.isfinite(v)]


def judge_metric(
    metric: ComparedMetric, candidate: Sequence[float], stable: Sequence[float], confidence: float
) -> MetricJudgement:
    """Classify one metric from its samples of both variants."""
    cand, base = _clean(candidate), _clean(stable)
    if len(cand) < MIN_SAMPLES or len(base) < MIN_SAMPLES:
        return MetricJudgement(metric.name, Classification.NODATA, False, None, None, None, metric.critical)
    c_med, s_med = statistics.median(cand), statistics.median(base)
    if len(set(cand) | set(base)) == 1:
        p_value = 1.0  # identical samples: nothing to tell apart
    else:
        p_value = float(mannwhitneyu(cand, base, alternative="two-sided").pvalue)
    if p_value >= 1 - confidence:
        classification = Classification.PASS
    else:
        classification = Classification.HIGH if c_med > s_med else Classification.LOW
    bad = {
        "increase": {Classification.HIGH},
        "decrease": {Classification.LOW},
        "either": {Classification.HIGH, Classification.LOW},
    }[metric.direction]
    return MetricJudgement(
        metric.name, classification, classification not in bad, p_value, c_med, s_med, metric.critical
    )


def judge(
    spec: Comparison, samples: Mapping[str, tuple[Sequence[float], Sequence[float]]]
) -> ComparisonResult:
    """Judge every metric of ``spec`` from ``samples[name] = (candidate, stable)``."""
    judgements = tuple(
        judge_metric(m, *samples.get(m.name, ((), ())), confidence=spec.confidence) for m in spec.metrics
    )
    weights = {m.name: m.weight for m in spec.metrics}
    critical_failures = [
        j.name
        for j in judgements
        if j.critical and j.classification is not Classification.NODATA and not j.passed
    ]
    with_data = [j for j in judgements if j.classification is not Classification.NODATA]
    if critical_failures:
        return ComparisonResult(
            0.0, Outcome.FAILED, judgements, f"critical metric failed: {critical_failures}"
        )
    if not with_data or any(j.critical and j.classification is Classification.NODATA for j in judgements):
        return ComparisonResult(None, Outcome.ERROR, judgements, "no data to compare")
    total = sum(weights[j.name] for j in with_data)
    score = 100.0 * sum(weights[j.name] for j in with_data if j.passed) / total
    if score >= spec.pass_score:
        outcome = Outcome.SUCCESSFUL
    elif score >= spec.marginal_score:
        outcome = Outcome.INCONCLUSIVE
    else:
        outcome = Outcome.FAILED
    return ComparisonResult(score, outcome, judgements, f"score {score:.0f} (pass {spec.pass_score:g})")
