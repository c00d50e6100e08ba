"""Backup and restore against the raw driver, on the same servers, in one run.

Starts its own SecantusDB and moto S3, seeds 10k and 200k order-like documents,
then measures:

- backup_ratio: a raw ``find_raw_batches`` read of the collection, divided by
  the backup of the same collection (read, zip, hash, multipart upload, manifest);
  1.0 means the backup costs nothing beyond reading.
- restore_ratio: a raw ``insert_many`` of the same raw batches, divided by the
  restore (archive verified against the manifest, then read, inserted, indexed).
- rss_10k_mb / rss_200k_mb: peak resident memory of a process that only takes a
  backup of 10k and of 200k documents; flat means nothing is held whole.

Usage: ``python bench/backup.py [--large 200000] [--small 10000]``. The last
line printed is ``backup_ratio=X restore_ratio=Y rss_10k_mb=A rss_200k_mb=B``.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from bson import CodecOptions, Decimal128, ObjectId
from bson.raw_bson import RawBSONDocument
from pymongo import MongoClient

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rollout.adapters.bucket import Bucket  # noqa: E402
from rollout.adapters.mongo import connect  # noqa: E402
from rollout.adapters.s3 import Encryption  # noqa: E402
from rollout.adapters.s3 import connect as connect_s3  # noqa: E402
from rollout.data.archive import iter_documents  # noqa: E402
from rollout.data.backup import BackupRequest, take_backup  # noqa: E402
from rollout.data.mongo_io import (  # noqa: E402
    build_indexes,
    collection_metadata,
    list_collections,
    raw_batches,
    read_raw,
)
from rollout.data.restore import restore_backup  # noqa: E402
from rollout.sandbox.mongodb import start_mongodb  # noqa: E402
from rollout.sandbox.processes import ProcessRecord, free_port, spawn, wait_until  # noqa: E402

BUCKET = "bench-backups"
COLLECTION = "orders"


def order(i: int, rng: random.Random) -> dict[str, Any]:
    """One order-like document of about 300 bytes."""
    return {
        "_id": ObjectId(f"{i:024x}"),
        "source": rng.choice(["web", "pos", "marketplace"]),
        "shop_id": f"shop-{rng.randrange(500):04d}",
        "user_id": f"user-{rng.randrange(100000):06d}",
        "total": Decimal128(Decimal(rng.randint(100, 500000)) / 100),
        "items": [
            {"sku": f"sku-{rng.randrange(5000)}", "qty": rng.randint(1, 5)} for _ in range(rng.randint(1, 4))
        ],
        "created_at": datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.randrange(10**7)),
        "note": "".join(rng.choice("abcdefghij ") for _ in range(40)),
    }


def seed(client: MongoClient[dict[str, Any]], database: str, count: int) -> None:
    """Write ``count`` orders into ``database.orders``."""
    rng = random.Random(count)
    db = client[database]
    db.drop_collection(COLLECTION)
    for start in range(0, count, 5000):
        db[COLLECTION].insert_many(
            [order(i, rng) for i in range(start, min(count, start + 5000))], ordered=False
        )
    db[COLLECTION].create_index([("shop_id", 1), ("created_at", -1)])


def start_servers(workdir: Path) -> tuple[list[ProcessRecord], str, str]:
    """SecantusDB and moto, each in a process of its own."""
    s3_port = free_port()
    s3 = spawn(
        "s3",
        [
            sys.executable,
            "-m",
            "rollout.sandbox.s3server",
            "--port",
            str(s3_port),
            "--state-dir",
            str(workdir),
        ],
        workdir,
        marker=str(workdir),
    )
    mongo, uri = start_mongodb(free_port(), workdir)
    endpoint = f"http://127.0.0.1:{s3_port}"
    client = s3_client(endpoint)

    def s3_up() -> bool:
        try:
            client.list_buckets()
        except Exception:
            return False
        return True

    wait_until(s3_up, "moto", timeout=60, still_alive=s3.alive)
    client.create_bucket(Bucket=BUCKET)
    return [mongo, s3], uri, endpoint


def s3_client(endpoint: str) -> Any:
    """A client for the benchmark's moto."""
    return connect_s3(
        region="us-east-1", endpoint_url=endpoint, access_key_id="bench", secret_access_key="bench"
    )


def timed(action: Any) -> tuple[float, Any]:
    """Seconds ``action`` took, and what it returned."""
    start = time.perf_counter()
    value = action()
    return time.perf_counter() - start, value


