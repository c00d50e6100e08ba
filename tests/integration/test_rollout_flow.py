import re
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from prefect.client.schemas.objects import StateType
from pymongo import MongoClient

from flows.outcomes import result_of
from flows.rollback import run_rollback
from flows.rollout_flow import rollout_flow, run_rollout
from flows.rollout_result import RolloutResult
from rollout.adapters.flags import FlagStore
from rollout.audience.flag_state import FlagChange
from rollout.errors import GateQueryInvalid
from rollout.sandbox.stack import SandboxInfo
from tests.plans import PlanFiles

pytestmark = pytest.mark.integration

PLAN = """
name: flow-test
release: {{version: v2}}
flag: USE_UNIFIED_ORDERS
gates:
  errors: {{sli: error_ratio, max: 0.05, rate_window: 5s}}
  {extra_gate}
phases:
  - name: internal
    flags: {{ENABLE_DUAL_WRITE: true}}
    allowlist: {{users: [dev@example.com]}}
    window: {{interval: 1s, count: 1}}
  - name: ramp
    {approval}
    ramp: [50, 100]
    window: {{interval: 1s, count: 3, gates: [errors]}}
rollback:
  watch: {{interval: 1s, duration: 2s}}
"""


def flow_plan(plan_file: PlanFiles, extra_gate: str = "", approval: str = "") -> str:
    """:data:`PLAN` with an extra gate and an approval on its ramp, if given."""
    return str(plan_file.text(PLAN.format(extra_gate=extra_gate, approval=approval)))


def test_a_healthy_rollout_is_promoted_to_100(
    prefect_api: None, sandbox: SandboxInfo, flag_store: FlagStore, plan_file: PlanFiles
) -> None:
    result = run_rollout(plan_path=flow_plan(plan_file), targets=sandbox.targets())
    assert result.status == "promoted"
    assert [s.outcome for s in result.steps] == ["successful"] * 3
    flag = flag_store.get("USE_UNIFIED_ORDERS")
    assert (flag.enabled, flag.percentage, flag.users) == (True, 100, ("dev@example.com",))


def test_a_failing_candidate_is_rolled_back_to_zero_and_flags_restored(
    prefect_api: None, sandbox: SandboxInfo, flag_store: FlagStore, plan_file: PlanFiles
) -> None:
    httpx.put(f"{sandbox.service_url}/fault", json={"variant": "candidate", "error_rate": 1.0})
    state = rollout_flow(plan_path=flow_plan(plan_file), targets=sandbox.targets(), return_state=True)
    result = result_of(state, RolloutResult)
    assert result.status == "rolled_back"
    # The run says how it ended, at a glance: red, named, the gate and the time to safety.
    assert (state.type, state.name) == (StateType.FAILED, "RolledBack")
    message = state.message or ""
    assert re.fullmatch(r"ramp 1 user, 50%: errors: .*; traffic 0 in \d+\.\d s", message), message
    assert result.steps[-1].outcome == "failed"
    assert result.rollback is not None and result.rollback.ok
    assert result.time_to_safety is not None and result.time_to_safety < 5
    flag = flag_store.get("USE_UNIFIED_ORDERS")
    assert (flag.enabled, flag.percentage) == (False, 0)
    assert flag_store.get("ENABLE_DUAL_WRITE").enabled is False


def test_an_invalid_gate_query_fails_before_any_traffic_changes(
    prefect_api: None, sandbox: SandboxInfo, flag_store: FlagStore, plan_file: PlanFiles
) -> None:
    before = flag_store.get("USE_UNIFIED_ORDERS")
    plan = flow_plan(plan_file, extra_gate="broken: {query: 'sum(rate(x[1m]', max: 1}")
    state = rollout_flow(plan_path=plan, targets=sandbox.targets(), return_state=True)
    assert (state.type, state.name) == (StateType.FAILED, "InvalidInput")
    assert (state.message or "").startswith("gate broken: Prometheus refused")
    with pytest.raises(GateQueryInvalid, match="gate broken: Prometheus refused"):
        result_of(state, RolloutResult)
    assert flag_store.get("USE_UNIFIED_ORDERS").version == before.version


