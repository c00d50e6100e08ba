"""An emergency rollback fired over Prefect's REST API, with the server's basic auth on.

On the shared operator stack: the shipped `emergency-rollback` deployment, run by its worker.
"""

from datetime import timedelta
from typing import Any

import httpx
import pytest
from pymongo import MongoClient

from rollout.adapters.run_state import RunStateStore
from rollout.lifecycle.statuses import Status
from rollout.sandbox.stack import SandboxInfo
from tests.operator import AUTH, Operator
from tests.plans import PlanFiles

pytestmark = pytest.mark.integration


def runs_of(ops: Operator, deployment: str) -> list[dict[str, Any]]:
    """Every run of the deployment with id ``deployment``."""
    body = {"deployments": {"id": {"any_": [deployment]}}, "sort": "START_TIME_DESC", "limit": 50}
    response = httpx.post(f"{ops.api}/flow_runs/filter", json=body, auth=AUTH)
    response.raise_for_status()
    runs: list[dict[str, Any]] = response.json()
    return runs


def test_a_rollback_fired_over_the_api_needs_credentials_and_valid_parameters(
    ops: Operator, sandbox: SandboxInfo, plan_file: PlanFiles
) -> None:
    plan = str(plan_file("api-test", file="plan.yaml", backup=None))
    client: MongoClient[dict[str, Any]] = MongoClient(sandbox.mongodb_uri)
    runs = RunStateStore(client[sandbox.database]["rollout_runs"])
    client[sandbox.database]["rollout_runs"].delete_one({"_id": "api-test"})
    # A rollout that moved traffic and is still going: what an emergency rollback is for.
    runs.claim("api-test", "run-1", "v2", timedelta(minutes=5), version="v2", stable_before="v1")
    runs.move("api-test", Status.STEPPING, by="run run-1", why="ramp 100%", run_id="run-1")
    api = ops.api
    deployment = ops.deployment_id("rollback", "emergency-rollback")
    before = {run["id"] for run in runs_of(ops, deployment)}
    create = f"{api}/deployments/{deployment}/create_flow_run"
    ask = {"parameters": {"plan_path": plan, "reason": "5xx at 50 % in checkout", "severity": "SEV1"}}

    assert httpx.post(create, json=ask).status_code == 401
    assert httpx.post(create, json=ask, auth=("oncall", "wrong")).status_code == 401
    assert {run["id"] for run in runs_of(ops, deployment)} == before

    for bad in (
        {"plan_path": plan, "severity": "SEV1"},
        {"plan_path": plan, "reason": "x", "severity": "SEV9"},
        {"plan_path": plan, "reason": "", "severity": "SEV2"},
    ):
        refused = httpx.post(create, json={"parameters": bad}, auth=AUTH)
        assert refused.status_code in (409, 422), refused.text
    assert {run["id"] for run in runs_of(ops, deployment)} == before

    started = httpx.post(create, json=ask, auth=AUTH)
    assert started.status_code == 201, started.text
    run_id = started.json()["id"]
    state = ops.wait(run_id)["state"]
    assert (state["type"], state["name"]) == ("COMPLETED", "RolledBack"), ops.tail()
    assert state["message"].endswith("5xx at 50 % in checkout")
    record = runs.get("api-test")
    client.close()
    assert record is not None and record.status is Status.ROLLED_BACK
