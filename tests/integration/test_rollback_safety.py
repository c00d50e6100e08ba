"""The safety net never causes an incident: tried as operators use it, on a self-hosted Prefect server
with the deployments `make deploy` registers and a process worker running them.

Only a rollout's own verdict (or a person's explicit word) rolls a release back: not bad input,
not a refused second start, not a killed process. A rolled-back rollout is not rolled back again,
a promoted one only when forced (and its data only when asked), and concurrent rollbacks of plans
sharing a database all finish.
"""

import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from pymongo import MongoClient

from rollout.adapters.flags import FlagStore
from rollout.adapters.run_state import ReleaseStore, RunStateStore
from rollout.audience.flag_state import FlagChange, FlagState
from rollout.lifecycle.statuses import Status
from rollout.sandbox.stack import SandboxInfo
from tests.operator import Operator, flow_run_process, flow_run_processes, kill
from tests.prefect_server import ROOT

pytestmark = pytest.mark.integration

QUIET = 10.0
"""Seconds in which an automation would have started a rollback run (it takes about one here)."""
LEDGER = "safety_ledger"


@pytest.fixture(scope="module")
def db(sandbox: SandboxInfo) -> Iterator[Any]:
    client: MongoClient[dict[str, Any]] = MongoClient(sandbox.mongodb_uri, tz_aware=True)
    yield client[sandbox.database]
    client.close()


def plan_doc(sandbox: SandboxInfo, name: str, flag: str, **extra: Any) -> dict[str, Any]:
    plan: dict[str, Any] = {
        "name": name,
        "release": {"version": "v2", "stable_version": "v1"},
        "flag": flag,
        "targets": sandbox.targets().model_dump(mode="json", exclude_none=True, by_alias=True),
        "backup": {"enabled": False, "waived_by": "rollback safety tests"},
        "gates": {"errors": {"query": "vector(0)", "max": 0.5}},
        "phases": [
            {"name": "all", "ramp": [100], "window": {"interval": "1s", "count": 1, "gates": ["errors"]}}
        ],
        "rollback": {"watch": {"interval": "1s", "duration": "1s"}},
    }
    rollback = extra.pop("rollback", {})
    return {**plan, **extra, "rollback": {**plan["rollback"], **rollback}}


def write(tmp_path: Path, plan: dict[str, Any]) -> str:
    path = tmp_path / f"{plan['name']}.yaml"
    path.write_text(yaml.safe_dump(plan))
    return str(path)


def state(run: dict[str, Any]) -> tuple[str, str, str]:
    return run["state"]["type"], run["state"]["name"], run["state"]["message"] or ""


EARLIER: set[str] = set()
"""Rollback runs the shared server had before this module began (other modules' own)."""


@pytest.fixture(scope="module", autouse=True)
def earlier_rollbacks(ops: Operator) -> None:
    EARLIER.update(run["id"] for run in ops.runs_of("rollback"))


def rollbacks(ops: Operator) -> list[dict[str, Any]]:
    """The rollback runs started since this module began, oldest first."""
    return [run for run in ops.runs_of("rollback") if run["id"] not in EARLIER]


def reset(flags: FlagStore, *names: str) -> None:
    for name in names:
        flags.set(name, FlagChange(enabled=False, percentage=0, users=(), stores=()))


