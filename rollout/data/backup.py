"""Streaming backups: MongoDB raw BSON -> ZIP in mongodump's layout -> S3 multipart, manifest last."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from pymongo import MongoClient

from rollout.adapters.bucket import Bucket
from rollout.adapters.locks import LOCKS
from rollout.adapters.mongo import Document, call
from rollout.adapters.run_state import COLLECTION as RUNS
from rollout.adapters.s3 import PART_SIZE, S3Location
from rollout.data.archive import DigestingStream, DumpWriter
from rollout.data.manifest import (
    ARCHIVE,
    MANIFEST,
    ArchiveEntry,
    BackupKind,
    CollectionEntry,
    Manifest,
    Source,
    backup_name,
    expiry,
    folder_time,
)
from rollout.data.mongo_io import collection_metadata, list_collections, read_raw
from rollout.data.progress import Counter, Progress, no_progress
from rollout.data.readahead import read_ahead
from rollout.errors import PermanentError, ServiceUnavailable

INCOMPLETE_GRACE = timedelta(days=1)
"""How long a backup without a manifest is left alone before retention deletes it."""


@dataclass(frozen=True)
class BackupRequest:
    """What to back up, why, and where."""

    plan: str
    release: str
    kind: BackupKind
    database: str
    prefix: str = ""
    collections: tuple[str, ...] | None = None
    retention_days: int = 30
    hosts: tuple[str, ...] = ()


@dataclass(frozen=True)
class BackupResult:
    """A complete backup: where it is and its manifest."""

    location: S3Location
    manifest: Manifest

    @property
    def uri(self) -> str:
        """``s3://bucket/prefix/backup-.../``."""
        return str(self.location) + "/"


def _free_folder(bucket: Bucket, prefix: str, name: str) -> str:
    folder, n = f"{prefix}{name}", 1
    while any(True for _ in bucket.keys(folder + "/")):
        n += 1
        folder = f"{prefix}{name}-{n}"
    return folder


def take_backup(
    client: MongoClient[Document],
    bucket: Bucket,
    request: BackupRequest,
    *,
    now: Callable[[], datetime],
    progress: Progress = no_progress,
    part_size: int = PART_SIZE,
    compresslevel: int = 6,
) -> BackupResult:
    """Stream ``request``'s collections to S3 and write the manifest once the archive is stored."""
    db = client[request.database]
    existing = list_collections(db, exclude=[RUNS, LOCKS])
    if request.collections is None:
        chosen = existing
    else:
        missing = [n for n in request.collections if n not in {c.name for c in existing}]
        if missing:
            raise PermanentError(
                f"backup.collections names {', '.join(missing)}, which {request.database} does not have: "
                "correct the names or leave `collections` out to back up every collection"
            )
        chosen = [c for c in existing if c.name in request.collections]
    data = [c for c in chosen if c.kind != "view"]
    total = sum(call(f"count {c.name}", db[c.name].estimated_document_count) for c in data)
    counter = Counter(total, progress)
    folder = _free_folder(bucket, request.prefix, backup_name(request.kind, now()))
    archive_key = f"{folder}/{ARCHIVE}"
    entries: dict[str, CollectionEntry] = {}
    with bucket.writer(archive_key, part_size=part_size) as upload:
        stream = DigestingStream(upload)
        dump = DumpWriter(stream, request.database, compresslevel=compresslevel)
        for info in chosen:  # collections first, then the views defined over them
            metadata = collection_metadata(db, info)
            if info.kind == "view":
                # As mongodump: a view is its definition; its documents are its source's.
                digest = dump.add_view(info.name, metadata)
            else:
                batches = read_ahead(read_raw(db[info.name]))
                digest = dump.add_collection(info.name, batches, metadata, on_batch=counter.add)
            indexes = sum(1 for index in metadata["indexes"] if index.get("name") != "_id_")
            entries[info.name] = CollectionEntry(
                count=digest.count, bytes=digest.bytes, sha256=digest.sha256, indexes=indexes, type=info.kind
            )
        dump.close()
    stored = bucket.size(archive_key)
    if stored != stream.bytes:
        raise ServiceUnavailable("S3", f"{archive_key} holds {stored} bytes, {stream.bytes} were sent")
    created = now()
    manifest = Manifest(
        name=folder.rsplit("/", 1)[-1],
        kind=request.kind,
        created_at=created,
        plan=request.plan,
        release=request.release,
        source=Source(hosts=list(request.hosts), database=request.database),
        archive=ArchiveEntry(key=archive_key, bytes=stream.bytes, sha256=stream.sha256),
        collections=entries,
        encryption=bucket.encryption.mode,
        retain_until=expiry(created, request.retention_days),
    )
    bucket.put_json(f"{folder}/{MANIFEST}", manifest.model_dump(mode="json"))
    return BackupResult(bucket.location(folder), manifest)


def prune_backups(bucket: Bucket, prefix: str, *, now: datetime, keep: str) -> list[str]:
    """Delete backups under ``prefix`` past their retention, and stale incomplete ones; never ``keep``.

    Returns the folders deleted.
    """
    deleted = []
    for folder in bucket.folders(prefix):
        made = folder_time(folder)
        if made is None or folder.rstrip("/").endswith(keep):
            continue
        if bucket.exists(folder + MANIFEST):
            manifest = Manifest.model_validate(bucket.get_json(folder + MANIFEST))
            stale = manifest.retain_until < now
        else:
            stale = made + INCOMPLETE_GRACE < now
        if stale:
            bucket.delete_prefix(folder)
            deleted.append(folder)
    return deleted
