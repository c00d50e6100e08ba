"""A backup proven by restoring it: into a scratch database, compared digest by digest, then dropped.

Each collection is compared with the manifest (the archive is whole) and with the live
source (nothing changed since); a view by its definition.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pymongo import MongoClient

from rollout.adapters.bucket import Bucket
from rollout.adapters.mongo import Document, call
from rollout.adapters.s3 import S3Location
from rollout.data.archive import DumpReader
from rollout.data.manifest import Manifest
from rollout.data.mongo_io import digest_collection
from rollout.data.progress import Progress, no_progress
from rollout.data.restore import read_manifest, restore_backup
from rollout.errors import PermanentError


@dataclass(frozen=True)
class CollectionCheck:
    """One collection of a verification restore against the manifest and the live source."""

    name: str
    archived: int
    restored: int
    matches_manifest: bool
    source_unchanged: bool


@dataclass(frozen=True)
class VerificationResult:
    """A backup restored into a scratch database and compared, digest by digest."""

    backup: str
    scratch_database: str
    collections: tuple[CollectionCheck, ...]

    @property
    def ok(self) -> bool:
        """Whether every collection restored to exactly what the manifest describes."""
        return all(c.matches_manifest for c in self.collections)


def verify_by_restore(
    client: MongoClient[Document],
    bucket: Bucket,
    backup: S3Location,
    *,
    scratch: str,
    progress: Progress = no_progress,
) -> VerificationResult:
    """Restore ``backup`` into ``scratch``, compare digests with the manifest and the source, drop it."""
    manifest = read_manifest(bucket, backup)
    if scratch == manifest.source.database:
        raise PermanentError(f"the scratch database must not be the source database {scratch}")
    try:
        restored = restore_backup(client, bucket, backup, into=scratch, progress=progress)
        checks = []
        for entry in restored.collections:
            archived = manifest.collections[entry.name]
            if archived.type == "view":
                checks.append(_view_check(client, bucket, manifest, scratch, entry.name))
                continue
            copy = digest_collection(client[scratch][entry.name])
            live = digest_collection(client[manifest.source.database][entry.name])
            checks.append(
                CollectionCheck(
                    entry.name,
                    archived.count,
                    copy.count,
                    matches_manifest=copy.sha256 == archived.sha256 and copy.count == archived.count,
                    source_unchanged=live.sha256 == archived.sha256,
                )
            )
    finally:
        call(f"drop {scratch}", lambda: client.drop_database(scratch))
    return VerificationResult(str(backup) + "/", scratch, tuple(checks))


def _view_check(
    client: MongoClient[Document], bucket: Bucket, manifest: Manifest, scratch: str, name: str
) -> CollectionCheck:
    """A view is checked by its definition: the restored one and the live one against the archived one."""
    with bucket.reader(manifest.archive.key) as stream:
        archive = DumpReader(stream)
        archived = _definition(archive.metadata(manifest.source.database, name).get("options", {}))
        archive.close()

    def live(database: str) -> dict[str, Any] | None:
        found = call(
            f"read the definition of {database}.{name}",
            lambda: list(client[database].list_collections(filter={"name": name})),
        )
        return _definition(found[0].get("options", {})) if found else None

    return CollectionCheck(
        name,
        0,
        0,
        matches_manifest=live(scratch) == archived,
        source_unchanged=live(manifest.source.database) == archived,
    )


def _definition(options: dict[str, Any]) -> dict[str, Any]:
    return {"viewOn": options.get("viewOn"), "pipeline": list(options.get("pipeline") or [])}