def test_bad_input_and_a_refused_second_start_change_nothing_and_start_no_rollback(
    ops: Operator, sandbox: SandboxInfo, db: Any, tmp_path: Path
) -> None:
    flags = FlagStore(db["feature_flags"])
    promoted = write(tmp_path, plan_doc(sandbox, "safety-live", "SAFETY_LIVE"))
    first = ops.wait(ops.start("rollout", "rollout-manual", {"plan_path": promoted}))
    assert state(first)[:2] == ("COMPLETED", "Promoted"), ops.tail()
    assert flags.get("SAFETY_LIVE").percentage == 100

    bad = ops.wait(
        ops.start("rollout", "rollout-manual", {"plan_path": promoted, "approval_timeout": "banana"})
    )
    kind, name, message = state(bad)
    assert (kind, name) == ("FAILED", "InvalidInput")
    assert message.startswith("approval_timeout: ")

    gated = plan_doc(
        sandbox,
        "safety-gated",
        "SAFETY_GATED",
        phases=[
            {
                "name": "pilot",
                "approval": {"timeout": "10m"},
                "ramp": [100],
                "window": {"interval": "1s", "count": 1, "gates": ["errors"]},
            }
        ],
    )
    gated_path = write(tmp_path, gated)
    waiting = ops.start("rollout", "rollout-manual", {"plan_path": gated_path})
    ops.wait(waiting, {"PAUSED"})
    # A double-clicked Run button: the second start is refused, and says who holds the plan.
    second = ops.wait(ops.start("rollout", "rollout-manual", {"plan_path": gated_path}))
    kind, name, message = state(second)
    assert (kind, name) == ("FAILED", "Refused")
    assert f"is parked (run {waiting} is suspended, decision on starting phase pilot)" in message

    time.sleep(QUIET)
    assert rollbacks(ops) == []
    runs = RunStateStore(db["rollout_runs"])
    live = runs.get("safety-live")
    assert live is not None and live.status is Status.PROMOTED and live.run_id == first["id"]
    assert flags.get("SAFETY_LIVE").percentage == 100
    parked = runs.get("safety-gated")
    assert parked is not None and (parked.status, parked.run_id) == (Status.PARKED, waiting)
    assert parked.parked is not None and parked.parked.for_decision
    # Waiting for a person holds no process; the answer (as the UI's Resume form sends it) wakes the run.
    assert ops.run(waiting)["state"]["name"] == "Suspended" and flow_run_processes(waiting) == []
    ops.resume(waiting, {"decision": "approve", "approver": "maria", "note": "pilot clean"})
    done = ops.wait(waiting)
    assert state(done)[:2] == ("COMPLETED", "Promoted"), ops.tail()
    assert flags.get("SAFETY_GATED").percentage == 100
    record = runs.get("safety-gated")
    assert record is not None and record.decisions["approval:pilot"].by == "maria"


def test_a_crashed_rollout_run_is_not_rolled_back(
    ops: Operator, sandbox: SandboxInfo, db: Any, tmp_path: Path
) -> None:
    flags = FlagStore(db["feature_flags"])
    long_window = {"interval": "1s", "count": 120, "gates": ["errors"]}
    plan = write(
        tmp_path,
        plan_doc(
            sandbox,
            "safety-crash",
            "SAFETY_CRASH",
            phases=[{"name": "ramp", "ramp": [10, 100], "window": long_window}],
        ),
    )
    run_id = ops.start("rollout", "rollout-manual", {"plan_path": plan})
    runs = RunStateStore(db["rollout_runs"])
    deadline = time.monotonic() + 180
    while (record := runs.get("safety-crash")) is None or record.status is not Status.OBSERVING:
        assert time.monotonic() < deadline, ops.tail()
        time.sleep(0.5)
    kill(flow_run_process(run_id))
    crashed = ops.wait(run_id)
    assert crashed["state"]["type"] == "CRASHED", state(crashed)
    time.sleep(QUIET)
    assert rollbacks(ops) == []
    after = runs.get("safety-crash")
    assert after is not None and after.status is Status.OBSERVING  # left for a run to carry on
    flag = flags.get("SAFETY_CRASH")
    assert (flag.enabled, flag.percentage) == (True, 10)
    reset(flags, "SAFETY_CRASH")


def test_a_rollout_failed_event_rolls_back_on_behalf_of_its_run_however_it_was_started(
    ops: Operator, sandbox: SandboxInfo, db: Any, tmp_path: Path
) -> None:
    flags = FlagStore(db["feature_flags"])
    failing = {"errors": {"query": "vector(1)", "max": 0.5}}
    by_path = plan_doc(
        sandbox, "safety-event-path", "SAFETY_EVENT_PATH", gates=failing, rollback={"automatic": False}
    )
    pasted = plan_doc(
        sandbox, "safety-event-paste", "SAFETY_EVENT_PASTE", gates=failing, rollback={"automatic": False}
    )
    started = {
        ops.start("rollout", "rollout-manual", {"plan_path": write(tmp_path, by_path)}): "safety-event-path",
        ops.start("rollout", "rollout-manual", {"plan_path": "", "plan_yaml": yaml.safe_dump(pasted)}): (
            "safety-event-paste"
        ),
    }
    for run_id in started:
        kind, name, message = state(ops.wait(run_id))
        assert (kind, name) == ("FAILED", "Stopped"), (name, message)
        assert message.startswith("all 100%: errors")
    deadline = time.monotonic() + 120
    while len(done := [r for r in rollbacks(ops) if r["state"]["type"] in {"COMPLETED", "FAILED"}]) < 2:
        assert time.monotonic() < deadline, ops.tail()
        time.sleep(1)
    assert {r["parameters"]["on_behalf_of"] for r in done} == set(started)
    for rollback in done:
        kind, name, message = state(rollback)
        assert (kind, name) == ("COMPLETED", "RolledBack"), (name, message)
        plan = started[rollback["parameters"]["on_behalf_of"]]
        record = RunStateStore(db["rollout_runs"]).get(plan)
        assert record is not None and record.status is Status.ROLLED_BACK
        assert record.history[-1].by == f"rollback run {rollback['id']}"
    assert not flags.get("SAFETY_EVENT_PATH").enabled and not flags.get("SAFETY_EVENT_PASTE").enabled