def test_an_unanswered_approval_holds_traffic_where_it_was(
    prefect_api: None, sandbox: SandboxInfo, flag_store: FlagStore, plan_file: PlanFiles
) -> None:
    plan = flow_plan(plan_file, approval="approval: {timeout: 1s, on_timeout: hold}")
    state = rollout_flow(plan_path=plan, targets=sandbox.targets(), return_state=True)
    result = result_of(state, RolloutResult)
    assert result.status == "held"
    assert (state.type, state.name) == (StateType.FAILED, "Held")
    assert state.message == "nobody approved ramp within 1s: traffic stays at 1 user, 0%"
    assert "no decision in time" in result.decisions[0]
    flag = flag_store.get("USE_UNIFIED_ORDERS")
    assert (flag.enabled, flag.percentage, flag.users) == (True, 0, ("dev@example.com",))


def test_a_plan_pasted_into_the_form_runs_with_the_approval_timeout_overridden(
    prefect_api: None,
    sandbox: SandboxInfo,
    flag_store: FlagStore,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ROLLOUT_PLANS_DIR", str(tmp_path / "kept"))
    text = PLAN.format(extra_gate="", approval="approval: {timeout: 24h, on_timeout: hold}")
    result = run_rollout(plan_yaml=text, approval_timeout="1s", targets=sandbox.targets())
    assert result.status == "held"
    assert "no decision in time" in result.decisions[0]
    kept = list((tmp_path / "kept").iterdir())
    assert [k.name.split("-")[:2] for k in kept] == [["flow", "test"]]
    assert kept[0].read_text() == text


def test_an_approval_resumes_the_paused_rollout_and_is_recorded(
    prefect_api: None, sandbox: SandboxInfo, flag_store: FlagStore, plan_file: PlanFiles
) -> None:
    import threading
    import time

    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType
    from prefect.client.schemas.objects import StateType
    from prefect.client.schemas.sorting import FlowRunSort

    from flows.promote import promote_flow

    checklist = "[tests pass, support team ready]"
    plan = flow_plan(
        plan_file, approval=f"approval: {{timeout: 2m, on_timeout: rollback, checklist: {checklist}}}"
    )
    results: list[Any] = []
    # A daemon: a failing assertion must not leave the session waiting on a paused run.
    runner = threading.Thread(
        target=lambda: results.append(run_rollout(plan_path=plan, targets=sandbox.targets())), daemon=True
    )
    runner.start()
    paused = FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED])))
    deadline = time.monotonic() + 90
    run_id = None
    while run_id is None and time.monotonic() < deadline:
        with get_client(sync_client=True) as client:
            runs = client.read_flow_runs(flow_run_filter=paused, limit=5, sort=FlowRunSort.START_TIME_DESC)
        run_id = runs[0].id if runs else None
        time.sleep(0.5)
    assert run_id is not None, "the rollout never paused for approval"
    assert flag_store.get("USE_UNIFIED_ORDERS").percentage == 0
    with get_client(sync_client=True) as client:
        description = client.read_flow_run_input(run_id, "paused-1-description")
    assert "Approve phase `ramp`" in description and "- support team ready" in description
    # As the pilot-promotion deployment does it: an approval with a box unticked is refused.
    with pytest.raises(RuntimeError, match="Validation failed"):
        promote_flow(run_id=str(run_id), decision="approve", approver="maria", ticked=["tests pass"])
    ticked = ["tests pass", "Support team ready"]
    approved = promote_flow(
        run_id=str(run_id), decision="approve", approver="maria", note="pilot clean", ticked=ticked
    )
    assert approved == "approved by maria"
    runner.join(timeout=120)
    assert results and results[0].status == "promoted"
    [decision] = results[0].decisions
    assert decision.startswith("ramp: approved by maria at ") and decision.endswith(
        " UTC (2 checks ticked): pilot clean"
    )


