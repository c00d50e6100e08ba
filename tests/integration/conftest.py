import hashlib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pymongo import MongoClient

from rollout.adapters.flags import FlagStore
from rollout.audience.flag_state import FlagChange
from rollout.sandbox.stack import Sandbox, SandboxInfo, SandboxOptions


@pytest.fixture(scope="session")
def sandbox() -> Iterator[SandboxInfo]:
    # Prometheus is required here: `make test` installs it, and a missing
    # stand-in must fail loudly rather than quietly test less.
    with Sandbox(SandboxOptions(prometheus="required", load_rate=60)) as info:
        yield info


@pytest.fixture()
def mongo(sandbox: SandboxInfo) -> Iterator[MongoClient[dict[str, Any]]]:
    client: MongoClient[dict[str, Any]] = MongoClient(sandbox.mongodb_uri, serverSelectionTimeoutMS=5000)
    yield client
    client.close()


@pytest.fixture()
def flags(sandbox: SandboxInfo, mongo: MongoClient[dict[str, Any]]) -> Iterator[FlagStore]:
    store = FlagStore(mongo[sandbox.database]["feature_flags"])
    yield store
    store.set(sandbox.flag, FlagChange(enabled=False, percentage=0, users=(), stores=()))


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[None]:
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


@pytest.fixture()
def shop_db(mongo: MongoClient[dict[str, Any]], request: pytest.FixtureRequest) -> Iterator[Any]:
    """A freshly seeded shop database of the test's own, dropped afterwards."""
    from rollout.sandbox.seed import ShopSize, seed_shop

    name = "t_" + hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:12]
    db = mongo[name]
    seed_shop(db, ShopSize(shops=20, users=50, orders_per_source=150, returns=30))
    yield db
    mongo.drop_database(name)


@pytest.fixture()
def bucket(sandbox: SandboxInfo, request: pytest.FixtureRequest) -> Iterator[Any]:
    """An empty bucket of the test's own on the sandbox's S3, with AES256 encryption."""
    from rollout.adapters.bucket import Bucket
    from rollout.adapters.s3 import Encryption, connect

    client = connect(
        region="us-east-1", endpoint_url=sandbox.s3_endpoint, access_key_id="test", secret_access_key="test"
    )
    name = "t-" + hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:12]
    client.create_bucket(Bucket=name)
    store = Bucket(client, name, Encryption("AES256"))
    yield store
    store.delete_prefix("")
    client.delete_bucket(Bucket=name)


@pytest.fixture(scope="session", autouse=True)
def reports_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Incident reports go to a temporary folder, not the working tree."""
    import os

    previous = os.environ.get("ROLLOUT_REPORTS_DIR")
    os.environ["ROLLOUT_REPORTS_DIR"] = str(tmp_path_factory.mktemp("reports"))
    yield
    if previous is None:
        os.environ.pop("ROLLOUT_REPORTS_DIR", None)
    else:
        os.environ["ROLLOUT_REPORTS_DIR"] = previous


@pytest.fixture()
def flag_store(sandbox: SandboxInfo) -> Iterator[FlagStore]:
    """The sandbox's flag store, the main flag and dual write off before and after the test."""
    client: MongoClient[dict[str, Any]] = MongoClient(sandbox.mongodb_uri)
    store = FlagStore(client.shop.feature_flags)

    def reset() -> None:
        store.set("USE_UNIFIED_ORDERS", FlagChange(enabled=False, percentage=0, users=(), stores=()))
        store.set("ENABLE_DUAL_WRITE", FlagChange(enabled=False, percentage=0))

    reset()
    yield store
    httpx.delete(f"{sandbox.service_url}/fault")
    reset()
    client.close()
