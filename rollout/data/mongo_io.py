"""Moving collections in and out of MongoDB as raw BSON, never decoded in Python."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal
from uuid import UUID

from bson.raw_bson import RawBSONDocument
from pymongo import IndexModel
from pymongo.collection import Collection
from pymongo.database import Database

from rollout.adapters.mongo import Document, call, mongo_errors
from rollout.data.archive import Digest, count_documents
from rollout.data.readahead import read_ahead

READ_BATCH = 1000
INSERT_BATCH_BYTES = 8 * 1024 * 1024
INSERT_BATCH_DOCUMENTS = 5000
# Index fields that describe an index rather than configure one.
_INDEX_DESCRIPTION = {"v", "key", "ns"}


def read_raw(collection: Collection[Document], batch_size: int = READ_BATCH) -> Iterator[bytes]:
    """The collection's documents as raw BSON batches, in ``_id`` order so digests are repeatable."""
    with mongo_errors(f"read {collection.full_name}"):
        cursor = collection.find_raw_batches({}, sort=[("_id", 1)], batch_size=batch_size)
        try:
            yield from cursor
        finally:
            cursor.close()


def digest_collection(collection: Collection[Document]) -> Digest:
    """Count, size and SHA-256 of the collection's documents in ``_id`` order."""
    digest = hashlib.sha256()
    count = size = 0
    for batch in read_raw(collection):
        digest.update(batch)
        count += count_documents(batch)
        size += len(batch)
    return Digest(count, size, digest.hexdigest())


CollectionKind = Literal["collection", "timeseries", "view"]


@dataclass(frozen=True)
class CollectionInfo:
    """One namespace of a database as ``listCollections`` describes it."""

    name: str
    kind: CollectionKind
    options: dict[str, Any]
    uuid: str | None


def list_collections(db: Database[Document], exclude: Iterable[str] = ()) -> list[CollectionInfo]:
    """Collections, time-series collections and views, without system ones or ``exclude``.

    Collections come first, then views in an order each can be created in (a view over
    another view after it), so restoring in this order always works.
    """
    skip = set(exclude)
    infos = call(f"list collections of {db.name}", lambda: list(db.list_collections()))
    found = []
    for info in infos:
        name = info["name"]
        if name.startswith("system.") or name in skip:
            continue
        options = dict(info.get("options", {}))
        kind: CollectionKind = "view" if info.get("type") == "view" else "collection"
        # MongoDB says "timeseries"; a stand-in may only show the collection's options.
        if info.get("type") == "timeseries" or "timeseries" in options:
            kind = "timeseries"
        raw = (info.get("info") or {}).get("uuid")
        uuid = UUID(bytes=bytes(raw)).hex if raw is not None and kind != "view" else None
        found.append(CollectionInfo(name, kind, options, uuid))
    data = sorted((c for c in found if c.kind != "view"), key=lambda c: c.name)
    return data + _creatable_order([c for c in found if c.kind == "view"])


def _creatable_order(views: list[CollectionInfo]) -> list[CollectionInfo]:
    """Views by name, each after the view it is defined on."""
    by_name = {v.name: v for v in views}
    ordered: list[CollectionInfo] = []

    def place(view: CollectionInfo, seen: frozenset[str]) -> None:
        if view in ordered or view.name in seen:
            return
        base = by_name.get(str(view.options.get("viewOn")))
        if base is not None:
            place(base, seen | {view.name})
        ordered.append(view)

    for view in sorted(views, key=lambda v: v.name):
        place(view, frozenset())
    return ordered


def collection_metadata(db: Database[Document], info: CollectionInfo) -> dict[str, Any]:
    """``info`` in the shape of mongodump's ``.metadata.json``: options, indexes, uuid, type."""
    indexes = (
        []
        if info.kind == "view"
        else call(f"read indexes of {db.name}.{info.name}", lambda: list(db[info.name].list_indexes()))
    )
    metadata: dict[str, Any] = {
        "options": dict(info.options),
        "indexes": [dict(index) for index in indexes],
        "collectionName": info.name,
        "type": info.kind,
    }
    if info.uuid is not None:
        metadata["uuid"] = info.uuid
    return metadata


def recreate(db: Database[Document], name: str, metadata: dict[str, Any]) -> None:
    """Drop ``name`` and create it again with the archived options (its indexes come after the data).

    The options say what it was: a view (``viewOn``, ``pipeline``), a time-series collection
    (``timeseries``) or a plain one.
    """
    options = {k: v for k, v in metadata.get("options", {}).items() if k != "uuid"}
    with mongo_errors(f"recreate {db.name}.{name}"):
        db.drop_collection(name)
        db.create_collection(name, **options)


def build_indexes(collection: Collection[Document], metadata: dict[str, Any]) -> int:
    """Create the archived indexes other than ``_id``; returns how many."""
    models = [
        IndexModel(
            list(index["key"].items()), **{k: v for k, v in index.items() if k not in _INDEX_DESCRIPTION}
        )
        for index in metadata.get("indexes", [])
        if index.get("name") != "_id_"
    ]
    if models:
        call(f"build indexes of {collection.full_name}", lambda: collection.create_indexes(models))
    return len(models)


def raw_batches(documents: Iterable[bytes]) -> Iterator[list[RawBSONDocument]]:
    """Group raw documents into insert batches (by bytes and by count)."""
    batch: list[RawBSONDocument] = []
    size = 0
    for document in documents:
        batch.append(RawBSONDocument(document))
        size += len(document)
        if size >= INSERT_BATCH_BYTES or len(batch) >= INSERT_BATCH_DOCUMENTS:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def insert_raw(collection: Collection[Document], documents: Iterable[bytes]) -> Iterator[int]:
    """Insert raw BSON documents in batches; yields each batch's size once it is written.

    Batches are prepared (read, decompressed, split) one ahead in a background
    thread, so that work overlaps the server's inserts.
    """
    raw = collection.codec_options.with_options(document_class=RawBSONDocument)
    target = collection.with_options(codec_options=raw)
    for batch in read_ahead(raw_batches(documents)):
        call(
            f"insert into {target.full_name}",
            partial(target.insert_many, batch, ordered=True, bypass_document_validation=True),
        )
        yield len(batch)
