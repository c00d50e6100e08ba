"""Picking pilot stores with a query that runs on the MongoDB server."""

from __future__ import annotations

from typing import Any

from pymongo.database import Database

from rollout.adapters.mongo import Document, call
from rollout.plan.model import PilotStores


def pick_pilot_stores(db: Database[Document], spec: PilotStores) -> list[str]:
    """Run the plan's pilot query and return the chosen store ids, in query order."""

    def query() -> list[Any]:
        cursor = db[spec.collection].find(spec.filter, {spec.id_field: 1})
        if spec.sort:
            cursor = cursor.sort(list(spec.sort.items()))
        return [doc.get(spec.id_field) for doc in cursor.limit(spec.limit)]

    ids = call(f"pick pilot stores from {spec.collection}", query)
    return [str(i) for i in ids if i is not None]
