"""The Prefect UI as our users use it, in Chromium: a plan pasted into the run form, the approval's
Resume form (what is decided, no default answer, every checklist box needed), a rejection rolling
back, and the rollout's table, progress and incident report in its artifacts.

A self-hosted server serving its UI, `make deploy`, a process worker, the sandbox; screenshots of
every page looked at are saved (see :mod:`tests.browser`).
"""

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import yaml
from pymongo import MongoClient

from rollout.sandbox.stack import SandboxInfo
from tests.browser import Browser, browser
from tests.operator import AUTH, Operator

pytestmark = pytest.mark.integration

CHECKLIST = ["Tests pass", "Data-quality report clean", "Support team ready"]


@pytest.fixture()
def ui(ops: Operator) -> Iterator[Browser]:
    with browser(ops.api.removesuffix("/api"), AUTH) as opened:
        yield opened


def plan_text(name: str, flag: str) -> str:
    """A two-phase plan: 10 % internal, then a pilot phase behind an approval with a checklist."""
    window = {"interval": "1s", "count": 2, "gates": ["errors"]}
    plan = {
        "name": name,
        "release": {"version": "checkout-v2026.12.01", "stable_version": "checkout-v2026.11.20"},
        "flag": flag,
        "backup": {"enabled": False, "waived_by": "the UI tests (no data is changed)"},
        "gates": {"errors": {"query": "vector(0.01)", "max": 0.05}},
        "phases": [
            {"name": "internal", "ramp": [10], "window": window},
            {
                "name": "pilot",
                "approval": {"timeout": "30m", "checklist": CHECKLIST},
                "ramp": [50, 100],
                "window": window,
            },
        ],
        "rollback": {"watch": {"duration": "1s", "interval": "1s"}},
    }
    return yaml.safe_dump(plan, sort_keys=False)


def start_from_the_form(ops: Operator, ui: Browser, name: str, flag: str, shot: str) -> str:
    """Start a run of the two-phase plan from the form; the run's id once it waits for the approval."""
    run_id = paste_and_submit(ops, ui, plan_text(name, flag), shot)
    paused = ops.wait(run_id, {"PAUSED", "FAILED", "COMPLETED", "CRASHED"})
    assert paused["state"]["type"] == "PAUSED", paused["state"]
    # The run restates its Paused state with a message just after suspending.
    deadline = time.monotonic() + 30
    while not paused["state"]["message"] and time.monotonic() < deadline:
        time.sleep(0.2)
        paused = ops.run(run_id)
    return run_id


def paste_and_submit(ops: Operator, ui: Browser, text: str, shot: str) -> str:
    """Paste ``text`` into rollout-manual's run form (its plan_path prefilled) and submit; the run's id."""
    ui.open(f"/deployments/deployment/{ops.deployment_id('rollout', 'rollout-manual')}/run")
    prefilled = ui.field(ui.page, "plan_path").locator("textarea").input_value()
    assert prefilled == "deployments/plans/sandbox-demo.yaml"
    assert ui.field(ui.page, "targets").count() == 0  # plumbing is not in the form
    ui.field(ui.page, "plan_yaml").locator("textarea").fill(text)
    ui.shot(shot)
    before = {r["id"] for r in ops.runs_of("rollout")}
    ui.submit(f"{shot}-submitted")  # the UI shows the deployment's runs next
    run_id = ""
    deadline = time.monotonic() + 60
    while not run_id:
        assert time.monotonic() < deadline, "the form started no run"
        started = [r for r in ops.runs_of("rollout") if r["id"] not in before]
        run_id = started[0]["id"] if started else ""
        time.sleep(0.5)
    assert started[0]["parameters"]["plan_yaml"] == text, started[0]["parameters"]
    return run_id


def open_resume_form(ui: Browser, run_id: str) -> Any:
    ui.open(f"/runs/flow-run/{run_id}")
    ui.page.get_by_role("button", name="Resume").first.click()
    dialog = ui.page.get_by_role("dialog")
    dialog.get_by_text("Approve phase").wait_for()
    return dialog


