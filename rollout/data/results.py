"""Reading aggregation results, the same way for data checks and data gates."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from pymongo.database import Database

from rollout.adapters.mongo import Document, call


def field_at(document: Document, path: str) -> Any:
    """The value at dotted ``path`` in ``document`` (None when any part is missing)."""
    value: Any = document
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def facet_count(row: Document, key: str) -> int:
    """The count under ``key``: a ``$facet`` branch ending in ``{"$count": "n"}`` (empty when nothing
    matched, so 0), or a plain number."""
    found = row.get(key)
    if isinstance(found, list):
        return int(found[0]["n"]) if found else 0
    return int(found or 0)


def pipeline_field(pipeline: Sequence[Document], rows: list[Document], field: str) -> Any:
    """``field`` of the pipeline's first result; None when it returned nothing.

    A pipeline ending in ``$count`` of that very field returns no document at all when nothing
    matched: that is a count of 0, not missing data.
    """
    if rows:
        return field_at(rows[0], field)
    return 0 if pipeline and pipeline[-1].get("$count") == field else None


def missing_collections(db: Database[Document], names: Iterable[str]) -> list[str]:
    """Those of ``names`` that ``db`` does not have, in order, each once."""
    existing = set(call(f"list collections of {db.name}", db.list_collection_names))
    return [name for name in dict.fromkeys(names) if name not in existing]
