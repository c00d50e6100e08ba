"""`make deploy` on a self-hosted Prefect server: every deployment, its schedules and its triggers.

The shared operator stack's server got them from `make deploy` on its first start; running it
again, as an operator does after every change, must leave exactly the same set.
"""

from typing import Any

import httpx
import pytest

from tests.operator import AUTH, Operator, make_deploy

pytestmark = pytest.mark.integration


def api_list(api: str, what: str) -> list[dict[str, Any]]:
    response = httpx.post(f"{api}/{what}/filter", json={}, auth=AUTH)
    response.raise_for_status()
    found: list[dict[str, Any]] = response.json()
    return found


def test_make_deploy_registers_every_deployment_with_its_schedules_and_triggers(ops: Operator) -> None:
    api = ops.api
    make_deploy(ops.env)

    deployments = {d["name"]: d for d in api_list(api, "deployments")}
    assert set(deployments) == {
        "rollout-manual",
        "rollout-scheduled",
        "pilot-promotion",
        "data-checks-nightly",
        "backup-on-demand",
        "restore",
        "emergency-rollback",
        "rollout-reconcile",
    }
    reconciler = deployments["rollout-reconcile"]
    assert [(s["schedule"]["interval"], s["active"]) for s in reconciler["schedules"]] == [(60.0, True)]
    assert reconciler["global_concurrency_limit"]["limit"] == 1
    assert reconciler["concurrency_options"]["collision_strategy"] == "CANCEL_NEW"
    nightly = deployments["data-checks-nightly"]["schedules"]
    assert [(s["schedule"]["cron"], s["active"]) for s in nightly] == [("0 2 * * *", True)]
    scheduled = deployments["rollout-scheduled"]["schedules"]
    assert [(s["schedule"]["cron"], s["active"]) for s in scheduled] == [("0 9 * * 1-5", False)]
    assert all(d["work_pool_name"] == "rollout-local" for d in deployments.values())
    schema = deployments["emergency-rollback"]["parameter_openapi_schema"]
    assert "reason" in schema["required"]
    # Forms people use: no plumbing, every dropdown with its values, no None toggles.
    assert not {"targets", "first_bad_at", "on_behalf_of"} & set(schema["properties"])
    assert schema["properties"]["severity"]["enum"] == ["as planned", "SEV1", "SEV2", "SEV3"]
    assert schema["properties"]["restore"]["default"] == "as planned"
    form = deployments["rollout-manual"]["parameter_openapi_schema"]["properties"]
    assert "targets" not in form
    assert form["approval_timeout"] == {
        "default": "",
        "description": form["approval_timeout"]["description"],
        "position": form["approval_timeout"]["position"],
        "title": "approval_timeout",
        "type": "string",
    }
    assert form["plan_yaml"]["format"] == "textarea"
    # Only the rollout's own verdict starts a rollback: no trigger on a run's Failed or Crashed state.
    automations = {a["name"]: a for a in api_list(api, "automations")}
    assert set(automations) == {"rollout-failed-event"}
    trigger = automations["rollout-failed-event"]["trigger"]
    assert trigger["expect"] == ["rollout.failed"]
    [action] = automations["rollout-failed-event"]["actions"]
    assert action["parameters"]["on_behalf_of"] == "{{ event.payload.run_id }}"
