"""The manifest: written last, it is what makes a backup complete and checkable."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from rollout.adapters.s3 import S3Location

MANIFEST = "manifest.json"
ARCHIVE = "dump.zip"
FORMAT = "mongodump-layout-zip/1"
BackupKind = Literal["pre-rollout", "emergency", "manual"]
_NAME = re.compile(r"^(?:emergency-)?backup-(\d{4}-\d{2}-\d{2}-\d{4})(?:-\d+)?/?$")


class CollectionEntry(BaseModel):
    """One collection as archived."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    count: int = Field(description="Documents archived.")
    bytes: int = Field(description="Raw BSON bytes archived.")
    sha256: str = Field(description="SHA-256 of the documents' raw BSON, in `_id` order.")
    indexes: int = Field(description="Indexes besides `_id`.")
    type: Literal["collection", "timeseries", "view"] = Field(
        default="collection", description="What it is; a view is archived as its definition only."
    )


class ArchiveEntry(BaseModel):
    """The archive object."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    key: str = Field(description="Object key in the bucket.")
    bytes: int = Field(description="Size of the archive.")
    sha256: str = Field(description="SHA-256 of the archive as uploaded.")
    format: str = Field(default=FORMAT, description="Layout of the archive.")


class Source(BaseModel):
    """Where the data came from; hosts only, never credentials."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    hosts: list[str] = Field(description="`host:port` of the servers.")
    database: str = Field(description="Database backed up.")


class Manifest(BaseModel):
    """A complete backup: per-collection counts and digests, the archive's digest, what and why."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(description="`backup-YYYY-MM-DD-HHMM`, UTC.")
    kind: BackupKind = Field(description="Why it was taken.")
    created_at: datetime = Field(description="When the archive was complete.")
    plan: str = Field(description="Plan it was taken for.")
    release: str = Field(description="Release about to be rolled out (or back).")
    source: Source
    archive: ArchiveEntry
    collections: dict[str, CollectionEntry]
    encryption: str | None = Field(default=None, description="Server-side encryption used.")
    retain_until: datetime = Field(description="When retention lets it be deleted.")

    @property
    def documents(self) -> int:
        """Documents in the whole backup."""
        return sum(c.count for c in self.collections.values())


def backup_name(kind: BackupKind, at: datetime) -> str:
    """``backup-YYYY-MM-DD-HHMM`` (``emergency-`` before it for an emergency backup), in UTC."""
    stamp = at.strftime("%Y-%m-%d-%H%M")
    return f"emergency-backup-{stamp}" if kind == "emergency" else f"backup-{stamp}"


def folder_time(folder: str) -> datetime | None:
    """The UTC minute in a backup folder's name, or None if it is not one of ours."""
    match = _NAME.match(folder.rstrip("/").rsplit("/", 1)[-1] + "/")
    if match is None:
        return None
    return datetime.strptime(match.group(1), "%Y-%m-%d-%H%M").replace(tzinfo=UTC)


def expiry(created_at: datetime, retention_days: int) -> datetime:
    """When a backup made at ``created_at`` may be deleted."""
    return created_at + timedelta(days=retention_days)


def manifest_location(backup: S3Location) -> S3Location:
    """Where ``backup``'s manifest is."""
    return backup.child(MANIFEST)
