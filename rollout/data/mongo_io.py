"""Moving collections in and out of MongoDB as raw BSON, never decoded in Python."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from functools import partial
from typing import Any

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


def user_collections(db: Database[Document], exclude: Iterable[str] = ()) -> list[str]:
    """The database's collections, without system collections, views or ``exclude``."""
    skip = set(exclude)
    infos = call(f"list collections of {db.name}", lambda: list(db.list_collections()))
    return sorted(
        info["name"]
        for info in infos
        if info.get("type", "collection") == "collection"
        and not info["name"].startswith("system.")
        and info["name"] not in skip
    )


def collection_metadata(db: Database[Document], name: str) -> dict[str, Any]:
    """Options and indexes of ``name`` in the shape of mongodump's ``.metadata.json``."""
    infos = call(
        f"read options of {db.name}.{name}", lambda: list(db.list_collections(filter={"name": name}))
    )
    options = infos[0].get("options", {}) if infos else {}
    indexes = call(f"read indexes of {db.name}.{name}", lambda: list(db[name].list_indexes()))
    return {
        "options": dict(options),
        "indexes": [dict(index) for index in indexes],
        "collectionName": name,
        "type": "collection",
    }


def recreate(db: Database[Document], name: str, metadata: dict[str, Any]) -> None:
    """Drop ``name`` and create it again with the archived options (its indexes come after the data)."""
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
