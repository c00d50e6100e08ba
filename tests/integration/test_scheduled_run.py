"""A scheduled rollout on a self-hosted Prefect server, picked up by a process worker, runs the demo plan."""

import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from pymongo import MongoClient

from rollout.adapters.flags import FlagStore
from rollout.audience.flag_state import FlagChange
from rollout.sandbox.stack import SandboxInfo
from tests.operator import AUTH, FINAL, Operator
from tests.prefect_server import ROOT

pytestmark = pytest.mark.integration

DEMO = ROOT / "deployments" / "plans" / "sandbox-demo.yaml"
DRILL = "rollout-scheduled-drill"


def scheduled_config(tmp_path: Path, first_run: datetime) -> Path:
    """The shipped rollout-scheduled deployment named ``DRILL``, its cron replaced by a schedule due soon."""
    shipped = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    [deployment] = [d for d in shipped["deployments"] if d["name"] == "rollout-scheduled"]
    deployment["name"] = DRILL
    deployment["parameters"] = {"plan_path": str(DEMO)}
    deployment["schedules"] = [{"interval": 3600, "anchor_date": first_run.isoformat(), "active": True}]
    (tmp_path / "flows").symlink_to(ROOT / "flows")
    config = tmp_path / "prefect.yaml"
    config.write_text(yaml.safe_dump({**shipped, "deployments": [deployment]}))
    return config


def api(base: str, what: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    response = httpx.post(f"{base}/{what}/filter", json=body, auth=AUTH)
    response.raise_for_status()
    found: list[dict[str, Any]] = response.json()
    return found


def test_a_scheduled_run_executes_the_demo_plan_through_a_worker(
    ops: Operator, sandbox: SandboxInfo, tmp_path: Path
) -> None:
    # Due once registration is surely done; an interval schedule whose first slot has passed
    # would next be due an hour later.
    config = scheduled_config(tmp_path, datetime.now(UTC) + timedelta(seconds=15))
    done = subprocess.run(
        [str(Path(sys.executable).parent / "rollout"), "deploy", str(config)],
        cwd=ROOT,
        env=ops.env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    deployment = ops.deployment_id("rollout", DRILL)
    try:
        run: dict[str, Any] | None = None
        deadline = time.monotonic() + 300
        mine = {"deployments": {"id": {"any_": [deployment]}}, "limit": 1, "sort": "EXPECTED_START_TIME_ASC"}
        while time.monotonic() < deadline:
            runs = api(ops.api, "flow_runs", mine)
            run = runs[0] if runs else None
            if run is not None and run["state_type"] in FINAL:
                break
            time.sleep(1)
        assert run is not None, "the scheduler made no run: " + ops.tail()
        assert run["state_type"] == "COMPLETED", ops.tail()
        artifacts = api(ops.api, "artifacts", {"flow_runs": {"id": {"any_": [run["id"]]}}})
    finally:
        httpx.delete(f"{ops.api}/deployments/{deployment}", auth=AUTH).raise_for_status()

    kinds = {(a["key"], a["type"]) for a in artifacts}
    assert {
        ("sandbox-demo-data-checks", "table"),
        ("sandbox-demo-rollout", "table"),
        ("sandbox-demo-progress", "progress"),
    } <= kinds, kinds
    [table] = [a for a in artifacts if a["key"] == "sandbox-demo-rollout"]  # one, rewritten at each step
    assert table["description"].startswith("sandbox-demo: Promoted: ")

    assert run["parameters"] == {"plan_path": str(DEMO)}
    assert run["expected_start_time"] is not None and run["auto_scheduled"] is True
    client: MongoClient[dict[str, Any]] = MongoClient(sandbox.mongodb_uri)
    try:
        record = client[sandbox.database]["rollout_runs"].find_one({"_id": "sandbox-demo"})
        assert record is not None and record["run_id"] == run["id"] and record["status"] == "promoted"
        flags = FlagStore(client[sandbox.database]["feature_flags"])
        assert flags.get("USE_UNIFIED_ORDERS").percentage == 100
    finally:
        for name in (
            "USE_UNIFIED_ORDERS",
            "SHOW_UNIFIED_DASHBOARD",
            "ENABLE_DUAL_WRITE",
            "SHOW_SOURCE_INDICATOR",
        ):
            flags.set(name, FlagChange(enabled=False, percentage=0, users=(), stores=()))
        client.close()