def test_a_promoted_rollout_is_rolled_back_only_when_forced_and_its_data_only_when_asked(
    ops: Operator, sandbox: SandboxInfo, db: Any, tmp_path: Path
) -> None:
    flags = FlagStore(db["feature_flags"])
    plan = write(tmp_path, plan_doc(sandbox, "safety-live", "SAFETY_LIVE"))
    promoted = ops.wait(ops.start("rollout", "rollout-manual", {"plan_path": plan}))
    assert state(promoted)[:2] == ("COMPLETED", "Promoted"), ops.tail()
    record = RunStateStore(db["rollout_runs"]).get("safety-live")
    assert record is not None and record.status is Status.PROMOTED
    ask = {"plan_path": plan, "reason": "customers report wrong totals"}
    refused = ops.wait(ops.start("rollback", "emergency-rollback", ask))
    kind, name, message = state(refused)
    assert (kind, name) == ("FAILED", "Refused")
    assert "was promoted at" in message and "--force" in message
    assert flags.get("SAFETY_LIVE").percentage == 100

    forced = ops.wait(ops.start("rollback", "emergency-rollback", {**ask, "force": True}))
    kind, name, message = state(forced)
    assert (kind, name) == ("COMPLETED", "RolledBack"), message
    assert not flags.get("SAFETY_LIVE").enabled
    after = RunStateStore(db["rollout_runs"]).get("safety-live")
    assert after is not None and after.status is Status.ROLLED_BACK and after.restores == ()
    # The promoted release is taken back: the release stable before it is stable again.
    assert ReleaseStore(db["rollout_releases"]).stable("safety-live") == "v1"

    again = ops.wait(ops.start("rollback", "emergency-rollback", ask))
    kind, name, message = state(again)
    assert (kind, name) == ("COMPLETED", "NothingToDo")
    assert "rolled back at " in message and f"by rollback run {forced['id']}" in message
    assert "with no data restored" in message
    # Later actions reach earlier views: the promoted run's rollout table says it was rolled back.
    assert forced["name"] == "rollback safety-live v2"
    tables = ops._post(
        "artifacts/filter",
        {"artifacts": {"key": {"any_": ["safety-live-rollout"]}, "flow_run_id": {"any_": [record.run_id]}}},
    )
    assert tables and "rolled back at " in tables[0]["description"], tables
    assert f"by run {forced['id']}: customers report wrong totals" in tables[0]["description"]


