import io
import zipfile
from datetime import UTC, datetime

import bson
import pytest

from rollout.data.archive import (
    ArchiveCorrupt,
    DigestingStream,
    DumpReader,
    DumpWriter,
    count_documents,
    iter_documents,
)
from rollout.data.manifest import backup_name, folder_time

DOCS = [{"_id": i, "text": "é" * (i % 7), "blob": bytes(range(i % 256))} for i in range(3000)]


class WriteOnly:
    """A stream that cannot seek or tell, like an upload."""

    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes) -> int:
        self.data += data
        return len(data)

    def flush(self) -> None:
        pass


def raw_batches(docs: list[dict[str, object]], size: int) -> list[bytes]:
    return [b"".join(bson.encode(d) for d in docs[i : i + size]) for i in range(0, len(docs), size)]


def test_documents_are_counted_from_their_length_prefixes() -> None:
    batch = raw_batches(DOCS[:17], 17)[0]
    assert count_documents(batch) == 17


def test_a_truncated_batch_is_refused() -> None:
    batch = raw_batches(DOCS[:2], 2)[0]
    with pytest.raises(ArchiveCorrupt, match="claims"):
        count_documents(batch[:-3])


def test_documents_split_across_read_chunks_come_back_whole() -> None:
    blob = b"".join(bson.encode({"_id": i, "pad": "x" * 5000}) for i in range(600))  # ~3 MB, several chunks
    documents = list(iter_documents(io.BytesIO(blob)))
    assert len(documents) == 600
    assert b"".join(documents) == blob
    assert bson.decode(documents[599])["_id"] == 599


def test_a_stream_ending_inside_a_document_is_refused() -> None:
    blob = bson.encode({"_id": 1}) + bson.encode({"_id": 2})
    with pytest.raises(ArchiveCorrupt, match="ends inside a document"):
        list(iter_documents(io.BytesIO(blob[:-2])))


def test_the_archive_is_written_to_an_unseekable_stream_in_mongodump_layout() -> None:
    out = WriteOnly()
    digesting = DigestingStream(out)
    writer = DumpWriter(digesting, "shop")
    digest = writer.add_collection("orders", raw_batches(DOCS, 500), {"indexes": [], "options": {}})
    writer.close()
    assert digest.count == len(DOCS)
    assert digesting.bytes == len(out.data)

    archive = zipfile.ZipFile(io.BytesIO(bytes(out.data)))
    assert sorted(archive.namelist()) == ["shop/orders.bson", "shop/orders.metadata.json"]
    assert archive.testzip() is None
    assert archive.read("shop/orders.bson") == b"".join(raw_batches(DOCS, 500))

    reader = DumpReader(io.BytesIO(bytes(out.data)))
    assert reader.collections("shop") == ["orders"]
    assert [bson.decode(d) for d in reader.documents("shop", "orders")] == DOCS


def test_a_damaged_archive_is_refused_when_read() -> None:
    out = WriteOnly()
    writer = DumpWriter(out, "shop")
    writer.add_collection("orders", raw_batches(DOCS, 500), {"indexes": []})
    writer.close()
    damaged = bytearray(out.data)
    damaged[len(damaged) // 3] ^= 0xFF
    reader = DumpReader(io.BytesIO(bytes(damaged)))
    with pytest.raises(ArchiveCorrupt):
        list(reader.documents("shop", "orders"))


def test_backup_names_carry_the_utc_minute() -> None:
    at = datetime(2026, 11, 22, 9, 5, 59, tzinfo=UTC)
    assert backup_name("pre-rollout", at) == "backup-2026-11-22-0905"
    assert backup_name("emergency", at) == "emergency-backup-2026-11-22-0905"
    assert folder_time("orders/backup-2026-11-22-0905-2/") == datetime(2026, 11, 22, 9, 5, tzinfo=UTC)
    assert folder_time("orders/something-else/") is None
