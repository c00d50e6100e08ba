"""Gates: what a window measures and the limits it judges by (SLIs, queries, comparisons, data gates)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal, Self

from pydantic import Field, model_validator

from rollout.durations import Duration
from rollout.plan.model.base import ReadOnlyPipeline, StrictModel

# --- gates ---------------------------------------------------------------------------------

BuiltinSli = Literal["error_ratio", "success_rate", "latency_p95", "latency_p99", "latency_avg"]


class ComparedMetric(StrictModel):
    """One metric of a candidate-versus-stable comparison."""

    name: str = Field(description="Name in reports.")
    sli: BuiltinSli | None = Field(default=None, description="Built-in SLI to compare.")
    query: str | None = Field(default=None, description="PromQL with `{{variant}}` where the variant goes.")
    direction: Literal["increase", "decrease", "either"] = Field(
        default="increase", description="Which change is bad: a rise, a fall, or either."
    )
    critical: bool = Field(default=False, description="A failure fails the whole comparison.")
    weight: float = Field(default=1.0, gt=0, description="Weight in the score.")

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if (self.sli is None) == (self.query is None):
            raise ValueError("set exactly one of sli or query")
        return self


class Comparison(StrictModel):
    """Candidate against stable, judged per metric by a Mann-Whitney U test (as Kayenta)."""

    metrics: list[ComparedMetric] = Field(min_length=1, description="Metrics to compare.")
    confidence: float = Field(default=0.98, gt=0.5, lt=1, description="Test confidence.")
    pass_score: float = Field(default=95, ge=0, le=100, description="Score needed to pass.")
    marginal_score: float = Field(
        default=75, ge=0, le=100, description="Below this the result fails; between, inconclusive."
    )
    lookback: Duration = Field(default=timedelta(minutes=5), description="How far back samples are taken.")

    @model_validator(mode="after")
    def _ordered_scores(self) -> Self:
        if self.marginal_score > self.pass_score:
            raise ValueError(
                f"marginal_score ({self.marginal_score}) must not exceed pass_score ({self.pass_score})"
            )
        return self


class DriftMeasure(StrictModel):
    """Share of source documents whose copy in the hub is missing or differs (dual-write drift)."""

    hub: str = Field(description="Collection both writes reach, e.g. `order_hub`.")
    source_field: str = Field(default="source", description="Hub field naming the source.")
    link_field: str = Field(default="source_id", description="Hub field holding the source document's `_id`.")
    sources: dict[str, str] = Field(
        min_length=1, description="Source name -> source collection, e.g. `web: orders_web`."
    )
    fields: list[str] = Field(
        min_length=1, description="Fields that must be equal in a source document and its copy, e.g. `total`."
    )


class AccuracyMeasure(StrictModel):
    """Share of documents that are right: those matching `valid` among those matching `scope`."""

    collection: str = Field(description="Collection measured.")
    valid: dict[str, Any] = Field(
        min_length=1, description="Query filter a correct document matches, e.g. `{total: {$gte: 0}}`."
    )
    scope: dict[str, Any] = Field(default_factory=dict, description="Query filter of the documents judged.")


class PipelineMeasure(StrictModel):
    """Your own aggregation; the gate reads a number from its first result."""

    collection: str = Field(description="Collection the pipeline runs on.")
    pipeline: ReadOnlyPipeline = Field(min_length=1, description="Aggregation pipeline (read-only).")
    field: str = Field(description="Field of the first result holding the value.")


class DataGate(StrictModel):
    """A measurement of the data itself, run on the MongoDB server at each interval of a window."""

    drift: DriftMeasure | None = Field(default=None, description="Hub copies that differ from their source.")
    accuracy: AccuracyMeasure | None = Field(default=None, description="Share of correct documents.")
    pipeline: PipelineMeasure | None = Field(default=None, description="Your own aggregation.")
    sample: int | None = Field(
        default=1000,
        gt=0,
        description="Documents sampled (`$sample`) per collection read by drift and accuracy; "
        "empty reads all.",
    )
    recent: Duration | None = Field(
        default=None,
        description="Judge only documents whose `time_field` is this recent, e.g. `1h` "
        "(the writes of the rollout).",
    )
    time_field: str = Field(default="updated_at", description="Date field `recent` is read from.")
    max_time: Duration = Field(
        default=timedelta(seconds=10),
        description="Longest the server may spend on one reading (`maxTimeMS`); longer is an "
        "error, never a pass.",
    )

    @model_validator(mode="after")
    def _one_measure(self) -> Self:
        given = [k for k in ("drift", "accuracy", "pipeline") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("set exactly one of drift, accuracy or pipeline")
        return self


class Gate(StrictModel):
    """A health condition checked on every interval of an observe window."""

    sli: BuiltinSli | None = Field(
        default=None, description="Built-in SLI of the candidate: ratio, rate or seconds."
    )
    query: str | None = Field(
        default=None, description="Your own PromQL returning one value; `{{variant}}` allowed."
    )
    compare: Comparison | None = Field(default=None, description="Candidate-versus-stable test.")
    data: DataGate | None = Field(default=None, description="A measurement of the data in MongoDB.")
    max: float | None = Field(default=None, description="Fail when the value is above this.")
    min: float | None = Field(default=None, description="Fail when the value is below this.")
    rate_window: Duration = Field(
        default=timedelta(minutes=1),
        description=(
            "Range of `rate()` in built-in SLIs. A step's first measurement waits this long, so that "
            "it reads the new audience alone, not the step before."
        ),
    )
    failure_limit: int = Field(default=0, ge=0, description="Failed measurements tolerated.")
    inconclusive_limit: int = Field(default=0, ge=0, description="Inconclusive measurements tolerated.")
    consecutive_error_limit: int = Field(
        default=4, ge=0, description="Query errors in a row tolerated (errors are never a pass)."
    )

    @model_validator(mode="after")
    def _one_kind(self) -> Self:
        kinds = [k for k in ("sli", "query", "compare", "data") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError("set exactly one of sli, query, compare or data")
        if self.compare is None and self.max is None and self.min is None:
            raise ValueError("a threshold gate needs max or min")
        if self.compare is not None and (self.max is not None or self.min is not None):
            raise ValueError("a compare gate takes no max or min; use its scores")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is above max ({self.max})")
        return self
