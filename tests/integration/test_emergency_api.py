"""An emergency rollback fired over Prefect's REST API, with the server's basic auth on."""

import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo import MongoClient

from rollout.adapters.run_state import RunStateStore
from rollout.lifecycle.statuses import Status
from rollout.sandbox.stack import SandboxInfo
from tests.plans import PlanFiles
from tests.prefect_server import prefect_env, prefect_server, running

pytestmark = pytest.mark.integration

AUTH = ("oncall", "correct horse battery staple")
SERVE = (
    "import sys; from flows.rollback import rollback_flow; "
    "rollback_flow.serve(name='emergency-rollback', parameters={'plan_path': sys.argv[1]})"
)


def flow_runs(api: str) -> list[dict[str, Any]]:
    response = httpx.post(f"{api}/flow_runs/filter", json={"limit": 50}, auth=AUTH)
    response.raise_for_status()
    runs: list[dict[str, Any]] = response.json()
    return runs


def test_a_rollback_fired_over_the_api_needs_credentials_and_valid_parameters(
    sandbox: SandboxInfo, tmp_path: Path, plan_file: PlanFiles
) -> None:
    plan = str(plan_file("api-test", file="plan.yaml", backup=None))
    client: MongoClient[dict[str, Any]] = MongoClient(sandbox.mongodb_uri)
    runs = RunStateStore(client[sandbox.database]["rollout_runs"])
    client[sandbox.database]["rollout_runs"].delete_one({"_id": "api-test"})
    # A rollout that moved traffic and is still going: what an emergency rollback is for.
    runs.claim("api-test", "run-1", "v2", timedelta(minutes=5), version="v2", stable_before="v1")
    runs.move("api-test", Status.STEPPING, by="run run-1", why="ramp 100%", run_id="run-1")
    with prefect_server(tmp_path, ":".join(AUTH)) as api:
        env = prefect_env(
            tmp_path / "worker", {"PREFECT_API_URL": api, "PREFECT_API_AUTH_STRING": ":".join(AUTH)}
        )
        with running([sys.executable, "-c", SERVE, plan], env, tmp_path / "serve.log"):
            deployment = None
            deadline = time.monotonic() + 120
            while deployment is None and time.monotonic() < deadline:
                found = httpx.get(f"{api}/deployments/name/rollback/emergency-rollback", auth=AUTH)
                deployment = found.json() if found.status_code == 200 else None
                time.sleep(0.5)
            assert deployment is not None, (tmp_path / "serve.log").read_text()[-2000:]
            create = f"{api}/deployments/{deployment['id']}/create_flow_run"
            ask = {"parameters": {"reason": "5xx at 50 % in checkout", "severity": "SEV1"}}

            assert httpx.post(create, json=ask).status_code == 401
            assert httpx.post(create, json=ask, auth=("oncall", "wrong")).status_code == 401
            assert flow_runs(api) == []

            for bad in (
                {"severity": "SEV1"},
                {"reason": "x", "severity": "SEV9"},
                {"reason": "", "severity": "SEV2"},
            ):
                refused = httpx.post(create, json={"parameters": bad}, auth=AUTH)
                assert refused.status_code in (409, 422), refused.text
            assert flow_runs(api) == []

            started = httpx.post(create, json=ask, auth=AUTH)
            assert started.status_code == 201, started.text
            run_id = started.json()["id"]
            state: dict[str, Any] = {}
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline:
                state = httpx.get(f"{api}/flow_runs/{run_id}", auth=AUTH).json()["state"]
                if state["type"] in {"COMPLETED", "FAILED", "CRASHED"}:
                    break
                time.sleep(1)
            assert (state["type"], state["name"]) == ("COMPLETED", "RolledBack"), (
                tmp_path / "serve.log"
            ).read_text()[-3000:]
            assert state["message"].endswith("5xx at 50 % in checkout")
    record = runs.get("api-test")
    client.close()
    assert record is not None and record.status is Status.ROLLED_BACK