def artifacts(ops: Operator, run_id: str) -> dict[str, dict[str, Any]]:
    """The run's artifacts by key, the newest of each."""
    body = {"artifacts": {"flow_run_id": {"any_": [run_id]}}, "sort": "CREATED_DESC", "limit": 50}
    response = httpx.post(f"{ops.api}/artifacts/filter", json=body, auth=AUTH, timeout=30)
    response.raise_for_status()
    found: dict[str, dict[str, Any]] = {}
    for artifact in response.json():
        found.setdefault(artifact["key"], artifact)
    return found


def test_a_pasted_plan_asks_an_approval_that_says_what_is_decided_and_a_rejection_rolls_back(
    ops: Operator, ui: Browser
) -> None:
    run_id = start_from_the_form(ops, ui, "ui-reject", "UI_REJECT", "01-run-form-with-a-pasted-plan")
    paused = ops.run(run_id)
    assert paused["name"] == "ui-reject checkout-v2026.12.01"
    assert paused["state"]["message"].startswith("waiting for a decision on starting phase pilot until ")

    ui.open(f"/runs/flow-run/{run_id}")
    ui.page.get_by_text("ui-reject checkout-v2026.12.01").first.wait_for()
    ui.shot("02-paused-run")
    ui.page.get_by_text("Details", exact=True).first.click()
    ui.page.get_by_text("waiting for a decision on starting phase pilot until").first.wait_for()
    ui.shot("02-paused-run-details")

    dialog = open_resume_form(ui, run_id)
    text = dialog.inner_text()
    for said in (
        "Approve phase pilot of ui-reject?",
        "Traffic now: 10%",
        "Deadline: ",
        "max 0.05",
        *CHECKLIST,
    ):
        assert said in text, said
    ui.shot("03-resume-form")
    # No default answer: a form left as it opened is refused, not read as either answer.
    dialog.get_by_role("button", name="Submit").click()
    dialog.get_by_text("'decision' is a required property").wait_for()
    assert ui.choose(dialog, "Decision", "approve") == ["approve", "reject"]
    ui.field(dialog, "Approver").locator("textarea").fill("maria")
    ui.field(dialog, CHECKLIST[0]).get_by_role("switch").click()
    dialog.get_by_role("button", name="Submit").click()
    ui.page.get_by_text("Validation failed for field").first.wait_for()
    ui.shot("04-approval-with-a-box-unticked-refused")
    assert ops.run(run_id)["state"]["type"] == "PAUSED"

    ui.choose(dialog, "Decision", "reject")
    ui.field(dialog, "Note").locator("textarea").fill("support not ready")
    dialog.get_by_role("button", name="Submit").click()
    ended = ops.wait(run_id)
    assert (ended["state"]["name"], ended["state"]["message"]) == (
        "RolledBack",
        "maria rejected pilot: support not ready",
    )

    ui.open(f"/runs/flow-run/{run_id}")
    ui.page.locator(".state-badge", has_text="RolledBack").first.wait_for()
    ui.shot("05-rolled-back-run")
    ui.page.get_by_text("Artifacts", exact=True).first.click()
    ui.page.get_by_text("ui-reject-incident-report").first.wait_for()
    ui.shot("06-artifacts-of-the-rolled-back-run")

    found = artifacts(ops, run_id)
    assert {
        "ui-reject-rollout",
        "ui-reject-progress",
        "ui-reject-incident-report",
        "ui-reject-rollback-run",
    } <= set(found)
    assert found["ui-reject-progress"]["description"].startswith("RolledBack: maria rejected pilot")
    ui.open(f"/artifacts/artifact/{found['ui-reject-rollout']['id']}")
    table = ui.page.locator("table").first
    table.wait_for()
    assert "0.01 (max 0.05) ok" in table.inner_text()
    assert "approval: rejected by maria" in ui.page.inner_text("body")
    ui.shot("07-rollout-table")
    ui.open(f"/artifacts/artifact/{found['ui-reject-incident-report']['id']}")
    chart = ui.page.locator("img[src^='data:image/png']").first
    chart.wait_for()
    assert chart.evaluate("img => img.complete && img.naturalWidth") > 300
    assert "approval:pilot: rejected by maria at " in ui.page.inner_text("body")  # its Decisions
    ui.shot("08-incident-report")
    ui.shot_of(chart, "08-incident-report-chart")


