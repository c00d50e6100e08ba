from collections.abc import Iterator
from typing import Any

import pytest
from pymongo import MongoClient

from rollout.adapters.flags import FlagChange, FlagStore
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
