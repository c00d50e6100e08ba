import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from pymongo import MongoClient

from rollout.adapters.flags import FlagStore
from rollout.adapters.prometheus import PrometheusClient
from rollout.adapters.stores import pick_pilot_stores
from rollout.analysis.sli import builtin_query, traffic_share_query
from rollout.audience.flag_state import FlagChange, FlagConflict
from rollout.errors import PortInUse, ServiceRejected
from rollout.plan.model import PilotStores, SliSettings
from rollout.sandbox.processes import ensure_port_free
from rollout.sandbox.seed import INITIAL_FLAGS
from rollout.sandbox.stack import KEY_ENV, SECRET_ENV, SandboxInfo

pytestmark = pytest.mark.integration
Mongo = MongoClient[dict[str, Any]]


def wait_for(check: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"condition not met within {timeout}s")


def test_mongodb_holds_the_seeded_shop(sandbox: SandboxInfo, sandbox_mongo: Mongo) -> None:
    db = sandbox_mongo[sandbox.database]
    per_source = {
        d["_id"]: d["count"]
        for d in db.order_hub.aggregate([{"$group": {"_id": "$source", "count": {"$sum": 1}}}])
    }
    assert per_source == {"web": 400, "pos": 400, "marketplace": 400}
    for source, collection in {"web": "orders_web", "pos": "orders_pos"}.items():
        assert db[collection].count_documents({}) == per_source[source]
    linked = list(
        db.product_returns.aggregate(
            [
                {
                    "$lookup": {
                        "from": "order_hub",
                        "localField": "order_hub_id",
                        "foreignField": "_id",
                        "as": "o",
                    }
                },
                {"$match": {"o": {"$size": 1}}},
                {"$count": "n"},
            ]
        )
    )
    assert linked == [{"n": db.product_returns.count_documents({})}]
    assert db.users.count_documents({"email": "dev@example.com"}) == 1
    stored = {d["_id"] for d in db.feature_flags.find({}, {"_id": 1})}
    assert set(INITIAL_FLAGS) <= stored


def test_pilot_query_picks_active_mid_sized_shops_newest_first(
    sandbox: SandboxInfo, sandbox_mongo: Mongo
) -> None:
    db = sandbox_mongo[sandbox.database]
    spec = PilotStores(
        filter={"is_active": True, "total_orders": {"$gt": 10, "$lt": 100}}, sort={"created_at": -1}, limit=10
    )
    chosen = pick_pilot_stores(db, spec)
    assert 5 <= len(chosen) <= 10
    shops = {s["_id"]: s for s in db.shops.find({"_id": {"$in": chosen}})}
    assert all(shops[c]["is_active"] and 10 < shops[c]["total_orders"] < 100 for c in chosen)
    created = [shops[c]["created_at"] for c in chosen]
    assert created == sorted(created, reverse=True)


def test_s3_answers_through_boto3(sandbox: SandboxInfo) -> None:
    import os

    s3 = boto3.client(
        "s3",
        endpoint_url=sandbox.s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id=os.environ[KEY_ENV],
        aws_secret_access_key=os.environ[SECRET_ENV],
    )
    s3.put_object(Bucket=sandbox.bucket, Key="probe/hello.txt", Body=b"hello", ServerSideEncryption="AES256")
    got = s3.get_object(Bucket=sandbox.bucket, Key="probe/hello.txt")
    assert got["Body"].read() == b"hello"
    assert got["ServerSideEncryption"] == "AES256"


def test_flag_writes_are_versioned(sandbox: SandboxInfo, flags: FlagStore) -> None:
    before = flags.get(sandbox.flag)
    after = flags.set(sandbox.flag, FlagChange(enabled=True, percentage=10), expected_version=before.version)
    assert after.version == before.version + 1
    assert (after.enabled, after.percentage) == (True, 10)
    with pytest.raises(FlagConflict):
        flags.set(sandbox.flag, FlagChange(percentage=25), expected_version=before.version)
    assert flags.get(sandbox.flag).percentage == 10


def test_the_service_follows_the_flag_stickily(sandbox: SandboxInfo, flags: FlagStore) -> None:
    users = [f"user-{i:05d}" for i in range(200)]

    def variants() -> dict[str, str]:
        with httpx.Client(base_url=sandbox.service_url) as http:
            return {u: http.get("/orders", params={"user": u}).json()["variant"] for u in users}

    state = flags.set(sandbox.flag, FlagChange(enabled=True, percentage=10, users=("dev@example.com",)))
    wait_for(
        lambda: (
            httpx.get(f"{sandbox.service_url}/orders", params={"user": "dev@example.com"}).json()[
                "flag_version"
            ]
            >= state.version
        )
    )
    at_10 = {u for u, v in variants().items() if v == "candidate"}
    assert at_10 == {u for u in users if state.admits(u)}
    state = flags.set(sandbox.flag, FlagChange(percentage=25))
    wait_for(
        lambda: (
            httpx.get(f"{sandbox.service_url}/orders", params={"user": "x"}).json()["flag_version"]
            >= state.version
        )
    )
    at_25 = {u for u, v in variants().items() if v == "candidate"}
    assert at_10 < at_25
    assert 0.15 < len(at_25) / len(users) < 0.35


def test_prometheus_sees_the_candidate_fail_when_a_fault_is_injected(
    sandbox: SandboxInfo, flags: FlagStore
) -> None:
    assert sandbox.prometheus_url is not None
    settings = SliSettings(selector={"job": "orders"})
    window = __import__("datetime").timedelta(seconds=5)
    flags.set(sandbox.flag, FlagChange(enabled=True, percentage=100))
    httpx.put(f"{sandbox.service_url}/fault", json={"variant": "candidate", "error_rate": 1.0})
    try:
        with PrometheusClient(sandbox.prometheus_url) as prom:

            def ratio() -> float | None:
                samples = prom.query(builtin_query("error_ratio", settings, "candidate", window))
                return samples[0].value if samples and samples[0].value > 0.9 else None

            assert wait_for(ratio, timeout=40) > 0.9
            share = prom.query(traffic_share_query(settings, window))
            assert share and share[0].value > 0.5
            with pytest.raises(ServiceRejected):
                prom.query("sum(rate(http_requests_total[5s]")
    finally:
        httpx.delete(f"{sandbox.service_url}/fault")


def test_health_says_which_release_runs_and_the_deploy_command_switches_it(sandbox: SandboxInfo) -> None:
    health = f"{sandbox.service_url}/health"
    assert httpx.get(health).json() == {"status": "ok", "version": "unknown"}  # nothing deployed yet
    try:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "cli",
                "sandbox",
                "deploy",
                "v9.9",
                "--state-dir",
                sandbox.state_dir,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "the orders service now runs v9.9"
        assert httpx.get(health).json() == {"status": "ok", "version": "v9.9"}
    finally:
        (Path(sandbox.state_dir) / "release").unlink(missing_ok=True)
    assert httpx.get(health).json() == {"status": "ok", "version": "unknown"}


def test_metrics(sandbox: SandboxInfo) -> None:
    metrics = httpx.get(f"{sandbox.service_url}/metrics").text
    assert 'http_requests_total{status="500",variant="candidate"}' in metrics
    assert "http_request_duration_seconds_bucket" in metrics


def test_a_taken_port_is_named(sandbox: SandboxInfo) -> None:
    port = int(sandbox.service_url.rsplit(":", 1)[1])
    with pytest.raises(PortInUse, match=f"port {port} on 127.0.0.1, wanted for service, is already in use"):
        ensure_port_free(port, "service")
