"""A backup or a check whose server dies half-way fails cleanly: no manifest, no archive, no pass."""

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from moto.server import ThreadedMotoServer
from pymongo import MongoClient

from rollout.adapters.bucket import Bucket
from rollout.adapters.mongo import connect as connect_mongo
from rollout.adapters.s3 import Encryption
from rollout.adapters.s3 import connect as connect_s3
from rollout.data.backup import BackupRequest, take_backup
from rollout.data.check_runner import run_check, validate_checks
from rollout.data.checks import plan_checks
from rollout.errors import ServiceUnavailable, is_transient
from rollout.plan.model import Preflight
from rollout.sandbox.mongodb import start_mongodb
from rollout.sandbox.processes import ProcessRecord, free_port
from rollout.sandbox.seed import ShopSize, seed_shop
from tests.tcp_proxy import CuttableProxy

pytestmark = pytest.mark.integration

SIZE = ShopSize(shops=20, users=50, orders_per_source=1500, returns=30)


def request(database: str) -> BackupRequest:
    return BackupRequest(plan="p", release="v2", kind="pre-rollout", database=database, prefix="faults/")


def nothing_stored(bucket: Bucket) -> bool:
    return list(bucket.keys("faults/")) == []


@pytest.fixture()
def mongo_clients() -> Iterator[Callable[[str, int], MongoClient[Any]]]:
    """Opens clients that are closed after the test.

    A client left open keeps its monitor threads reconnecting to the server the test killed, in
    this process, for the rest of the session.
    """
    opened: list[MongoClient[Any]] = []

    def open_client(uri: str, timeout_ms: int) -> MongoClient[Any]:
        opened.append(connect_mongo(uri, timeout_ms=timeout_ms))
        return opened[-1]

    yield open_client
    for client in opened:
        client.close()


@pytest.fixture()
def own_mongodb(tmp_path: Path) -> Iterator[tuple[ProcessRecord, str]]:
    """A SecantusDB of this test's own, so it can be killed."""
    record, uri = start_mongodb(free_port(), tmp_path)
    yield record, uri
    record.stop()


def test_mongodb_killed_mid_backup_fails_transiently_and_stores_nothing(
    own_mongodb: tuple[ProcessRecord, str],
    bucket: Bucket,
    mongo_clients: Callable[[str, int], MongoClient[Any]],
) -> None:
    record, uri = own_mongodb
    client = mongo_clients(uri, 1000)
    seed_shop(client.shop, SIZE)

    def kill_after_the_first_batch(done: int, total: int) -> None:
        if done > 0 and record.alive():
            record.stop(grace=0)

    with pytest.raises(ServiceUnavailable) as failure:
        take_backup(
            client,
            bucket,
            request("shop"),
            now=lambda: datetime.now(UTC),
            progress=kill_after_the_first_batch,
        )
    assert is_transient(failure.value)
    assert nothing_stored(bucket)
    uploads = bucket.client.list_multipart_uploads(Bucket=bucket.name)
    assert uploads.get("Uploads", []) == []  # aborted, not left to accrue storage


def test_s3_lost_mid_upload_is_retried_then_fails_cleanly(shop_db: Any) -> None:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    proxy = CuttableProxy(port)

    def client(through: int) -> Any:
        return connect_s3(
            region="us-east-1",
            endpoint_url=f"http://127.0.0.1:{through}",
            access_key_id="t",
            secret_access_key="t",
        )

    direct = Bucket(client(port), "faults", Encryption("AES256"))
    direct.client.create_bucket(Bucket="faults")
    s3 = client(proxy.port)
    attempts: list[str] = []
    s3.meta.events.register("before-send.s3.*", lambda request, **_: attempts.append(request.method))

    def lose_s3_after_the_first_batch(done: int, total: int) -> None:
        if done > 0:
            proxy.cut()

    try:
        with pytest.raises(ServiceUnavailable, match="S3 unavailable") as failure:
            take_backup(
                shop_db.client,
                Bucket(s3, "faults", Encryption("AES256")),
                request(shop_db.name),
                now=lambda: datetime.now(UTC),
                progress=lose_s3_after_the_first_batch,
            )
        assert is_transient(failure.value)
        sent_after_loss = attempts[attempts.index("POST") + 1 :]
        assert len(sent_after_loss) >= 4  # boto3's standard mode tried the failing request again
        assert nothing_stored(direct)  # the upload never completed: no archive, no manifest
    finally:
        server.stop()


def test_a_dead_mongodb_is_reported_as_unavailable_not_as_an_empty_backup(
    bucket: Bucket, mongo_clients: Callable[[str, int], MongoClient[Any]]
) -> None:
    client = mongo_clients(f"mongodb://127.0.0.1:{free_port()}/?directConnection=true", 300)
    with pytest.raises(ServiceUnavailable, match="MongoDB unavailable"):
        take_backup(client, bucket, request("shop"), now=lambda: datetime.now(UTC))
    assert nothing_stored(bucket)


def test_mongodb_killed_inside_a_check_is_a_transient_failure_never_a_pass(
    own_mongodb: tuple[ProcessRecord, str], mongo_clients: Callable[[str, int], MongoClient[Any]]
) -> None:
    record, uri = own_mongodb
    client = mongo_clients(uri, 1000)
    seed_shop(client.shop, ShopSize(shops=20, users=50, orders_per_source=5000, returns=30))
    preflight = Preflight.model_validate(
        {
            "backfill": [
                {"hub": "order_hub", "sources": {"web": "orders_web", "pos": "orders_pos"}},
            ]
        }
    )
    specs = plan_checks(preflight)
    validate_checks(client.shop, specs)
    first = run_check(client.shop, specs[0])
    assert first.passed  # the server answers; the next check is where it dies
    # 5,000 lookups take SecantusDB about a second: the kill lands while the aggregation runs.
    killer = threading.Timer(0.3, record.stop, kwargs={"grace": 0})
    killer.start()
    began = time.monotonic()
    with pytest.raises(ServiceUnavailable) as failure:
        run_check(client.shop, specs[1])
    killer.join()
    assert time.monotonic() - began >= 0.3  # it failed because the server died, not before asking
    assert is_transient(failure.value)
    assert "order_hub backfill from orders_pos" in str(failure.value)