def test_rollback_runs_on_its_own_from_the_persisted_undo_log(
    prefect_api: None, sandbox: SandboxInfo, flag_store: FlagStore, plan_file: PlanFiles
) -> None:
    from flows.outcomes import RollbackRefused
    from flows.rollback import run_rollback

    plan = flow_plan(plan_file)
    assert run_rollout(plan_path=plan, targets=sandbox.targets()).status == "promoted"
    assert flag_store.get("ENABLE_DUAL_WRITE").enabled is True
    with pytest.raises(RollbackRefused, match=r"was promoted at .*Pass --force"):
        run_rollback(plan_path=plan, reason="customer reports", targets=sandbox.targets())
    assert flag_store.get("USE_UNIFIED_ORDERS").percentage == 100  # refused: nothing changed
    result = run_rollback(plan_path=plan, reason="customer reports", targets=sandbox.targets(), force=True)
    assert result.ok and result.outcome == "rolled-back"
    # The report never names the release it rolls back as the one restored.
    assert result.report is not None
    report = Path(result.report).read_text()
    assert "| release rolled back | v2 |" in report
    assert "| version restored | no earlier stable release is on record |" in report
    assert [s.name for s in result.steps] == [
        "flag USE_UNIFIED_ORDERS",
        "flag ENABLE_DUAL_WRITE",
        "health check",
        "smoke test",
        "health watch",
        "traffic still off",
    ]
    flag = flag_store.get("USE_UNIFIED_ORDERS")
    assert (flag.enabled, flag.percentage, flag.users) == (False, 0, ())
    assert flag_store.get("ENABLE_DUAL_WRITE").enabled is False


def test_a_rollout_write_landing_after_the_rollback_began_is_closed_again(
    prefect_api: None, sandbox: SandboxInfo, flag_store: FlagStore, plan_file: PlanFiles
) -> None:
    plan = flow_plan(plan_file)
    assert run_rollout(plan_path=plan, targets=sandbox.targets()).status == "promoted"

    def late_step() -> None:
        deadline = time.monotonic() + 60
        while flag_store.get("USE_UNIFIED_ORDERS").enabled and time.monotonic() < deadline:
            time.sleep(0.02)
        # A step that passed its lease check before the rollback took over writes after it.
        flag_store.set("USE_UNIFIED_ORDERS", FlagChange(enabled=True, percentage=50))

    writer = threading.Thread(target=late_step)
    writer.start()
    result = run_rollback(plan_path=plan, reason="late write", targets=sandbox.targets(), force=True)
    writer.join()
    last = result.steps[-1]
    assert (last.name, last.ok) == ("traffic still off", True)
    assert last.detail.startswith("closed again: a write landed after the rollback began (50%")
    assert flag_store.get("USE_UNIFIED_ORDERS").enabled is False


def test_a_heartbeat_keeps_a_short_lease_alive_through_a_longer_window(
    prefect_api: None, sandbox: SandboxInfo, tmp_path: Path
) -> None:
    from datetime import UTC, datetime

    import yaml

    plan = tmp_path / "heartbeat.yaml"
    plan.write_text(
        yaml.safe_dump(
            {
                "name": "heartbeat-test",
                "release": {"version": "v2"},
                "flag": "HEARTBEAT_TEST",
                "lease_ttl": "3s",
                "backup": {"enabled": False, "waived_by": "heartbeat test"},
                "phases": [{"name": "all", "ramp": [100], "window": {"interval": "1s", "count": 8}}],
                "rollback": {"watch": {"interval": "1s", "duration": "1s"}},
            }
        )
    )
    client: MongoClient[dict[str, Any]] = MongoClient(sandbox.mongodb_uri, tz_aware=True)
    runs = client.shop.rollout_runs
    results: list[Any] = []
    runner = threading.Thread(
        target=lambda: results.append(run_rollout(plan_path=str(plan), targets=sandbox.targets())),
        daemon=True,
    )
    runner.start()
    seen: list[tuple[datetime, datetime]] = []
    while runner.is_alive():
        record = runs.find_one({"_id": "heartbeat-test"}) or {}
        if record.get("status") == "observing":
            seen.append((datetime.now(UTC), record["lease_until"]))
        time.sleep(0.2)
    runner.join()
    client.shop.feature_flags.delete_one({"_id": "HEARTBEAT_TEST"})
    client.close()
    assert results and results[0].status == "promoted"
    # The window (8 s) outlasts the lease (3 s), yet the lease never ran out: the heartbeat renewed it.
    assert seen and (seen[-1][0] - seen[0][0]).total_seconds() > 4
    assert all(until > at for at, until in seen)
    assert len({until for _, until in seen}) >= 3


