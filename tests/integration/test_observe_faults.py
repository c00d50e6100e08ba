"""Prometheus lost, empty or NaN in a window; the flag store lost mid-ramp: a known, safe outcome."""

import threading
import time
from typing import Any
from urllib.parse import urlsplit

import pytest
from pymongo import MongoClient

from flows.rollout_flow import run_rollout
from rollout.adapters.flags import FlagStore
from rollout.audience.flag_state import FlagChange
from rollout.errors import ServiceUnavailable
from rollout.plan.model import Targets
from rollout.sandbox.stack import SandboxInfo
from tests.plans import PlanFiles
from tests.tcp_proxy import CuttableProxy

pytestmark = pytest.mark.integration

FLAG = "FAULT_TEST_FLAG"
SERVICE_FLAG = "USE_UNIFIED_ORDERS"  # the flag the sandbox's service reads: candidate traffic to measure


def fault_plan(
    plan_file: PlanFiles,
    name: str,
    gates: dict[str, Any],
    on_inconclusive: str = "rollback",
    flag: str = FLAG,
) -> str:
    """An allowlist then 25 and 50 %, every window judged by ``gates``; targets given when run."""
    window = {
        "interval": "1s",
        "count": 3,
        # A couple of users make little traffic: give it a few seconds before judging.
        "initial_delay": "4s",
        "gates": sorted(gates),
        "on_inconclusive": on_inconclusive,
        "decision_timeout": "2s",
    }
    phases = [
        {"name": "internal", "allowlist": {"users": ["dev@example.com"]}, "window": window},
        {"name": "ramp", "ramp": [25, 50], "window": window},
    ]
    return str(plan_file(name, file="plan.yaml", targets=None, flag=flag, gates=gates, phases=phases))


def with_upstream(targets: Targets, **urls: str) -> Targets:
    data = targets.model_dump(mode="json", exclude_none=True, by_alias=True)
    if "prometheus" in urls:
        data["prometheus"]["url"] = urls["prometheus"]
    if "mongodb" in urls:
        data["mongodb"]["uri"] = urls["mongodb"]
    return Targets.model_validate(data)


@pytest.fixture()
def flags(sandbox: SandboxInfo) -> Any:
    client: MongoClient[dict[str, Any]] = MongoClient(sandbox.mongodb_uri)
    store = FlagStore(client[sandbox.database]["feature_flags"])
    off = FlagChange(enabled=False, percentage=0, users=(), stores=())
    store.set(FLAG, off)
    store.set(SERVICE_FLAG, off)
    yield store
    client[sandbox.database]["feature_flags"].delete_one({"_id": FLAG})
    store.set(SERVICE_FLAG, off)
    client.close()


def cut_after_first_step(proxy: CuttableProxy, sandbox: SandboxInfo, plan: str) -> threading.Thread:
    def watch() -> None:
        client: MongoClient[dict[str, Any]] = MongoClient(sandbox.mongodb_uri)
        runs = client[sandbox.database]["rollout_runs"]
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            found = runs.find_one({"_id": plan}) or {}
            if found.get("status") in {"stepping", "observing"} and len(found.get("steps", [])) >= 1:
                proxy.cut()
                break
            time.sleep(0.05)
        client.close()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_prometheus_stopped_during_a_window_rolls_back_and_never_reads_as_a_pass(
    prefect_api: None, sandbox: SandboxInfo, flags: FlagStore, plan_file: PlanFiles
) -> None:
    assert sandbox.prometheus_url is not None
    proxy = CuttableProxy(urlsplit(sandbox.prometheus_url).port or 9090)
    gates = {"errors": {"sli": "error_ratio", "max": 0.05, "rate_window": "10s"}}
    plan = fault_plan(plan_file, "fault-prometheus-stopped", gates, flag=SERVICE_FLAG)
    watcher = cut_after_first_step(proxy, sandbox, "fault-prometheus-stopped")
    targets = with_upstream(sandbox.targets(), prometheus=f"http://127.0.0.1:{proxy.port}")
    result = run_rollout(plan_path=plan, targets=targets)
    watcher.join(timeout=5)
    assert result.status == "rolled_back"
    assert result.steps[0].outcome == "successful"
    assert result.steps[-1].outcome in {"error", "inconclusive"}
    assert "Prometheus" in result.steps[-1].reason or "no data" in result.steps[-1].reason
    assert all(value is None for value in result.steps[-1].values.values())
    assert result.rollback is not None and result.rollback.traffic_off_at is not None
    flag = flags.get(SERVICE_FLAG)
    assert (flag.enabled, flag.percentage, flag.users) == (False, 0, ())


@pytest.mark.parametrize(
    ("answer", "query"),
    [
        ("empty", "sum(rate(no_such_metric_total[10s]))"),
        ("NaN", "vector(0) / vector(0)"),
    ],
)
def test_prometheus_answering_empty_or_nan_is_inconclusive_never_a_pass(
    prefect_api: None,
    sandbox: SandboxInfo,
    flags: FlagStore,
    plan_file: PlanFiles,
    answer: str,
    query: str,
) -> None:
    name = f"fault-prometheus-{answer.lower()}"
    plan = fault_plan(plan_file, name, {"odd": {"query": query, "max": 0.05}})
    result = run_rollout(plan_path=plan, targets=sandbox.targets())
    assert result.status == "rolled_back"
    assert [s.outcome for s in result.steps] == ["inconclusive"]
    assert result.steps[0].values == {"odd": None}
    flag = flags.get(FLAG)
    assert (flag.enabled, flag.percentage, flag.users) == (False, 0, ())


def test_the_flag_store_lost_mid_ramp_leaves_traffic_at_the_last_verified_step(
    prefect_api: None, sandbox: SandboxInfo, flags: FlagStore, plan_file: PlanFiles
) -> None:
    proxy = CuttableProxy(urlsplit(sandbox.mongodb_uri).port or 27017)
    gates = {"errors": {"sli": "error_ratio", "max": 0.05, "rate_window": "10s"}}
    plan = fault_plan(plan_file, "fault-flag-store", gates)
    watcher = cut_after_first_step(proxy, sandbox, "fault-flag-store")
    uri = f"mongodb://127.0.0.1:{proxy.port}/?directConnection=true&serverSelectionTimeoutMS=2000"
    targets = with_upstream(sandbox.targets(), mongodb=uri)
    with pytest.raises(ServiceUnavailable, match="MongoDB"):
        run_rollout(plan_path=plan, targets=targets)
    watcher.join(timeout=5)
    flag = flags.get(FLAG)
    # The write of the next step never happened: the allowlist, verified, is what users get.
    assert (flag.enabled, flag.percentage, flag.users) == (True, 0, ("dev@example.com",))
    client: MongoClient[dict[str, Any]] = MongoClient(sandbox.mongodb_uri)
    left = client[sandbox.database]["rollout_runs"].find_one({"_id": "fault-flag-store"})
    client.close()
    assert left is not None and left["status"] in {"stepping", "observing"}
    assert [s["key"] for s in left["steps"]] == ["internal/0"]