def backup(uri: str, endpoint: str, database: str) -> Any:
    """One backup of ``database.orders``."""
    request = BackupRequest(
        plan="bench",
        release="bench",
        kind="manual",
        database=database,
        prefix=f"{database}/",
        collections=(COLLECTION,),
    )
    bucket = Bucket(s3_client(endpoint), BUCKET, Encryption("AES256"))
    return take_backup(connect(uri), bucket, request, now=lambda: datetime.now(UTC))


def child_peak_rss(uri: str, endpoint: str, database: str) -> float:
    """Peak RSS (MB) of a fresh process that takes one backup."""
    out = subprocess.run(
        [sys.executable, __file__, "--child", uri, endpoint, database],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return float(json.loads(out.strip().splitlines()[-1])["peak_rss_mb"])


def raw_read(client: MongoClient[dict[str, Any]], database: str) -> list[bytes]:
    """The collection's raw batches, read as the backup reads them."""
    return list(read_raw(client[database][COLLECTION]))


def raw_insert(client: MongoClient[dict[str, Any]], database: str, batches: list[bytes]) -> float:
    """Seconds to insert the documents of ``batches`` with ``insert_many``, batched as the restore does.

    The batches are split and wrapped before the clock starts: this is the floor.
    """
    prepared = list(raw_batches(iter_documents(io.BytesIO(b"".join(batches)))))
    target = client[database + "_raw"].get_collection(
        COLLECTION, codec_options=CodecOptions(document_class=RawBSONDocument)
    )
    target.drop()
    start = time.perf_counter()
    for batch in prepared:
        target.insert_many(batch, ordered=True, bypass_document_validation=True)
    return time.perf_counter() - start


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--large", type=int, default=200_000)
    parser.add_argument("--child", nargs=3, metavar=("URI", "ENDPOINT", "DB"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        backup(*args.child)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps({"peak_rss_mb": round(peak, 1)}))
        return

    with tempfile.TemporaryDirectory(prefix="rollout-bench-") as tmp:
        processes, uri, endpoint = start_servers(Path(tmp))
        try:
            client = connect(uri, timeout_ms=30000)
            sizes = {"small": args.small, "large": args.large}
            for label, count in sizes.items():
                seconds, _ = timed(lambda c=count, lb=label: seed(client, f"bench_{lb}", c))
                print(f"seeded {count} documents in {seconds:.1f} s")
            large = "bench_large"
            read_s, batches = timed(lambda: raw_read(client, large))
            backup_s, result = timed(lambda: backup(uri, endpoint, large))
            megabytes = sum(map(len, batches)) / 1e6
            print(
                f"raw read:   {read_s:6.2f} s  ({args.large / read_s:,.0f} docs/s, {megabytes:.0f} MB BSON)"
            )
            print(
                f"backup:     {backup_s:6.2f} s  ({args.large / backup_s:,.0f} docs/s, archive "
                f"{result.manifest.archive.bytes / 1e6:.1f} MB)"
            )
            insert_s = raw_insert(client, large, batches)
            (info,) = [c for c in list_collections(client[large]) if c.name == COLLECTION]
            metadata = collection_metadata(client[large], info)
            index_s, _ = timed(lambda: build_indexes(client[large + "_raw"][COLLECTION], metadata))
            bucket = Bucket(s3_client(endpoint), BUCKET, Encryption("AES256"))
            restore_s, _ = timed(
                lambda: restore_backup(client, bucket, result.location, into=large + "_restored")
            )
            print(f"raw insert: {insert_s:6.2f} s  ({args.large / insert_s:,.0f} docs/s)")
            print(f"restore:    {restore_s:6.2f} s  ({args.large / restore_s:,.0f} docs/s, all steps)")
            print(
                f"index build alone on the raw copy: {index_s:.2f} s; "
                f"restore against raw insert + index build: "
                f"{(insert_s + index_s) / restore_s:.2f}"
            )
            rss_small = child_peak_rss(uri, endpoint, "bench_small")
            rss_large = child_peak_rss(uri, endpoint, large)
            print(f"backup peak RSS: {rss_small:.0f} MB at {args.small}, {rss_large:.0f} MB at {args.large}")
            print(
                f"backup_ratio={read_s / backup_s:.2f} restore_ratio={insert_s / restore_s:.2f} "
                f"rss_10k_mb={rss_small:.0f} rss_200k_mb={rss_large:.0f}"
            )
        finally:
            for process in processes:
                process.stop()


if __name__ == "__main__":
    main()