DRIFT_PLAN = """
name: drift-{name}
release: {{version: v2}}
flag: {flag}
gates:
  errors: {{query: "vector(0)", max: 0.5}}
phases:
  - name: ramp
    ramp: [25, 50, 100]
    window: {{interval: 1s, count: 6, gates: [errors]}}
rollback:
  watch: {{interval: 1s, duration: 1s}}
"""


def _rollout_in_background(**parameters: Any) -> tuple[threading.Thread, list[RolloutResult]]:
    results: list[RolloutResult] = []
    thread = threading.Thread(target=lambda: results.append(run_rollout(**parameters)), daemon=True)
    thread.start()
    return thread, results


@pytest.mark.parametrize("where", ["mongodb", "flagd"])
def test_a_hand_edit_between_two_steps_holds_the_rollout_with_traffic_as_the_person_left_it(
    prefect_api: None,
    sandbox: SandboxInfo,
    flag_store: FlagStore,
    plan_file: PlanFiles,
    tmp_path: Path,
    where: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    import json

    from rollout.adapters.flagd import FlagdFile
    from rollout.plan.model import Targets

    flag = f"DRIFT_{where.upper()}"
    targets = sandbox.targets()
    flags: Any = flag_store
    if where == "flagd":
        path = tmp_path / "flags.json"
        off = {"state": "DISABLED", "variants": {"on": True, "off": False}, "defaultVariant": "off"}
        path.write_text(json.dumps({"flags": {flag: off}}))
        doc = targets.model_dump(mode="json", exclude_none=True, by_alias=True)
        targets = Targets.model_validate({**doc, "flagd": {"path": str(path), "refresh_interval": "1s"}})
        flags = FlagdFile(path)
    plan = plan_file.text(DRIFT_PLAN.format(name=where, flag=flag), file=f"drift-{where}.yaml")
    thread, results = _rollout_in_background(plan_path=str(plan), targets=targets)
    deadline = time.monotonic() + 60
    while flags.get(flag).percentage != 25:
        assert time.monotonic() < deadline, "the first step was not written"
        time.sleep(0.2)
    # Someone widens the flag by hand (the UI, a script) while the first step is being watched.
    flags.set(flag, FlagChange(enabled=True, percentage=60))
    thread.join(120)
    [result] = results
    assert result.status == "held", result.reason
    assert f"{flag} was changed by someone else since this rollout wrote it" in result.reason
    assert "it is on: 0 users, 0 stores, 60%" in result.reason
    after = flags.get(flag)
    assert (after.enabled, after.percentage) == (True, 60)  # as the person left it: not 50, not 25
    # Turned off by hand, then carried on by a person: the rollout does not turn it back on.
    flags.set(flag, FlagChange(enabled=False, percentage=0))
    again = run_rollout(plan_path=str(plan), targets=targets)
    assert again.status == "held" and "never turns a kill switch back on" in again.reason
    assert not flags.get(flag).enabled
    # A rollback still acts (it only narrows), and says what it found.
    caplog.clear()
    rolled = run_rollback(plan_path=str(plan), reason="the person's change stays off", targets=targets)
    assert rolled.ok, rolled
    assert f"the rollback found this: {flag} was turned off (a kill switch) by someone else" in caplog.text
    assert not flags.get(flag).enabled
