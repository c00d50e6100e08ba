"""Where flags are kept: the provider interface, and the MongoDB store.

Every provider (this MongoDB store, Unleash, a flagd file) answers the same
:class:`FlagProvider` calls: the rollout never knows which one holds its flags.
A MongoDB flag document looks like::

    {_id: "USE_UNIFIED_ORDERS", enabled: true, percentage: 25,
     users: ["dev@example.com"], stores: ["shop-0007"], version: 7, updated_at: ...}

Every write increments ``version``; a write given ``expected_version`` happens
only if nobody changed the flag in between, so a retried step never applies twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Protocol

from pymongo import ReturnDocument
from pymongo.collection import Collection

from rollout.adapters.mongo import Document, DuplicateKey, call
from rollout.audience.bucketing import admitted
from rollout.audience.flag_state import Fence, FencedOff, FlagChange, FlagConflict, FlagState


class FlagProvider(Protocol):
    """Where the applications read their flags; everything the rollout does with flags goes through it."""

    kind: str

    def get(self, name: str) -> FlagState:
        """The flag as the applications see it; a disabled flag at version 0 if it was never written."""
        ...

    def set(
        self,
        name: str,
        change: FlagChange,
        *,
        expected_version: int | None = None,
        fence: Fence | None = None,
    ) -> FlagState:
        """Apply ``change`` and return the flag as read back after writing.

        With ``expected_version``, refuse with :class:`FlagConflict` if the flag moved since it
        was read; with ``fence``, refuse with :class:`FencedOff` once a newer epoch of the plan wrote it.
        """
        ...

    def highest_fence(self, plan: str) -> int:
        """The highest epoch ``plan`` has written any flag with (0 if none)."""
        ...

    def check(self, names: Sequence[str]) -> None:
        """Prove, before anything changes, that the flags can be reached; raise naming what to fix."""
        ...

    def admits(self, name: str, user: str, percentage: float) -> bool:
        """Whether the applications' SDK admits ``user`` to ``name`` at ``percentage``, by its bucketing."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


def state_of(doc: Document) -> FlagState:
    """A flag's state from its MongoDB document."""
    return FlagState(
        name=str(doc["_id"]),
        enabled=bool(doc.get("enabled", False)),
        percentage=float(doc.get("percentage", 0)),
        users=tuple(doc.get("users", ())),
        stores=tuple(doc.get("stores", ())),
        version=int(doc.get("version", 0)),
        updated_at=doc.get("updated_at"),
    )


def set_document(change: FlagChange) -> Document:
    """The ``$set`` document of ``change``: the fields it overwrites, and its ``extra`` ones."""
    values: Document = {
        "enabled": change.enabled,
        "percentage": change.percentage,
        "users": list(change.users) if change.users is not None else None,
        "stores": list(change.stores) if change.stores is not None else None,
    }
    return {k: v for k, v in values.items() if v is not None} | change.extra


class FlagStore:
    """Reads and writes flags in one MongoDB collection."""

    kind = "mongodb"

    def __init__(self, collection: Collection[Document]) -> None:
        self._collection = collection

    def check(self, names: Sequence[str]) -> None:
        """Read each flag once: a flag never written is simply off, so only the connection can fail."""
        for name in names:
            self.get(name)

    def admits(self, name: str, user: str, percentage: float) -> bool:
        """Unleash-compatible bucketing, as the service's :meth:`FlagState.admits` applies it."""
        return admitted(name, user, percentage)

    def close(self) -> None:
        """Nothing to release: the MongoDB client belongs to the caller."""

    def get(self, name: str) -> FlagState:
        """Return the flag, or a disabled flag at version 0 if it was never written."""
        doc = call(f"read flag {name}", lambda: self._collection.find_one({"_id": name}))
        return state_of(doc) if doc else FlagState(name=name)

    def all(self) -> list[FlagState]:
        """Return every stored flag, by name."""
        docs = call("list flags", lambda: list(self._collection.find().sort("_id", 1)))
        return [state_of(d) for d in docs]

    def set(
        self,
        name: str,
        change: FlagChange,
        *,
        expected_version: int | None = None,
        fence: Fence | None = None,
    ) -> FlagState:
        """Apply ``change`` and return the flag as written.

        With ``expected_version`` the write happens only if the stored version
        still equals it (0 meaning "never written"); otherwise :class:`FlagConflict`.
        With ``fence``, only if no newer epoch of the same plan has written the flag;
        otherwise :class:`FencedOff`.
        """
        query: Document = {"_id": name}
        if expected_version is not None:
            query["version"] = expected_version if expected_version else {"$in": [0, None]}
        fields = set_document(change) | {"updated_at": datetime.now(UTC)}
        if fence is not None:
            key = f"fence.{fence.plan}"
            query["$or"] = [{key: {"$lte": fence.epoch}}, {key: {"$exists": False}}]
            fields[key] = fence.epoch
        update = {"$set": fields, "$inc": {"version": 1}}
        upsert = expected_version in (None, 0)

        def write() -> Document | None:
            return self._collection.find_one_and_update(
                query, update, upsert=upsert, return_document=ReturnDocument.AFTER
            )

        try:
            doc = call(f"write flag {name}", write)
        except DuplicateKey as error:
            # An upsert racing a concurrent writer (or refused by the fence) hits the unique _id.
            self._check_fence(name, fence)
            raise FlagConflict(
                f"flag {name} changed while being written (expected version {expected_version}); re-read it"
            ) from error
        if doc is None:
            self._check_fence(name, fence)
            raise FlagConflict(f"flag {name} is no longer at version {expected_version}; re-read it")
        return state_of(doc)

    def highest_fence(self, plan: str) -> int:
        """The highest epoch ``plan`` has written any flag with (0 if none): a new holder starts above it."""
        key = f"fence.{plan}"
        doc = call(
            f"read fences of {plan}",
            lambda: self._collection.find_one({key: {"$exists": True}}, sort=[(key, -1)]),
        )
        return int((doc or {}).get("fence", {}).get(plan, 0))

    def _check_fence(self, name: str, fence: Fence | None) -> None:
        """Raise :class:`FencedOff` if a newer epoch of ``fence``'s plan has written the flag."""
        if fence is None:
            return
        doc = call(f"read flag {name}", lambda: self._collection.find_one({"_id": name})) or {}
        newest = (doc.get("fence") or {}).get(fence.plan)
        if newest is not None and newest > fence.epoch:
            raise FencedOff(
                f"flag {name} was written for plan {fence.plan} at epoch {newest}, after this run's "
                f"epoch {fence.epoch} (a rollback or a resumed run took the plan): not written"
            )
