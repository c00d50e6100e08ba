"""Running the preflight data checks against MongoDB.

A check that finds nothing to look at (a collection that does not exist) is an error in the
plan, not a pass; so is a pipeline the server refuses.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import TypeVar

from pymongo.database import Database
from pymongo.errors import OperationFailure

from rollout.adapters.mongo import Document, mongo_errors
from rollout.analysis.check_result import CheckResult
from rollout.data.checks import CheckSpec, Query
from rollout.data.results import missing_collections
from rollout.errors import InputRejected

T = TypeVar("T")


class CheckInvalid(InputRejected):
    """A check the server cannot run: a refused pipeline or a collection that does not exist."""


def validate_checks(db: Database[Document], specs: Sequence[CheckSpec]) -> None:
    """Refuse, before any check runs, a collection that does not exist or a pipeline the server rejects."""
    missing = set(missing_collections(db, (q.collection for spec in specs for q in spec.queries)))
    for spec in specs:
        for query in spec.queries:
            if query.collection in missing:
                raise CheckInvalid(
                    f"{spec.path}: check {spec.name!r} reads {query.collection}, "
                    f"which {db.name} does not have: "
                    "correct the collection name"
                )
        if spec.user_pipeline:
            user = spec.queries[0]
            _server(
                spec, partial(db.command, "aggregate", user.collection, pipeline=user.pipeline, explain=True)
            )


def _aggregate(db: Database[Document], query: Query) -> list[Document]:
    return list(db[query.collection].aggregate(query.pipeline, allowDiskUse=True))


def _server(spec: CheckSpec, action: Callable[[], T]) -> T:
    """Run ``action`` for ``spec``: a refusal names the check; a lost connection stays transient."""
    where = f"{spec.path}.pipeline" if spec.user_pipeline else spec.path
    with mongo_errors(f"check {spec.name!r}"):
        try:
            return action()
        except OperationFailure as error:
            message = (error.details or {}).get("errmsg") or str(error)
            raise CheckInvalid(f"{where}: check {spec.name!r} was refused by MongoDB: {message}") from error


def run_check(db: Database[Document], spec: CheckSpec) -> CheckResult:
    """Run one check's queries on the server and judge them."""
    results = [_server(spec, partial(_aggregate, db, query)) for query in spec.queries]
    finding = spec.judge(results)
    if not finding.passed and spec.followup is not None:
        finding = spec.judge([*results, _server(spec, partial(_aggregate, db, spec.followup))])
    return CheckResult(
        spec.name,
        spec.kind,
        spec.collection,
        finding.passed,
        finding.failing,
        finding.checked,
        finding.detail,
        finding.samples,
    )
