"""The backup archive: mongodump's directory layout inside a streamed ZIP.

Each collection is ``<db>/<collection>.bson`` (its documents' raw BSON, one after
another, exactly as the server sent them) and ``<db>/<collection>.metadata.json``
(options and indexes in extended JSON), so ``unzip`` followed by stock
``mongorestore`` reads it. ZIP, unlike tar, lets a member be written before its
size is known, so nothing is buffered beyond one compressed block.
"""

from __future__ import annotations

import hashlib
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any

from bson import json_util
from bson.json_util import CANONICAL_JSON_OPTIONS

from rollout.errors import PermanentError

_LENGTH = struct.Struct("<i")
_READ_SIZE = 1024 * 1024


class ArchiveCorrupt(PermanentError):
    """The archive cannot be read as a backup: truncated, tampered with, or not ours."""


@dataclass(frozen=True)
class Digest:
    """What went through a stream: document count, byte count and SHA-256."""

    count: int
    bytes: int
    sha256: str


class DigestingStream:
    """A write-through stream that hashes and counts everything written to ``target``."""

    def __init__(self, target: IO[bytes] | Any) -> None:
        self._target = target
        self._hash = hashlib.sha256()
        self.bytes = 0

    def write(self, data: Any) -> int:
        """Hash ``data`` and pass it on."""
        self._hash.update(data)
        self.bytes += len(data)
        written: int = self._target.write(data)
        return written

    def flush(self) -> None:
        """Nothing is buffered here."""

    @property
    def sha256(self) -> str:
        """Hex digest of every byte so far."""
        return self._hash.hexdigest()


def count_documents(batch: bytes | memoryview) -> int:
    """How many BSON documents ``batch`` holds, from their length prefixes alone."""
    count = offset = 0
    size = len(batch)
    while offset < size:
        (length,) = _LENGTH.unpack_from(batch, offset)
        if length < 5 or offset + length > size:
            raise ArchiveCorrupt(f"a BSON document at byte {offset} claims {length} bytes")
        offset += length
        count += 1
    return count


def iter_documents(stream: IO[bytes]) -> Iterator[bytes]:
    """Each raw BSON document in ``stream``, read a megabyte at a time."""
    pending = b""
    while True:
        chunk = stream.read(_READ_SIZE)
        if not chunk:
            break
        pending = pending + chunk if pending else chunk
        offset = 0
        size = len(pending)
        while size - offset >= 4:
            (length,) = _LENGTH.unpack_from(pending, offset)
            if length < 5:
                raise ArchiveCorrupt(f"a BSON document claims {length} bytes")
            if size - offset < length:
                break
            yield pending[offset : offset + length]
            offset += length
        pending = pending[offset:]
    if pending:
        raise ArchiveCorrupt(f"the archive ends inside a document ({len(pending)} stray bytes)")


def member_names(database: str, collection: str) -> tuple[str, str]:
    """The ``.bson`` and ``.metadata.json`` member names of one collection."""
    return f"{database}/{collection}.bson", f"{database}/{collection}.metadata.json"


class DumpWriter:
    """Writes collections into a ZIP in mongodump's layout."""

    def __init__(self, stream: Any, database: str, *, compresslevel: int = 6) -> None:
        self.database = database
        self._zip = zipfile.ZipFile(
            stream, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=compresslevel
        )

    def add_collection(
        self,
        name: str,
        batches: Iterable[bytes],
        metadata: dict[str, Any],
        on_batch: Callable[[int], None] | None = None,
    ) -> Digest:
        """Write raw BSON ``batches`` as ``<db>/<name>.bson``, then its metadata; report batch counts."""
        bson_name, metadata_name = member_names(self.database, name)
        digest = hashlib.sha256()
        count = size = 0
        with self._zip.open(bson_name, "w", force_zip64=True) as member:
            for batch in batches:
                documents = count_documents(batch)
                digest.update(batch)
                member.write(batch)
                count += documents
                size += len(batch)
                if on_batch is not None:
                    on_batch(documents)
        self._zip.writestr(metadata_name, json_util.dumps(metadata, json_options=CANONICAL_JSON_OPTIONS))
        return Digest(count, size, digest.hexdigest())

    def add_view(self, name: str, metadata: dict[str, Any]) -> Digest:
        """Write a view as mongodump does: ``<db>/<name>.metadata.json`` only (its options define it)."""
        _, metadata_name = member_names(self.database, name)
        self._zip.writestr(metadata_name, json_util.dumps(metadata, json_options=CANONICAL_JSON_OPTIONS))
        return Digest(0, 0, hashlib.sha256().hexdigest())

    def close(self) -> None:
        """Write the ZIP's central directory."""
        self._zip.close()


class DumpReader:
    """Reads a ZIP written by :class:`DumpWriter` (or ``zip -r`` of a mongodump directory)."""

    def __init__(self, stream: IO[bytes]) -> None:
        try:
            self._zip = zipfile.ZipFile(stream)
        except (zipfile.BadZipFile, EOFError) as error:
            raise ArchiveCorrupt(f"not a readable backup archive: {error}") from error

    def collections(self, database: str) -> list[str]:
        """Names of the collections of ``database`` in the archive."""
        prefix, suffix = f"{database}/", ".bson"
        return sorted(
            n[len(prefix) : -len(suffix)]
            for n in self._zip.namelist()
            if n.startswith(prefix) and n.endswith(suffix)
        )

    def metadata(self, database: str, collection: str) -> dict[str, Any]:
        """The collection's options and indexes."""
        _, metadata_name = member_names(database, collection)
        try:
            loaded: dict[str, Any] = json_util.loads(self._zip.read(metadata_name))
        except KeyError as error:
            raise ArchiveCorrupt(f"{metadata_name} is missing from the archive") from error
        return loaded

    def documents(self, database: str, collection: str) -> Iterator[bytes]:
        """The collection's raw BSON documents, decompressed as they are read."""
        bson_name, _ = member_names(database, collection)
        try:
            with self._zip.open(bson_name) as member:
                yield from iter_documents(member)
        except KeyError as error:
            raise ArchiveCorrupt(f"{bson_name} is missing from the archive") from error
        except (zipfile.BadZipFile, zlib.error) as error:
            raise ArchiveCorrupt(f"{bson_name}: {error}") from error

    def close(self) -> None:
        """Release the archive."""
        self._zip.close()
