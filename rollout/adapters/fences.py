"""Fencing tokens kept in MongoDB for flag providers that cannot keep them beside the flag.

MongoDB flags carry their fence in the flag document, written in the same atomic update.
Unleash and a flagd file have nowhere to put one, so each write first claims the flag's
fence here: the claim is one compare-and-set, and a writer whose epoch is older than the
one on record is refused before it touches the provider.
"""

from __future__ import annotations

from pymongo.collection import Collection

from rollout.adapters.mongo import Document, DuplicateKey, call
from rollout.audience.flag_state import Fence, FencedOff

COLLECTION = "rollout_fences"


class FenceStore:
    """The highest epoch each plan has written each flag with, one document per flag."""

    def __init__(self, collection: Collection[Document], provider: str) -> None:
        self._collection = collection
        self._provider = provider

    def _id(self, flag: str) -> str:
        return f"{self._provider}:{flag}"

    def claim(self, flag: str, fence: Fence) -> None:
        """Record ``fence`` on ``flag``, or raise :class:`FencedOff` if a newer epoch of its plan wrote it."""
        key = f"fence.{fence.plan}"
        query: Document = {
            "_id": self._id(flag),
            "$or": [{key: {"$lte": fence.epoch}}, {key: {"$exists": False}}],
        }
        update = {"$set": {key: fence.epoch, "provider": self._provider, "flag": flag}}
        try:
            call(f"claim fence of {flag}", lambda: self._collection.update_one(query, update, upsert=True))
        except DuplicateKey:
            # The upsert found the document, but with a newer epoch: the query did not match it.
            doc = (
                call(f"read fence of {flag}", lambda: self._collection.find_one({"_id": self._id(flag)}))
                or {}
            )
            newest = (doc.get("fence") or {}).get(fence.plan)
            raise FencedOff(
                f"{self._provider} flag {flag} was written for plan {fence.plan} at epoch {newest}, "
                f"after this run's epoch {fence.epoch} (a rollback or a resumed run took the plan): "
                "not written"
            ) from None

    def highest(self, plan: str) -> int:
        """The highest epoch ``plan`` has written any flag of this provider with (0 if none)."""
        key = f"fence.{plan}"
        doc = call(
            f"read fences of {plan}",
            lambda: self._collection.find_one(
                {"provider": self._provider, key: {"$exists": True}}, sort=[(key, -1)]
            ),
        )
        return int((doc or {}).get("fence", {}).get(plan, 0))
