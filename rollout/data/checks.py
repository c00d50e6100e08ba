"""Preflight data checks as data: each an aggregation pipeline for the server, and how to judge it.

Only counts and a few sample ids come back to Python, whatever the size of the
collection. This module builds the checks a plan asks for and judges their results;
:mod:`rollout.data.check_runner` runs them against MongoDB.

One module though long: each kind of check is its pipeline builder and its judge side by
side, and a new kind is added here whole.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from bson import ObjectId, json_util

from rollout.adapters.mongo import Document
from rollout.data.results import facet_count, pipeline_field
from rollout.plan.model import (
    BackfillCheck,
    CustomCheck,
    DuplicatesCheck,
    OrphansCheck,
    Preflight,
    RequiredFieldsCheck,
)

Pipeline = list[dict[str, Any]]
T = TypeVar("T")


@dataclass(frozen=True)
class Query:
    """One aggregation: the collection it runs on and its stages."""

    collection: str
    pipeline: Pipeline


@dataclass(frozen=True)
class Finding:
    """What a check's query results say."""

    passed: bool
    failing: int
    checked: int | None
    detail: str
    samples: tuple[str, ...] = ()


@dataclass(frozen=True)
class CheckSpec:
    """A check ready to run: where it came from in the plan, its queries and how to judge them."""

    name: str
    kind: str
    path: str
    queries: tuple[Query, ...]
    judge: Callable[[list[list[Document]]], Finding]
    user_pipeline: bool = False
    followup: Query | None = None
    """Run only when the check fails, its rows passed to ``judge`` after the others: the details of
    a failure (which fields, which ids) cost nothing when everything passes."""

    @property
    def collection(self) -> str:
        """The collection the check is about."""
        return self.queries[0].collection


def _show(value: Any) -> str:
    """Ids as people search for them: strings and ObjectIds bare, anything else as extended JSON."""
    if isinstance(value, str | ObjectId):
        return str(value)
    return json_util.dumps(value)


def _counting_facet(condition: Document, sample_size: int, sample_field: str = "_id") -> Document:
    """A ``$facet`` with how many documents there are, how many match ``condition`` and a few of their ids."""
    facet: dict[str, Pipeline] = {
        "checked": [{"$count": "n"}],
        "failing": [{"$match": condition}, {"$count": "n"}],
    }
    if sample_size:
        facet["sample"] = [{"$match": condition}, {"$limit": sample_size}, {"$project": {sample_field: 1}}]
    return {"$facet": facet}


def _samples(facet: Document, field: str = "_id") -> tuple[str, ...]:
    return tuple(_show(row.get(field)) for row in facet.get("sample", []))


def required_fields_check(check: RequiredFieldsCheck, path: str, sample_size: int) -> CheckSpec:
    """Every document has each field with one of its allowed BSON types.

    One pass counts the documents and the failing ones; only when some fail does a second
    query, over the failing documents alone, count them per field and fetch a few ids.
    """
    wrong = {
        field: {field: {"$not": {"$type": types if isinstance(types, list) else [types]}}}
        for field, types in check.fields.items()
    }
    any_wrong = {"$or": list(wrong.values())}
    counts = {"$facet": {"checked": [{"$count": "n"}], "failing": [{"$match": any_wrong}, {"$count": "n"}]}}
    details: dict[str, Pipeline] = {
        f"field{i}": [{"$match": condition}, {"$count": "n"}] for i, condition in enumerate(wrong.values())
    }
    if sample_size:
        details["sample"] = [{"$limit": sample_size}, {"$project": {"_id": 1}}]

    def judge(results: list[list[Document]]) -> Finding:
        row = results[0][0]
        failing, checked = facet_count(row, "failing"), facet_count(row, "checked")
        if not failing:
            detail = f"all {checked} documents have {', '.join(wrong)} with the right types"
            return Finding(True, 0, checked, detail)
        found = results[1][0] if len(results) > 1 and results[1] else {}
        per_field = [f"{field} {facet_count(found, f'field{i}')}" for i, field in enumerate(wrong)]
        detail = f"{failing} document(s) missing a field or of the wrong type ({', '.join(per_field)})"
        return Finding(False, failing, checked, detail, _samples(found))

    name = check.name or f"{check.collection} required fields"
    return CheckSpec(
        name,
        "required fields",
        path,
        (Query(check.collection, [counts]),),
        judge,
        followup=Query(check.collection, [{"$match": any_wrong}, {"$facet": details}]),
    )


