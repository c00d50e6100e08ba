"""The emergency rollback's triggers, exactly as prefect.yaml declares them, on a self-hosted server."""

import json
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from rollout.sandbox.stack import SandboxInfo
from tests.prefect_server import ROOT, prefect_env, prefect_server, running

pytestmark = pytest.mark.integration

AUTH = ("automation", "s3cret")
SERVE = """
import sys, yaml
from prefect.events import DeploymentEventTrigger
from flows.rollback import rollback_flow
spec = next(d for d in yaml.safe_load(open(sys.argv[1]))["deployments"] if d["name"] == "emergency-rollback")
triggers = [DeploymentEventTrigger(**{k: v for k, v in t.items() if k != "type"}) for t in spec["triggers"]]
rollback_flow.serve(name="emergency-rollback", parameters={"plan_path": sys.argv[2]}, triggers=triggers)
"""
EMIT = """
import sys
from rollout import events
events.emit(events.FAILED, "trigger-test", sys.argv[1], reason="p99 over 2 s for 10 minutes")
"""
FAILING_ROLLOUT = """
import sys
from flows.rollout_flow import run_rollout
run_rollout(plan_path=sys.argv[1])
"""


def write_plan(tmp_path: Path, sandbox: SandboxInfo, name: str, gate_query: str) -> str:
    plan = {
        "name": name,
        "release": {"version": "v2", "stable_version": "v1"},
        "flag": "USE_UNIFIED_ORDERS",
        "targets": sandbox.targets().model_dump(mode="json", exclude_none=True, by_alias=True),
        "backup": {"enabled": False, "waived_by": "trigger test: no data involved"},
        "gates": {"errors": {"query": gate_query, "max": 1}},
        "phases": [{"name": "all", "ramp": [100], "window": {"count": 1, "gates": ["errors"]}}],
        "rollback": {"watch": {"interval": "1s", "duration": "1s"}},
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(plan))
    return str(path)


def rollback_runs(api: str) -> list[dict[str, Any]]:
    body = {"limit": 20, "flows": {"name": {"any_": ["rollback"]}}, "sort": "EXPECTED_START_TIME_ASC"}
    response = httpx.post(f"{api}/flow_runs/filter", json=body, auth=AUTH)
    response.raise_for_status()
    runs: list[dict[str, Any]] = response.json()
    return runs


def wait_for_run(api: str, count: int, logs: list[Path]) -> dict[str, Any]:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        runs = rollback_runs(api)
        if len(runs) >= count and runs[count - 1]["state"]["type"] in {"COMPLETED", "FAILED", "CRASHED"}:
            return runs[count - 1]
        time.sleep(1)
    tails = "\n".join(log.read_text()[-1500:] for log in logs if log.exists())
    raise AssertionError(
        f"no finished rollback run #{count}: {json.dumps(rollback_runs(api))[:800]}\n{tails}"
    )


def test_a_rollout_failed_event_and_a_failed_rollout_run_each_start_the_rollback(
    sandbox: SandboxInfo, tmp_path: Path
) -> None:
    healthy = write_plan(tmp_path, sandbox, "trigger-test", "vector(0)")
    broken = write_plan(tmp_path, sandbox, "trigger-broken", "sum(rate(x[1m]")
    with prefect_server(tmp_path, ":".join(AUTH)) as api:
        env = prefect_env(
            tmp_path / "client", {"PREFECT_API_URL": api, "PREFECT_API_AUTH_STRING": ":".join(AUTH)}
        )
        serve_log = tmp_path / "serve.log"
        with running([sys.executable, "-c", SERVE, str(ROOT / "prefect.yaml"), healthy], env, serve_log):
            deadline = time.monotonic() + 120
            while httpx.post(f"{api}/automations/filter", json={}, auth=AUTH).json() == []:
                assert time.monotonic() < deadline, serve_log.read_text()[-2000:]
                time.sleep(0.5)
            time.sleep(3)  # the trigger service loads new automations periodically

            with running([sys.executable, "-c", EMIT, healthy], env, tmp_path / "emit.log") as emitter:
                emitter.wait(60)
            first = wait_for_run(api, 1, [serve_log, tmp_path / "emit.log"])
            assert first["state"]["type"] == "COMPLETED"
            assert first["parameters"]["reason"] == "p99 over 2 s for 10 minutes"
            assert first["parameters"]["plan_path"] == healthy

            with running(
                [sys.executable, "-c", FAILING_ROLLOUT, broken], env, tmp_path / "rollout.log"
            ) as rollout:
                rollout.wait(120)
            second = wait_for_run(api, 2, [serve_log, tmp_path / "rollout.log"])
            assert second["parameters"]["plan_path"] == broken
            assert second["parameters"]["reason"].startswith("rollout run ")
            assert second["parameters"]["reason"].endswith("ended Failed")
            assert second["state"]["type"] == "COMPLETED"
