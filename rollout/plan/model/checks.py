"""The preflight data checks a plan asks for before anything changes."""

from __future__ import annotations

from typing import Self

from pydantic import Field, model_validator

from rollout.plan.model.base import BsonType, ReadOnlyPipeline, StrictModel

# --- preflight checks ----------------------------------------------------------------------


class RequiredFieldsCheck(StrictModel):
    """Every document has these fields, each of the given BSON type."""

    name: str | None = Field(default=None, description="Name in reports; defaults to a summary.")
    collection: str = Field(description="Collection to check.")
    fields: dict[str, BsonType | list[BsonType]] = Field(
        min_length=1, description="Field path -> BSON type alias (or a list of accepted ones)."
    )


class DuplicatesCheck(StrictModel):
    """No two documents share the same key."""

    name: str | None = Field(default=None, description="Name in reports.")
    collection: str = Field(description="Collection to check.")
    key: list[str] = Field(min_length=1, description="Field paths that together must be unique.")


class OrphansCheck(StrictModel):
    """Every reference points at an existing document."""

    name: str | None = Field(default=None, description="Name in reports.")
    collection: str = Field(description="Collection holding the references.")
    field: str = Field(description="Referencing field, e.g. `order_hub_id`.")
    references: str = Field(description="Referenced collection, e.g. `order_hub`.")
    references_field: str = Field(default="_id", description="Referenced field.")


class BackfillCheck(StrictModel):
    """Every document of each source collection was copied into the hub collection."""

    name: str | None = Field(default=None, description="Name in reports.")
    hub: str = Field(description="Collection the backfill writes, e.g. `order_hub`.")
    source_field: str = Field(default="source", description="Hub field naming the source.")
    link_field: str = Field(default="source_id", description="Hub field holding the source document's `_id`.")
    sources: dict[str, str] = Field(
        min_length=1, description="Source name -> source collection, e.g. `web: orders_web`."
    )


class Expectation(StrictModel):
    """What a custom check's result must satisfy."""

    field: str = Field(default="count", description="Field of the pipeline's first result.")
    equals: float | None = Field(default=None, description="Exact value required.")
    min: float | None = Field(default=None, description="Lowest value allowed.")
    max: float | None = Field(default=None, description="Highest value allowed.")

    @model_validator(mode="after")
    def _one_bound(self) -> Self:
        if self.equals is None and self.min is None and self.max is None:
            raise ValueError("set at least one of equals, min or max")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is above max ({self.max})")
        return self


class CustomCheck(StrictModel):
    """An aggregation pipeline and what its first result must be."""

    name: str = Field(description="Name in reports.")
    collection: str = Field(description="Collection the pipeline runs on.")
    pipeline: ReadOnlyPipeline = Field(min_length=1, description="Aggregation pipeline (read-only).")
    expect: Expectation = Field(description="Condition on the first result document.")


class Preflight(StrictModel):
    """Data checks that must pass before anything changes."""

    required_fields: list[RequiredFieldsCheck] = Field(default_factory=list, description="Types.")
    duplicates: list[DuplicatesCheck] = Field(default_factory=list, description="Unique keys.")
    orphans: list[OrphansCheck] = Field(default_factory=list, description="Dangling references.")
    backfill: list[BackfillCheck] = Field(default_factory=list, description="Copy completeness.")
    custom: list[CustomCheck] = Field(default_factory=list, description="Pipelines of your own.")
    sample_size: int = Field(default=5, ge=0, le=100, description="Failing ids shown per check.")
