import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo import MongoClient

from rollout.adapters.flags import FlagStore
from rollout.audience.flag_state import FlagChange
from rollout.sandbox.stack import Sandbox, SandboxInfo, SandboxOptions, save
from tests.operator import AUTH, Operator, operator
from tests.plans import PlanFiles
from tests.servers import lone_mongodb, lone_s3


@pytest.fixture(scope="session")
def sandbox() -> Iterator[SandboxInfo]:
    """The whole local stack (MongoDB, S3, Prometheus, the service and its load), for the session."""
    # Prometheus is required here: `make test` installs it, and a missing
    # stand-in must fail loudly rather than quietly test less.
    with Sandbox(SandboxOptions(prometheus="required", load_rate=60)) as info:
        yield info


@pytest.fixture(scope="session")
def mongodb_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """MongoDB alone (a SecantusDB of its own), for tests of data safety that need nothing else."""
    with lone_mongodb(tmp_path_factory.mktemp("mongodb")) as uri:
        yield uri


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """S3 alone (moto's server of its own), for tests of backups that need nothing else."""
    with lone_s3(tmp_path_factory.mktemp("s3")) as endpoint:
        yield endpoint


@pytest.fixture()
def mongo(mongodb_uri: str) -> Iterator[MongoClient[dict[str, Any]]]:
    """A client of the lone MongoDB."""
    client: MongoClient[dict[str, Any]] = MongoClient(mongodb_uri, serverSelectionTimeoutMS=5000)
    yield client
    client.close()


@pytest.fixture()
def sandbox_mongo(sandbox: SandboxInfo) -> Iterator[MongoClient[dict[str, Any]]]:
    """A client of the sandbox's MongoDB, where its shop, flags and rollout records are."""
    client: MongoClient[dict[str, Any]] = MongoClient(sandbox.mongodb_uri, serverSelectionTimeoutMS=5000)
    yield client
    client.close()


@pytest.fixture()
def plan_file(tmp_path: Path, sandbox: SandboxInfo) -> PlanFiles:
    """Writes plans into the test's folder, acting on the sandbox unless a plan says otherwise."""
    return PlanFiles(tmp_path, sandbox.targets())


@pytest.fixture()
def flags(sandbox: SandboxInfo, sandbox_mongo: MongoClient[dict[str, Any]]) -> Iterator[FlagStore]:
    """The sandbox's flags; its main flag off again afterwards."""
    store = FlagStore(sandbox_mongo[sandbox.database]["feature_flags"])
    yield store
    store.set(sandbox.flag, FlagChange(enabled=False, percentage=0, users=(), stores=()))


@pytest.fixture(autouse=True)
def fresh_rollout_state(request: pytest.FixtureRequest) -> None:
    """Each test that uses the sandbox starts with no rollout records or release history there.

    Tests reuse plan names and releases (`flow-test` v2): a rollout an earlier test left half-way is
    no rollout of this one's to resume, and a release it promoted no stable release of this one's
    (rolling it out would be refused as a downgrade). Within a test everything is kept; the drills
    keep their records in databases of their own.
    """
    if "sandbox" not in request.fixturenames:
        return
    sandbox: SandboxInfo = request.getfixturevalue("sandbox")
    client: MongoClient[dict[str, Any]] = MongoClient(sandbox.mongodb_uri, serverSelectionTimeoutMS=5000)
    try:
        for kept in ("rollout_releases", "rollout_runs"):
            client[sandbox.database][kept].delete_many({})
    finally:
        client.close()


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[None]:
    """A Prefect server of the session's own (SQLite, no deployments), for flows run in the test's process."""
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
def bucket(s3_endpoint: str, request: pytest.FixtureRequest) -> Iterator[Any]:
    """An empty bucket of the test's own on the lone S3, with AES256 encryption."""
    from rollout.adapters.bucket import Bucket
    from rollout.adapters.s3 import Encryption, connect

    client = connect(
        region="us-east-1", endpoint_url=s3_endpoint, access_key_id="test", secret_access_key="test"
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


@pytest.fixture(scope="session")
def operator_stack(sandbox: SandboxInfo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Operator]:
    """Prefect as a team runs it, once for the session: a server on PostgreSQL serving its UI,
    `make deploy` of the shipped prefect.yaml, a process worker; the reconciler's schedule paused.

    Every test that goes through a self-hosted server shares it (one PostgreSQL cluster and one
    server's migrations instead of one per module); each keeps to plans, flags and databases of
    its own, and :func:`ops` ends whatever runs a module left going.
    """
    work = tmp_path_factory.mktemp("operator")
    # The shipped plans name no targets: the worker's runs find the sandbox as a user's would.
    save(sandbox, work / "home" / ".rollout" / "sandbox.json")
    with operator(work, AUTH, ui=True, postgres=True) as deployed:
        yield deployed


@pytest.fixture(scope="module")
def ops(operator_stack: Operator) -> Iterator[Operator]:
    """The shared operator stack, whole again for this module, and settled after it."""
    operator_stack.restore()
    yield operator_stack
    operator_stack.restore()
    operator_stack.settle()
