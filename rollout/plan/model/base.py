"""What every part of the plan shares: the strict base model, names, BSON types, read-only pipelines."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict

NAME_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
BsonType = Literal[
    "double",
    "string",
    "object",
    "array",
    "binData",
    "objectId",
    "bool",
    "date",
    "null",
    "regex",
    "int",
    "timestamp",
    "long",
    "decimal",
    "number",
]


def _read_only(pipeline: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``pipeline`` if no stage of it writes (``$out``, ``$merge``); else a message saying which to remove."""
    for stage in pipeline:
        writes = {"$out", "$merge"} & set(stage)
        if writes:
            stages = ", ".join(sorted(writes))
            raise ValueError(f"the rollout only reads data: remove the {stages} stage")
    return pipeline


ReadOnlyPipeline = Annotated[list[dict[str, Any]], AfterValidator(_read_only)]
"""An aggregation pipeline the rollout runs to read data, never to change it."""


class StrictModel(BaseModel):
    """Base for plan models: unknown keys are errors, values are immutable once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