def test_an_approval_with_every_box_ticked_carries_the_rollout_on_to_promotion(
    ops: Operator, ui: Browser
) -> None:
    run_id = start_from_the_form(ops, ui, "ui-approve", "UI_APPROVE", "09-run-form-for-an-approval")
    dialog = open_resume_form(ui, run_id)
    ui.choose(dialog, "Decision", "approve")
    ui.field(dialog, "Approver").locator("textarea").fill("ana")
    for item in CHECKLIST:
        ui.field(dialog, item).get_by_role("switch").click()
    ui.shot("10-approval-with-every-box-ticked")
    dialog.get_by_role("button", name="Submit").click()
    ended = ops.wait(run_id)
    assert ended["state"]["name"] == "Promoted", ended["state"]
    message = ended["state"]["message"]
    assert (
        message.startswith("ui-approve: 100%; pilot: approved by ana at ") and "(3 checks ticked)" in message
    )
    found = artifacts(ops, run_id)
    assert found["ui-approve-progress"]["description"].startswith("Promoted: ")
    ui.open(f"/artifacts/artifact/{found['ui-approve-rollout']['id']}")
    ui.page.locator("table").first.wait_for()
    assert "approval: approved by ana" in ui.page.inner_text("body")
    assert "(3 checks ticked)" in ui.page.inner_text("body")
    ui.shot("11-rollout-table-of-a-promoted-run")
    ui.open("/runs")
    ui.page.locator(".state-badge", has_text="Promoted").first.wait_for()
    ui.shot("12-runs-list")
    said = ops.log_lines(run_id)
    assert any("ui-approve" in line or "UI_APPROVE" in line for line in said), said[:20]
    assert "Finished in state Completed()" not in said  # the UI shows each task run's state already


def test_the_emergency_rollback_form_lists_every_choice_and_hides_the_plumbing(
    ops: Operator, ui: Browser
) -> None:
    ui.open(f"/deployments/deployment/{ops.deployment_id('rollback', 'emergency-rollback')}/run")
    assert ui.choose(ui.page, "severity", "SEV1") == ["as planned", "SEV1", "SEV2", "SEV3"]
    assert ui.choose(ui.page, "restore", "none") == ["as planned", "none", "selective", "full"]
    for plumbing in ("targets", "first_bad_at", "on_behalf_of"):
        assert ui.field(ui.page, plumbing).count() == 0, plumbing
    assert "Property is type" not in ui.page.inner_text("body")  # no None toggles
    ui.shot("13-emergency-rollback-form")


def test_a_pasted_plan_that_does_not_validate_fails_the_run_naming_each_field_and_changes_nothing(
    ops: Operator, ui: Browser, sandbox: SandboxInfo
) -> None:
    bad = plan_text("ui-bad", "UI_BAD").replace("release:", "releases:").replace("max: 0.05", "max: lots")
    run_id = paste_and_submit(ops, ui, bad, "14-run-form-with-a-bad-plan")
    ended = ops.wait(run_id)
    assert ended["state"]["name"] == "InvalidInput", ended["state"]
    lines = ended["state"]["message"].splitlines()
    assert "release: required; add it" in lines and any(line.startswith("releases: ") for line in lines), (
        lines
    )
    assert any(line.startswith("gates.errors.max: ") for line in lines), lines
    ui.open(f"/runs/flow-run/{run_id}")
    ui.page.get_by_text("Details", exact=True).first.click()
    ui.page.get_by_text("release: required; add it").first.wait_for()
    ui.shot("15-a-bad-plan-run")
    with MongoClient(sandbox.mongodb_uri) as client:
        assert client[sandbox.database]["feature_flags"].find_one({"_id": "UI_BAD"}) is None  # unchanged
