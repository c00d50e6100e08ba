"""Restores: the archive is checked against its manifest before any data is touched."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pymongo import MongoClient

from rollout.adapters.bucket import Bucket
from rollout.adapters.mongo import Document, call, mongo_errors
from rollout.adapters.s3 import ObjectMissing, S3Location
from rollout.data.archive import DumpReader
from rollout.data.manifest import MANIFEST, Manifest
from rollout.data.mongo_io import build_indexes, insert_raw, recreate
from rollout.data.progress import Counter, Progress, no_progress
from rollout.errors import InputRejected

_STAGING_SUFFIX = "__rollout_restore"


class BackupUnusable(InputRejected):
    """The backup cannot be restored: it has no manifest, or its archive does not match it."""


@dataclass(frozen=True)
class RestoredCollection:
    """One collection as restored."""

    name: str
    archived: int
    restored: int
    indexes: int
    how: str

    @property
    def ok(self) -> bool:
        """Whether every archived document went back (a filtered restore counts what matched)."""
        return self.how == "merged" or self.archived == self.restored


@dataclass(frozen=True)
class RestoreResult:
    """What a restore put back, and where."""

    backup: str
    database: str
    collections: tuple[RestoredCollection, ...]

    @property
    def ok(self) -> bool:
        """Whether every collection came back whole."""
        return all(c.ok for c in self.collections)


def parse_backup_uri(uri: str) -> S3Location:
    """``s3://bucket/prefix/backup-.../`` (the trailing slash or a ``manifest.json`` is optional)."""
    location = S3Location.parse(uri)
    key = location.key.rstrip("/")
    if key.endswith("/" + MANIFEST):
        key = key[: -len(MANIFEST) - 1]
    return S3Location(location.bucket, key)


def read_manifest(bucket: Bucket, backup: S3Location) -> Manifest:
    """The backup's manifest; a backup without one is incomplete and refused."""
    try:
        data = bucket.get_json(backup.key + "/" + MANIFEST)
    except ObjectMissing as error:
        raise BackupUnusable(
            f"{backup}/ has no {MANIFEST}: the backup does not exist or never completed, so it is not "
            "used; pass the URI `rollout backup` printed for a complete one"
        ) from error
    try:
        return Manifest.model_validate(data)
    except ValueError as error:
        raise BackupUnusable(f"{backup}/{MANIFEST} is not a backup manifest: {error}") from error


def verify_archive(bucket: Bucket, backup: S3Location) -> Manifest:
    """Read the whole archive and compare its size and SHA-256 with the manifest's."""
    manifest = read_manifest(bucket, backup)
    key = manifest.archive.key
    try:
        size = bucket.size(key)
    except ObjectMissing as error:
        raise BackupUnusable(f"{bucket.location(key)} is missing though the manifest names it") from error
    if size != manifest.archive.bytes:
        raise BackupUnusable(
            f"{bucket.location(key)} holds {size} bytes where the manifest says {manifest.archive.bytes}: "
            "the archive was changed after the backup and is not restored"
        )
    digest = hashlib.sha256()
    for chunk in bucket.chunks(key):
        digest.update(chunk)
    if digest.hexdigest() != manifest.archive.sha256:
        raise BackupUnusable(
            f"{bucket.location(key)} does not match the SHA-256 in its manifest: the archive was changed "
            "after the backup and is not restored"
        )
    return manifest


def restore_backup(
    client: MongoClient[Document],
    bucket: Bucket,
    backup: S3Location,
    *,
    into: str | None = None,
    collections: list[str] | None = None,
    document_filter: dict[str, Any] | None = None,
    progress: Progress = no_progress,
) -> RestoreResult:
    """Verify ``backup`` and restore it.

    Without ``collections``, every archived collection is dropped and reloaded
    (a full restore); with them, only those. With ``document_filter``, only the
    matching documents are put back (replacing the live ones with the same
    ``_id``) and the rest of each collection is left as it is.
    """
    manifest = verify_archive(bucket, backup)
    names = list(collections) if collections else list(manifest.collections)
    unknown = [n for n in names if n not in manifest.collections]
    if unknown:
        raise BackupUnusable(
            f"{backup}/ holds no {', '.join(unknown)}; it has {', '.join(manifest.collections) or 'nothing'}"
        )
    source = manifest.source.database
    db = client[into or source]
    kinds = {n: manifest.collections[n].type for n in names}
    if document_filter is not None:
        unmergeable = [n for n in names if kinds[n] != "collection"]
        if unmergeable:
            raise BackupUnusable(
                f"{', '.join(f'{n} ({kinds[n]})' for n in unmergeable)} cannot be restored document by "
                "document: a view holds no documents (restore the collection it shows) and a time-series "
                "collection cannot be merged by _id (restore it whole, without a filter)"
            )
    # Collections before views, whatever order they were named in: a view is made over them.
    views = [n for n in manifest.collections if n in names and kinds[n] == "view"]  # archived order
    names = [n for n in names if kinds[n] != "view"] + views
    counter = Counter(sum(manifest.collections[n].count for n in names), progress)
    results = []
    with bucket.reader(manifest.archive.key) as stream:
        archive = DumpReader(stream)
        for name in names:
            metadata = archive.metadata(source, name)
            if kinds[name] == "view":
                recreate(db, name, metadata)
                results.append(RestoredCollection(name, 0, 0, 0, "view recreated"))
                continue
            documents = _checked(archive.documents(source, name), manifest.collections[name].sha256, name)
            if document_filter is None:
                recreate(db, name, metadata)
                restored = _load(db[name], documents, counter)
                indexes = build_indexes(db[name], metadata)
                results.append(
                    RestoredCollection(name, manifest.collections[name].count, restored, indexes, "replaced")
                )
            else:
                restored = _merge(db, name, metadata, documents, document_filter, counter)
                results.append(
                    RestoredCollection(name, manifest.collections[name].count, restored, 0, "merged")
                )
        archive.close()
    return RestoreResult(str(backup) + "/", db.name, tuple(results))


def _load(collection: Any, documents: Iterator[bytes], counter: Counter) -> int:
    loaded = 0
    for n in insert_raw(collection, documents):
        counter.add(n)
        loaded += n
    return loaded


def _checked(documents: Iterator[bytes], expected: str, name: str) -> Iterator[bytes]:
    """Pass documents through, failing at the end if they are not the ones the manifest hashed."""
    digest = hashlib.sha256()
    for document in documents:
        digest.update(document)
        yield document
    if digest.hexdigest() != expected:
        raise BackupUnusable(f"{name} in the archive does not match its SHA-256 in the manifest")


def _merge(
    db: Any,
    name: str,
    metadata: dict[str, Any],
    documents: Iterator[bytes],
    document_filter: dict[str, Any],
    counter: Counter,
) -> int:
    """Stage the archived collection beside the live one; merge the matching documents back on the server."""
    staging = name + _STAGING_SUFFIX
    recreate(db, staging, {})
    try:
        _load(db[staging], documents, counter)
        matched: int = call(f"count {staging}", lambda: db[staging].count_documents(document_filter))
        pipeline = [
            {"$match": document_filter},
            {"$merge": {"into": name, "on": "_id", "whenMatched": "replace", "whenNotMatched": "insert"}},
        ]
        with mongo_errors(f"merge {staging} into {name}"):
            list(db[staging].aggregate(pipeline))
    finally:
        with mongo_errors(f"drop {staging}"):
            db.drop_collection(staging)
    return matched