def duplicates_check(check: DuplicatesCheck, path: str, sample_size: int) -> CheckSpec:
    """No two documents share the key."""
    key = {f"k{i}": f"${field}" for i, field in enumerate(check.key)}
    facet: dict[str, Pipeline] = {
        "failing": [{"$count": "n"}],
        "extra": [{"$group": {"_id": None, "n": {"$sum": {"$subtract": ["$n", 1]}}}}],
    }
    if sample_size:
        facet["sample"] = [{"$limit": sample_size}]
    pipeline: Pipeline = [
        {"$group": {"_id": key, "n": {"$sum": 1}}},
        {"$match": {"n": {"$gt": 1}}},
        {"$facet": facet},
    ]

    def judge(results: list[list[Document]]) -> Finding:
        row = results[0][0]
        failing = facet_count(row, "failing")
        samples = tuple(
            ", ".join(f"{field}={_show(s['_id'].get(f'k{i}'))}" for i, field in enumerate(check.key))
            for s in row.get("sample", [])
        )
        detail = (
            f"{failing} key value(s) shared by more than one document "
            f"({facet_count(row, 'extra')} extra documents)"
            if failing
            else f"every ({', '.join(check.key)}) is unique"
        )
        return Finding(failing == 0, failing, None, detail, samples)

    name = check.name or f"{check.collection} unique ({', '.join(check.key)})"
    return CheckSpec(name, "duplicates", path, (Query(check.collection, pipeline),), judge)


def orphans_check(check: OrphansCheck, path: str, sample_size: int) -> CheckSpec:
    """Every set reference finds its document."""
    pipeline: Pipeline = [
        {"$match": {check.field: {"$exists": True, "$ne": None}}},
        {"$project": {check.field: 1}},
        {
            "$lookup": {
                "from": check.references,
                "localField": check.field,
                "foreignField": check.references_field,
                "pipeline": [{"$limit": 1}, {"$project": {"_id": 1}}],
                "as": "_ref",
            }
        },
        _counting_facet({"_ref": {"$size": 0}}, sample_size),
    ]

    def judge(results: list[list[Document]]) -> Finding:
        row = results[0][0]
        failing, checked = facet_count(row, "failing"), facet_count(row, "checked")
        target = f"{check.references}.{check.references_field}"
        detail = (
            f"{failing} of {checked} {check.field} values point at no {target}"
            if failing
            else f"all {checked} {check.field} values found in {target}"
        )
        return Finding(failing == 0, failing, checked, detail, _samples(row))

    name = check.name or f"{check.collection}.{check.field} -> {check.references}"
    return CheckSpec(name, "orphans", path, (Query(check.collection, pipeline),), judge)


