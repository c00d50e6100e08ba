"""Data gates: a number measured on the MongoDB server at each interval of a window.

Each reading is one or a few aggregations bounded by ``maxTimeMS`` and, for drift and
accuracy, a ``$sample`` of each collection, so its cost does not grow with the data.
Only counts come back to Python. A collection that is missing, a refused pipeline, a
timeout or nothing to judge is never a pass: it is an error reading, or no data.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pymongo.database import Database
from pymongo.errors import ExecutionTimeout, OperationFailure

from rollout.adapters.mongo import Document, mongo_errors
from rollout.data.results import facet_count, missing_collections, pipeline_field
from rollout.errors import InputRejected, ServiceUnavailable
from rollout.plan.model import AccuracyMeasure, DataGate, DriftMeasure, PipelineMeasure

Pipeline = list[dict[str, Any]]


class DataGateInvalid(InputRejected):
    """A data gate the server cannot run: a missing collection or a refused pipeline."""


@dataclass(frozen=True)
class DataQuery:
    """One aggregation of a reading and how its result adds to the value."""

    collection: str
    pipeline: Pipeline


def _narrowed(gate: DataGate, now: datetime) -> Pipeline:
    """The stages that bound a reading: recent documents only, then a sample."""
    stages: Pipeline = []
    if gate.recent is not None:
        stages.append({"$match": {gate.time_field: {"$gte": now - gate.recent}}})
    if gate.sample is not None:
        stages.append({"$sample": {"size": gate.sample}})
    return stages


def drift_queries(gate: DataGate, measure: DriftMeasure, now: datetime) -> list[DataQuery]:
    """Per source: how many sampled documents it has, and how many have no equal copy in the hub."""
    queries = []
    for source, collection in measure.sources.items():
        unequal = [{"$ne": [f"${f}", f"$_copy.{f}"]} for f in measure.fields]
        differs = {"$or": [{"$eq": ["$_copies", 0]}, *unequal]}
        pipeline: Pipeline = [
            *_narrowed(gate, now),
            {
                "$lookup": {
                    "from": measure.hub,
                    "localField": "_id",
                    "foreignField": measure.link_field,
                    "pipeline": [
                        {"$match": {measure.source_field: source}},
                        {"$limit": 1},
                        {"$project": {f: 1 for f in measure.fields}},
                    ],
                    "as": "_copy",
                }
            },
            # The copy as a document (a path into an array is not read alike by every server).
            {"$addFields": {"_copies": {"$size": "$_copy"}, "_copy": {"$arrayElemAt": ["$_copy", 0]}}},
            {"$group": {"_id": None, "checked": {"$sum": 1}, "bad": {"$sum": {"$cond": [differs, 1, 0]}}}},
        ]
        queries.append(DataQuery(collection, pipeline))
    return queries


def accuracy_query(gate: DataGate, measure: AccuracyMeasure, now: datetime) -> DataQuery:
    """How many sampled documents in scope there are, and how many of them are valid."""
    pipeline: Pipeline = [
        *([{"$match": measure.scope}] if measure.scope else []),
        *_narrowed(gate, now),
        {"$facet": {"checked": [{"$count": "n"}], "good": [{"$match": measure.valid}, {"$count": "n"}]}},
    ]
    return DataQuery(measure.collection, pipeline)


def queries_of(gate: DataGate, now: datetime) -> list[DataQuery]:
    """Every aggregation one reading of ``gate`` runs."""
    if gate.drift is not None:
        return drift_queries(gate, gate.drift, now)
    if gate.accuracy is not None:
        return [accuracy_query(gate, gate.accuracy, now)]
    assert gate.pipeline is not None
    return [DataQuery(gate.pipeline.collection, list(gate.pipeline.pipeline))]


def read_data_gate(db: Database[Document], name: str, gate: DataGate, now: datetime) -> float | None:
    """One reading: drift as the share of bad copies, accuracy as the share of good documents,
    a pipeline's field as it is; None when there was nothing to judge."""
    results = [_run(db, name, gate, query) for query in queries_of(gate, now)]
    if gate.pipeline is not None:
        return _pipeline_value(gate.pipeline, results[0])
    rows = [found[0] if found else {} for found in results]
    checked = sum(facet_count(row, "checked") for row in rows)
    if checked == 0:
        return None
    if gate.drift is not None:
        return sum(facet_count(row, "bad") for row in rows) / checked
    return sum(facet_count(row, "good") for row in rows) / checked


def _pipeline_value(measure: PipelineMeasure, rows: list[Document]) -> float | None:
    value = pipeline_field(measure.pipeline, rows, measure.field)
    if value is None and not rows:
        return None  # nothing in scope: no data
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DataGateInvalid(f"the pipeline's {measure.field} is {value!r}, not a number")
    return float(value)


def _run(db: Database[Document], name: str, gate: DataGate, query: DataQuery) -> list[Document]:
    """Run one aggregation within the gate's time limit; a refusal names the gate."""
    limit_ms = int(gate.max_time / timedelta(milliseconds=1))
    with mongo_errors(f"data gate {name}"):
        try:
            return list(db[query.collection].aggregate(query.pipeline, maxTimeMS=limit_ms))
        except ExecutionTimeout as error:
            raise ServiceUnavailable(
                "MongoDB",
                f"data gate {name} took longer than max_time {gate.max_time}: sample fewer documents",
            ) from error
        except OperationFailure as error:
            message = (error.details or {}).get("errmsg") or str(error)
            raise DataGateInvalid(f"gates.{name}.data: MongoDB refused the aggregation: {message}") from error


def check_data_gate(db: Database[Document], name: str, gate: DataGate, now: datetime) -> float | None:
    """Before anything changes: every collection the gate reads exists, and one reading runs."""
    missing = missing_collections(db, _collections(gate))
    if missing:
        raise DataGateInvalid(
            f"gates.{name}.data reads {', '.join(missing)}, which {db.name} does not have: correct the name"
        )
    return read_data_gate(db, name, gate, now)


def _collections(gate: DataGate) -> Iterable[str]:
    if gate.drift is not None:
        return [gate.drift.hub, *gate.drift.sources.values()]
    return [q.collection for q in queries_of(gate, datetime.min)]