def test_a_finished_rollout_is_never_replayed_downgraded_or_cut_unasked(
    ops: Operator, sandbox: SandboxInfo, db: Any, tmp_path: Path
) -> None:
    flags = FlagStore(db["feature_flags"])
    v2 = write(tmp_path, plan_doc(sandbox, "safety-replay", "SAFETY_REPLAY"))
    first = ops.wait(ops.start("rollout", "rollout-manual", {"plan_path": v2}))
    assert state(first)[:2] == ("COMPLETED", "Promoted"), ops.tail()
    promoted = flags.get("SAFETY_REPLAY")
    assert promoted.percentage == 100

    # Prefect's Retry: the same flow run, back to Scheduled, run again by the worker.
    ops.set_state(first["id"], "SCHEDULED")
    assert ops.run(first["id"])["state"]["type"] == "SCHEDULED"
    retried = ops.wait(first["id"], timeout=120)
    kind, name, message = state(retried)
    assert (kind, name) == ("FAILED", "Refused"), message
    assert f"run {first['id']} already ran rollout v2 (release v2" in message and "start a new run" in message

    # A new run of the release stable now: refused unless forced with a reason.
    again = ops.wait(ops.start("rollout", "rollout-manual", {"plan_path": v2}))
    kind, name, message = state(again)
    assert (kind, name) == ("FAILED", "Refused") and "release v2 is already the stable release" in message
    unreasoned = ops.wait(ops.start("rollout", "rollout-manual", {"plan_path": v2, "force": True}))
    kind, name, message = state(unreasoned)
    assert (kind, name) == ("FAILED", "InvalidInput") and message.startswith("reason: force needs a reason")

    # A new release whose first step is an allowlist, after v2 left the flag at 100 %.
    v3 = plan_doc(
        sandbox,
        "safety-replay",
        "SAFETY_REPLAY",
        release={"version": "v3", "stable_version": "v2"},
        phases=[
            {
                "name": "internal",
                "allowlist": {"users": ["alice"]},
                "window": {"interval": "1s", "count": 1, "gates": ["errors"]},
            },
            {"name": "all", "ramp": [100], "window": {"interval": "1s", "count": 1, "gates": ["errors"]}},
        ],
    )
    v3_path = str(tmp_path / "safety-replay-v3.yaml")  # beside v2's file, not over it
    Path(v3_path).write_text(yaml.safe_dump(v3))
    cut = ops.wait(ops.start("rollout", "rollout-manual", {"plan_path": v3_path}))
    kind, name, message = state(cut)
    assert (kind, name) == ("FAILED", "Refused"), message
    assert "while it is at 100%, as a promoted rollout left it" in message and "restart_ramp" in message
    assert flags.get("SAFETY_REPLAY").version == promoted.version  # nothing written by any refusal
    restarted = ops.wait(ops.start("rollout", "rollout-manual", {"plan_path": v3_path, "restart_ramp": True}))
    assert state(restarted)[:2] == ("COMPLETED", "Promoted"), ops.tail()

    # Now v2 is superseded by v3: a rollout of it is a downgrade, refused naming both.
    back = ops.wait(ops.start("rollout", "rollout-manual", {"plan_path": v2}))
    kind, name, message = state(back)
    assert (kind, name) == ("FAILED", "Refused")
    assert "release v2 was superseded by v3 (promoted at " in message and "downgrade v3 to v2" in message
    forced = {"plan_path": v2, "force": True, "reason": "v3 corrupts totals; v2 is the known good"}
    # Forced, it goes; its first step (100 %) narrows nothing.
    assert state(ops.wait(ops.start("rollout", "rollout-manual", forced)))[:2] == ("COMPLETED", "Promoted")
    assert ReleaseStore(db["rollout_releases"]).stable("safety-replay") == "v2"


def test_ten_concurrent_rollbacks_of_plans_sharing_a_database_all_finish(
    ops: Operator, sandbox: SandboxInfo, db: Any, tmp_path: Path
) -> None:
    db[LEDGER].drop()
    db[LEDGER].insert_many([{"_id": i, "amount": i % 97} for i in range(3000)])
    backed_up = plan_doc(
        sandbox,
        "safety-shared-0",
        "SAFETY_SHARED_0",
        backup={"enabled": True, "collections": [LEDGER]},
        rollback={"restore": {"mode": "selective", "collections": [LEDGER]}},
    )
    backup = subprocess.run(
        [str(Path(sys.executable).parent / "rollout"), "backup", write(tmp_path, backed_up)],
        cwd=ROOT,
        env=ops.env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert backup.returncode == 0, backup.stderr[-3000:]
    uri = backup.stdout.strip().splitlines()[-1]
    db[LEDGER].delete_many({"amount": {"$lt": 50}})  # what the bad release did
    runs, flags = RunStateStore(db["rollout_runs"]), FlagStore(db["feature_flags"])
    plans = {}
    for i in range(10):
        name, flag = f"safety-shared-{i}", f"SAFETY_SHARED_{i}"
        plans[name] = write(tmp_path, {**backed_up, "name": name, "flag": flag})
        runs.claim(name, f"run-{i}", "v2", timedelta(minutes=30), version="v2", stable_before="v1")
        runs.keep_backup(name, uri)
        runs.remember(name, FlagState(name=flag))
        runs.move(name, Status.STEPPING, by=f"run run-{i}", why="ramp 25%", run_id=f"run-{i}")
        flags.set(flag, FlagChange(enabled=True, percentage=25))
    ask = {"reason": "ledger drill", "severity": "SEV1"}
    with ThreadPoolExecutor(10) as pool:
        started = list(
            pool.map(
                lambda p: ops.start("rollback", "emergency-rollback", {**ask, "plan_path": p}), plans.values()
            )
        )
    ended = [ops.wait(run_id, timeout=600) for run_id in started]
    assert [state(run)[:2] for run in ended] == [("COMPLETED", "RolledBack")] * 10, [state(r) for r in ended]
    for name in plans:
        record = runs.get(name)
        assert record is not None and record.status is Status.ROLLED_BACK
        assert [(r.backup, r.ok) for r in record.restores] == [(uri, True)]
        assert not flags.get(record.undo[0].name).enabled
    assert db[LEDGER].count_documents({}) == 3000
    assert db["rollout_locks"].count_documents({}) == 0
    db[LEDGER].drop()