def backfill_checks(check: BackfillCheck, path: str, sample_size: int) -> list[CheckSpec]:
    """Per source: every source document has its copy in the hub; and the hub holds no unknown source."""
    specs = []
    for source, collection in check.sources.items():
        missing: Pipeline = [
            {"$project": {"_id": 1}},
            {
                "$lookup": {
                    "from": check.hub,
                    "localField": "_id",
                    "foreignField": check.link_field,
                    "pipeline": [
                        {"$match": {check.source_field: source}},
                        {"$limit": 1},
                        {"$project": {"_id": 1}},
                    ],
                    "as": "_copy",
                }
            },
            _counting_facet({"_copy": {"$size": 0}}, sample_size),
        ]
        copies: Pipeline = [{"$match": {check.source_field: source}}, {"$count": "n"}]

        def judge(
            results: list[list[Document]], source: str = source, collection: str = collection
        ) -> Finding:
            row = results[0][0]
            failing, checked = facet_count(row, "failing"), facet_count(row, "checked")
            in_hub = int(results[1][0]["n"]) if results[1] else 0
            counts = f"{collection} {checked}, {check.hub} as {source} {in_hub}"
            if failing:
                detail = f"{failing} not copied ({counts})"
            elif in_hub != checked:
                detail = f"counts differ: {counts}"
            else:
                detail = f"all copied ({counts})"
            return Finding(failing == 0 and in_hub == checked, failing, checked, detail, _samples(row))

        specs.append(
            CheckSpec(
                f"{check.name or check.hub} backfill from {collection}",
                "backfill",
                f"{path}.sources.{source}",
                (Query(collection, missing), Query(check.hub, copies)),
                judge,
            )
        )
    by_source: Pipeline = [
        {"$group": {"_id": f"${check.source_field}", "n": {"$sum": 1}}},
        {"$sort": {"_id": 1}},
    ]

    def judge_sources(results: list[list[Document]]) -> Finding:
        counts = {row["_id"]: int(row["n"]) for row in results[0]}
        unknown = {k: v for k, v in counts.items() if k not in check.sources}
        shown = ", ".join(f"{_show(k)} {v}" for k, v in counts.items()) or "empty"
        failing = sum(unknown.values())
        detail = f"per {check.source_field}: {shown}"
        if unknown:
            detail += f"; {failing} with a {check.source_field} the plan does not list"
        return Finding(
            not unknown and bool(counts), failing, sum(counts.values()), detail, tuple(map(_show, unknown))
        )

    specs.append(
        CheckSpec(
            f"{check.hub} counts per {check.source_field}",
            "backfill",
            path,
            (Query(check.hub, by_source),),
            judge_sources,
        )
    )
    return specs


def custom_check(check: CustomCheck, path: str) -> CheckSpec:
    """The plan's own pipeline; its first result's field must meet the expectation."""
    expect = check.expect

    def judge(results: list[list[Document]]) -> Finding:
        rows = results[0]
        value = pipeline_field(check.pipeline, rows, expect.field)
        if not isinstance(value, int | float) or isinstance(value, bool):
            shown = "no document" if not rows else f"{expect.field} = {_show(value)}"
            return Finding(False, 0, None, f"the pipeline returned {shown}, not a number")
        ok = (
            (expect.equals is None or value == expect.equals)
            and (expect.min is None or value >= expect.min)
            and (expect.max is None or value <= expect.max)
        )
        bounds = ", ".join(
            f"{label} {bound:g}"
            for label, bound in (("=", expect.equals), (">=", expect.min), ("<=", expect.max))
            if bound is not None
        )
        return Finding(ok, 0 if ok else 1, None, f"{expect.field} = {value:g} (expected {bounds})")

    return CheckSpec(
        check.name, "custom", path, (Query(check.collection, list(check.pipeline)),), judge, True
    )


def plan_checks(preflight: Preflight) -> list[CheckSpec]:
    """Every check the plan's ``preflight`` section asks for, in the order written."""
    n = preflight.sample_size
    specs = [
        required_fields_check(c, f"preflight.required_fields[{i}]", n)
        for i, c in enumerate(preflight.required_fields)
    ]
    specs += [
        duplicates_check(c, f"preflight.duplicates[{i}]", n) for i, c in enumerate(preflight.duplicates)
    ]
    specs += [orphans_check(c, f"preflight.orphans[{i}]", n) for i, c in enumerate(preflight.orphans)]
    for i, backfill in enumerate(preflight.backfill):
        specs += backfill_checks(backfill, f"preflight.backfill[{i}]", n)
    specs += [custom_check(c, f"preflight.custom[{i}]") for i, c in enumerate(preflight.custom)]
    return specs
