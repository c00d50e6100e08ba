"""Drills: rollouts that outlive their processes, on a real Prefect server (PostgreSQL) and process worker.

Each drill ends in a documented state, and the flag's version shows no step applied twice.
The reconciler's passes are started by hand (its schedule is paused) so each drill knows
when one ran; the rollouts' records and flags live in a database of their own.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from pymongo import MongoClient

from rollout.adapters.flagd import FlagdFile
from rollout.adapters.flags import FlagStore
from rollout.adapters.run_state import RunStateStore
from rollout.lifecycle.record import RunRecord
from rollout.lifecycle.statuses import Status
from rollout.sandbox.stack import SandboxInfo
from tests.operator import Operator, flow_run_process, flow_run_processes, kill
from tests.plans import PlanFiles, target_sections

pytestmark = pytest.mark.integration

DATABASE = "durability_drills"


@pytest.fixture(scope="module")
def db(sandbox: SandboxInfo) -> Iterator[Any]:
    client: MongoClient[dict[str, Any]] = MongoClient(sandbox.mongodb_uri, tz_aware=True)
    yield client[DATABASE]
    client.close()


def drill_plan(
    plan_file: PlanFiles,
    sandbox: SandboxInfo,
    name: str,
    errors: str,
    flagd: Path | None = None,
    **extra: Any,
) -> str:
    """A drill's plan: its own flag, an ``errors`` gate on ``errors``, its records in the drills' database.

    With ``flagd``, its flag is kept in that flagd file instead of the database's flag documents.
    """
    targets = target_sections(sandbox.targets())
    targets["flag_store"] = {"database": DATABASE}
    if flagd is not None:
        targets["flagd"] = {"path": str(flagd), "refresh_interval": "1s"}
    gates = {"errors": {"query": errors, "max": 0.5}}
    return str(plan_file(name, flag=flag_of(name), targets=targets, gates=gates, **extra))


def flag_of(plan: str) -> str:
    """The flag a drill's plan ``plan`` rolls out."""
    return plan.upper().replace("-", "_")


def launch(
    ops: Operator,
    plan_file: PlanFiles,
    sandbox: SandboxInfo,
    name: str,
    errors: str,
    window: dict[str, Any],
    ramp: tuple[int, ...] = (10, 100),
    **extra: Any,
) -> tuple[str, str]:
    """Write a one-phase plan (a ramp whose steps share ``window``) and start it from rollout-manual."""
    phases = [{"name": "ramp", "ramp": list(ramp), "window": window}]
    plan = drill_plan(plan_file, sandbox, name, errors, phases=phases, **extra)
    return plan, ops.start("rollout", "rollout-manual", {"plan_path": plan})


def rounds_of(db: Any, plan: str) -> int:
    """How many rounds the plan's current window has measured (0 with none under way)."""
    record = RunStateStore(db["rollout_runs"]).get(plan)
    return len(record.window.rounds) if record and record.window else 0


def record_of(db: Any, plan: str) -> RunRecord:
    record = RunStateStore(db["rollout_runs"]).get(plan)
    assert record is not None, f"no record of {plan}"
    return record


def until(check: Any, what: str, ops: Operator, timeout: float = 180) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, f"{what} did not happen\n{ops.tail()}"
        time.sleep(0.5)
    return found


def lease_lapsed(db: Any, plan: str, ops: Operator) -> None:
    """Wait until the rollout's lease, and the reconciler's grace after it, have run out."""
    from datetime import timedelta

    grace = timedelta(seconds=6)  # the reconciler's 5 s, and a margin for clocks read apart
    until(
        lambda: (lease := record_of(db, plan).lease_until) is not None and lease + grace < datetime.now(UTC),
        f"the lease of {plan} running out",
        ops,
        timeout=60,
    )


def reconcile(ops: Operator, plan: str, **parameters: Any) -> dict[str, Any]:
    """One reconciler pass, as the rollout-reconcile deployment runs it."""
    done = ops.wait(ops.start("reconcile", "rollout-reconcile", {"plans": [plan], **parameters}))
    assert done["state"]["type"] == "COMPLETED", ops.tail()
    return done


def test_a_parked_window_is_measured_by_the_reconciler_and_its_run_woken_to_promote(
    ops: Operator, sandbox: SandboxInfo, db: Any, plan_file: PlanFiles
) -> None:
    window = {"interval": "8s", "count": 2, "gates": ["errors"]}
    plan, run_id = launch(
        ops,
        plan_file,
        sandbox,
        "parked-window",
        "vector(0)",
        window,
        (50, 100),
        park_after="4s",
        reconcile_interval="4s",
    )
    parked = until(
        lambda: (r := record_of_or_none(db, "parked-window")) and r.status is Status.PARKED and r,
        "parking",
        ops,
    )
    assert parked.parked is not None and parked.parked.next == "round 2 of 2 of ramp/0"
    assert parked.window is not None and len(parked.window.rounds) == 1  # the first round, by the run
    until(lambda: ops.run(run_id)["state"]["name"] == "Suspended", "suspension", ops)
    until(lambda: flow_run_processes(run_id) == [], "the run's process ending", ops, timeout=30)
    time.sleep(8)
    reconcile(ops, plan)  # takes round 2 of 2 itself, then wakes the run
    woken = record_of(db, "parked-window")
    assert woken.window is not None and len(woken.window.rounds) == 2
    # The woken run records the verdict, sets 100 % and parks again; the next pass finishes the window.
    until(
        lambda: (
            record_of(db, "parked-window").status is Status.PARKED
            and record_of(db, "parked-window").window.key == "ramp/1"
        ),
        "parking at 100 %",
        ops,
    )  # type: ignore[union-attr]
    time.sleep(8)
    reconcile(ops, plan)
    done = ops.wait(run_id)
    assert (done["state"]["type"], done["state"]["name"]) == ("COMPLETED", "Promoted"), ops.tail()
    flag = FlagStore(db["feature_flags"]).get("PARKED_WINDOW")
    assert (flag.percentage, flag.version) == (100, 2)  # two steps, each written once
    record = record_of(db, "parked-window")
    assert [s["key"] for s in record.steps] == ["ramp/0", "ramp/1"]
    assert sum(m.target is Status.PARKED for m in record.history) == 2


def record_of_or_none(db: Any, plan: str) -> RunRecord | None:
    return RunStateStore(db["rollout_runs"]).get(plan)


def test_a_parked_window_that_fails_has_traffic_turned_off_by_the_reconciler_then_rolls_back(
    ops: Operator, sandbox: SandboxInfo, db: Any, tmp_path: Path, plan_file: PlanFiles
) -> None:
    # Its flag is in a flagd file, while the pass is started for another plan sharing its database
    # (flags in MongoDB): the reconciler must turn traffic off where this rollout's flag is.
    flagd = tmp_path / "flags.json"
    off = {"state": "DISABLED", "variants": {"on": True, "off": False}, "defaultVariant": "off"}
    flagd.write_text(json.dumps({"flags": {"PARKED_FAILING": off}}))
    bystander = drill_plan(plan_file, sandbox, "bystander", "vector(0)")
    # Late enough for a busy worker to start the run and park it after a first passing round.
    breaks_at = time.time() + 25
    window = {"interval": "8s", "count": 4, "gates": ["errors"]}
    _, run_id = launch(
        ops,
        plan_file,
        sandbox,
        "parked-failing",
        f"vector(time() > bool {breaks_at:.0f})",
        window,
        (25, 100),
        park_after="4s",
        reconcile_interval="4s",
        flagd=flagd,
    )
    until(
        lambda: (r := record_of_or_none(db, "parked-failing")) and r.status is Status.PARKED, "parking", ops
    )
    flags = FlagdFile(flagd)
    assert flags.get("PARKED_FAILING").percentage == 25
    while time.time() < breaks_at + 1:
        time.sleep(1)
    for _ in range(3):  # round 2 may still pass; the next one fails
        time.sleep(8)
        reconcile(ops, bystander)
        if record_of(db, "parked-failing").status is not Status.PARKED:
            break
    doc = db["rollout_runs"].find_one({"_id": "parked-failing"})
    assert doc is not None and "errors" in doc.get("fenced_because", "")
    done = ops.wait(run_id)
    assert (done["state"]["type"], done["state"]["name"]) == ("FAILED", "RolledBack"), ops.tail()
    flag = flags.get("PARKED_FAILING")
    assert not flag.enabled and flag.percentage == 0
    # Turned off in the file by the reconciler (under its raised fence), never in the bystander's store.
    assert flags.highest_fence("parked-failing") >= 2
    assert db["feature_flags"].find_one({"_id": "PARKED_FAILING"}) is None
    assert record_of(db, "parked-failing").status is Status.ROLLED_BACK


def test_a_killed_run_is_adopted_by_the_reconciler_and_its_window_carries_on_where_it_was(
    ops: Operator, sandbox: SandboxInfo, db: Any, plan_file: PlanFiles
) -> None:
    window = {"interval": "1s", "count": 15, "gates": ["errors"]}
    plan, run_id = launch(ops, plan_file, sandbox, "adopted", "vector(0)", window, lease_ttl="3s")
    until(lambda: rounds_of(db, "adopted") >= 5, "five rounds", ops)
    kill(flow_run_process(run_id))
    killed = rounds_of(db, "adopted")
    lease_lapsed(db, "adopted", ops)
    reconcile(ops, plan)  # measures the orphaned window (its due round) and adopts the rollout
    record = record_of(db, "adopted")
    assert record.adopted_by is not None
    assert rounds_of(db, "adopted") >= killed  # nothing the killed run measured is lost
    old = ops.run(run_id)
    assert (
        old["state"]["type"] == "CRASHED"
    )  # the worker saw its child die; the reconciler marks it otherwise
    done = ops.wait(record.adopted_by)
    assert (done["state"]["type"], done["state"]["name"]) == ("COMPLETED", "Promoted"), ops.tail()
    final = record_of(db, "adopted")
    assert [s["key"] for s in final.steps] == ["ramp/0", "ramp/1"]
    moves = [m.why for m in final.history if m.target is Status.CHECKING]
    assert moves[-1].startswith("resumes rollout v2 after run")
    flag = FlagStore(db["feature_flags"]).get("ADOPTED")
    assert (flag.percentage, flag.version) == (100, 2)
    logs = ops._post(
        "logs/filter",
        {"logs": {"flow_run_id": {"any_": [record.adopted_by]}}, "sort": "TIMESTAMP_ASC", "limit": 200},
    )
    first = next(line["message"] for line in logs if line["message"].startswith("measurement "))
    # Not 1/15: the window carried on, after the killed run's rounds and the one the pass may have
    # taken for the orphaned window (the new run can start measuring before this test reads the record).
    assert first.startswith((f"measurement {killed + 1}/15:", f"measurement {killed + 2}/15:")), first


def test_a_cancelled_run_is_held_with_traffic_where_it_was_and_carried_on_from_its_last_round(
    ops: Operator, sandbox: SandboxInfo, db: Any, plan_file: PlanFiles
) -> None:
    window = {"interval": "1s", "count": 12, "gates": ["errors"]}
    plan, run_id = launch(ops, plan_file, sandbox, "cancelled", "vector(0)", window)
    until(lambda: rounds_of(db, "cancelled") >= 3, "three rounds", ops)
    ops.set_state(run_id, "CANCELLING")
    ops.wait(run_id)
    reconcile(ops, plan)
    record = record_of(db, "cancelled")
    assert record.status is Status.HELD
    assert record.history[-1].by == "reconciler" and "cancelled in Prefect" in record.history[-1].why
    assert FlagStore(db["feature_flags"]).get("CANCELLED").percentage == 10
    # A person carries it on: the window goes on from its last round, not from round 1.
    measured = rounds_of(db, "cancelled")
    again = ops.start("rollout", "rollout-manual", {"plan_path": plan})
    done = ops.wait(again)
    assert (done["state"]["type"], done["state"]["name"]) == ("COMPLETED", "Promoted"), ops.tail()
    first = next(line for line in ops.log_lines(again) if line.startswith("measurement "))
    assert first.startswith(f"measurement {measured + 1}/12:"), first


def test_a_lost_host_leaves_a_run_running_for_good_and_the_reconciler_adopts_it_after_the_lease(
    ops: Operator, sandbox: SandboxInfo, db: Any, plan_file: PlanFiles
) -> None:
    window = {"interval": "1s", "count": 15, "gates": ["errors"]}
    plan, run_id = launch(ops, plan_file, sandbox, "lost-host", "vector(0)", window, lease_ttl="3s")
    until(lambda: rounds_of(db, "lost-host") >= 3, "three rounds", ops)
    ops.lose_host(run_id)  # the worker and its child, together: nobody tells Prefect the run died
    ops.start_worker()
    lease_lapsed(db, "lost-host", ops)
    assert ops.run(run_id)["state"]["type"] == "RUNNING"
    reconcile(ops, plan)
    old = ops.run(run_id)
    assert old["state"]["type"] == "CRASHED" and "reconciler found it gone" in old["state"]["message"]
    record = record_of(db, "lost-host")
    assert record.adopted_by is not None
    done = ops.wait(record.adopted_by)
    assert (done["state"]["type"], done["state"]["name"]) == ("COMPLETED", "Promoted"), ops.tail()
    flag = FlagStore(db["feature_flags"]).get("LOST_HOST")
    assert (flag.percentage, flag.version) == (100, 2)
    assert record_of(db, "lost-host").status is Status.PROMOTED


def test_a_worker_stopped_with_sigterm_leaves_its_rollout_to_be_adopted_never_rolled_back(
    ops: Operator, sandbox: SandboxInfo, db: Any, plan_file: PlanFiles
) -> None:
    window = {"interval": "1s", "count": 12, "gates": ["errors"]}
    plan, run_id = launch(ops, plan_file, sandbox, "worker-stopped", "vector(0)", window, lease_ttl="3s")
    until(lambda: rounds_of(db, "worker-stopped") >= 3, "three rounds", ops)
    # `kill PID` of the worker alone (not its group): Prefect's worker stops, and ends its run.
    ops.signal_worker_only()
    # The worker's child goes with it, and Prefect is not told: the run shows Running for good.
    until(lambda: flow_run_processes(run_id) == [], "the flow-run process ending", ops, timeout=60)
    ops.start_worker()
    lease_lapsed(db, "worker-stopped", ops)
    assert ops.run(run_id)["state"]["type"] == "RUNNING"
    assert record_of(db, "worker-stopped").status is Status.OBSERVING
    reconcile(ops, plan)
    record = record_of(db, "worker-stopped")
    assert record.adopted_by is not None
    assert ops.run(run_id)["state"]["type"] == "CRASHED"
    done = ops.wait(record.adopted_by)
    assert (done["state"]["type"], done["state"]["name"]) == ("COMPLETED", "Promoted"), ops.tail()
    assert FlagStore(db["feature_flags"]).get("WORKER_STOPPED").version == 2
    assert not [m for m in record_of(db, "worker-stopped").history if m.target is Status.ROLLING_BACK]


def test_a_server_restart_is_ridden_out_and_a_cancel_after_it_holds_the_rollout_whatever_the_process_does(
    ops: Operator, sandbox: SandboxInfo, db: Any, plan_file: PlanFiles
) -> None:
    window = {"interval": "1s", "count": 60, "gates": ["errors"]}
    plan, run_id = launch(ops, plan_file, sandbox, "server-restart", "vector(0)", window, lease_ttl="3s")

    until(lambda: rounds_of(db, "server-restart") >= 3, "three rounds", ops)
    ops.stop_server()
    ops.start_server()
    after = rounds_of(db, "server-restart")
    until(lambda: rounds_of(db, "server-restart") >= after + 3, "rounds after the restart", ops, timeout=60)
    assert ops.run(run_id)["state"]["type"] == "RUNNING"
    # The UI's Cancel. Whether or not it reaches the process, the reconciler holds the rollout and
    # raises its epoch: the process, if it lives on, can neither move the rollout nor write the flag.
    ops.set_state(run_id, "CANCELLING")
    reconcile(ops, plan)
    record = record_of(db, "server-restart")
    assert record.status is Status.HELD and "cancelled in Prefect" in record.history[-1].why
    time.sleep(10)
    flag = FlagStore(db["feature_flags"]).get("SERVER_RESTART")
    assert (flag.percentage, flag.version) == (10, 1)
    assert record_of(db, "server-restart").status is Status.HELD


def test_a_rollback_killed_half_way_is_finished_by_the_reconciler_with_the_emergency_rollback(
    ops: Operator, sandbox: SandboxInfo, db: Any, plan_file: PlanFiles
) -> None:
    window = {"interval": "1s", "count": 3, "gates": ["errors"]}
    watch = {"watch": {"duration": "60s", "interval": "1s"}}
    # The gate fails at once: the rollout rolls back, and its rollback watches health for a minute.
    plan, run_id = launch(
        ops, plan_file, sandbox, "rollback-killed", "vector(1)", window, lease_ttl="3s", rollback=watch
    )
    flags = FlagStore(db["feature_flags"])
    until(
        lambda: (r := record_of_or_none(db, "rollback-killed")) and r.status is Status.ROLLING_BACK,
        "rollback",
        ops,
    )
    until(lambda: not flags.get("ROLLBACK_KILLED").enabled, "traffic off", ops, timeout=60)
    first = record_of(db, "rollback-killed").rollback_run_id
    time.sleep(3)  # inside the health watch
    kill(flow_run_process(run_id))  # the rollback runs as a subflow in the rollout's process
    lease_lapsed(db, "rollback-killed", ops)  # Prefect still shows the rollback subflow running
    assert first is not None and ops.run(first)["state"]["type"] == "RUNNING"
    reconcile(ops, plan)
    record = record_of(db, "rollback-killed")
    assert record.adopted_by is not None
    assert ops.run(first)["state"]["type"] == "CRASHED"
    done = ops.wait(record.adopted_by, timeout=300)
    assert (done["state"]["type"], done["state"]["name"]) == ("COMPLETED", "RolledBack"), ops.tail()
    final = record_of(db, "rollback-killed")
    assert final.status is Status.ROLLED_BACK and final.rollback_run_id == record.adopted_by
    assert not flags.get("ROLLBACK_KILLED").enabled


def test_an_adopted_rollout_whose_plan_changed_meanwhile_is_held_naming_the_digests(
    ops: Operator, sandbox: SandboxInfo, db: Any, plan_file: PlanFiles
) -> None:
    window = {"interval": "1s", "count": 30, "gates": ["errors"]}
    plan, run_id = launch(ops, plan_file, sandbox, "plan-changed", "vector(0)", window, lease_ttl="3s")
    until(lambda: rounds_of(db, "plan-changed") >= 3, "three rounds", ops)
    kill(flow_run_process(run_id))
    began = record_of(db, "plan-changed").plan_digest
    edited = yaml.safe_load(Path(plan).read_text())
    edited["gates"]["errors"]["max"] = 0.9  # someone loosens the gate while nobody watches
    Path(plan).write_text(yaml.safe_dump(edited))
    lease_lapsed(db, "plan-changed", ops)
    reconcile(ops, plan)
    adopted = record_of(db, "plan-changed").adopted_by
    assert adopted is not None
    done = ops.wait(adopted)
    assert (done["state"]["type"], done["state"]["name"]) == ("FAILED", "Held"), ops.tail()
    assert f"the plan changed since rollout v2 began (digest {began}, now " in done["state"]["message"]
    record = record_of(db, "plan-changed")
    assert record.status is Status.HELD
    assert FlagStore(db["feature_flags"]).get("PLAN_CHANGED").percentage == 10


def test_a_step_outside_its_schedule_parks_and_the_reconciler_wakes_it_when_the_schedule_allows(
    ops: Operator, sandbox: SandboxInfo, db: Any, plan_file: PlanFiles
) -> None:
    window = {"interval": "1s", "count": 1, "gates": ["errors"]}
    ramp = [10, {"percentage": 100, "schedule": {"not_before": "14s"}}]
    phases = [{"name": "ramp", "ramp": ramp, "window": window}]
    plan = drill_plan(
        plan_file, sandbox, "scheduled", "vector(0)", phases=phases, park_after="4s", reconcile_interval="4s"
    )
    run_id = ops.start("rollout", "rollout-manual", {"plan_path": plan})
    parked = until(
        lambda: (r := record_of_or_none(db, "scheduled")) and r.status is Status.PARKED and r, "parking", ops
    )
    assert parked.parked is not None and parked.parked.status is Status.STEPPING
    assert parked.parked.next.startswith("ramp 100% of users may start (not before 14s after the rollout")
    assert FlagStore(db["feature_flags"]).get("SCHEDULED").percentage == 10
    paused = until(
        lambda: (run := ops.run(run_id))["state"]["message"] and run, "the Paused state's message", ops
    )
    assert "when ramp 100% of users may start" in paused["state"]["message"]
    reconcile(ops, plan)  # too early: nothing to do yet
    assert record_of(db, "scheduled").status is Status.PARKED
    assert parked.parked.until is not None
    time.sleep(max(0.0, (parked.parked.until - datetime.now(UTC)).total_seconds()) + 0.5)
    reconcile(ops, plan)  # now the schedule allows it: woken
    done = ops.wait(run_id)
    assert (done["state"]["type"], done["state"]["name"]) == ("COMPLETED", "Promoted"), ops.tail()
    assert FlagStore(db["feature_flags"]).get("SCHEDULED").percentage == 100


def unwatched_for(drill: str, seconds: float) -> None:
    """Say how long the drill's rollout went unmeasured after its fault (bench/durability.py collects)."""
    print(f"unwatched {drill}: {seconds:.1f} s")


def test_a_park_whose_suspension_fails_with_the_prefect_database_down_stays_watched_and_rolls_back(
    ops: Operator, sandbox: SandboxInfo, db: Any, plan_file: PlanFiles
) -> None:
    assert ops.postgres is not None
    # The candidate breaks while the server's database is down, after the run has tried to park.
    breaks_at = time.time() + 60
    # The run waits attached for its first round (5 s, under park_after), which leaves the database
    # time to be down however busy the machine; then it parks (8 s to the next round).
    window = {"interval": "8s", "count": 20, "gates": ["errors"], "initial_delay": "5s"}
    plan, run_id = launch(
        ops,
        plan_file,
        sandbox,
        "suspend-fails",
        f"vector(time() > bool {breaks_at:.0f})",
        window,
        (25, 100),
        park_after="6s",
        reconcile_interval="3s",
        lease_ttl="6s",
    )
    flags = FlagStore(db["feature_flags"])
    until(lambda: flags.get("SUSPEND_FAILS").percentage == 25, "the first step", ops, timeout=60)
    ops.postgres.stop()  # just before the run parks: its first round is still to come
    down_at = time.time()
    try:
        until(
            lambda: any("its suspension failed" in m.why for m in record_of(db, "suspend-fails").history),
            "the park taken back",
            ops,
            timeout=30,
        )
        assert time.time() < breaks_at, "the run tried to park only after the candidate broke"
        # No reconciler deployment can run while the server's database is down (nor can a worker
        # poll: it gives up after a while, taking its runs along). `rollout reconcile` from cron can.
        while flags.get("SUSPEND_FAILS").enabled:
            assert time.time() < breaks_at + 120, f"traffic never turned off\n{ops.tail()}"
            cron = subprocess.run(
                [sys.executable, "-m", "cli", "reconcile", plan], env=ops.env, capture_output=True, text=True
            )
            assert cron.returncode in (0, 1), cron.stderr[-2000:]
            time.sleep(3)
        unwatched = time.time() - breaks_at
        unwatched_for("the Prefect database down as a run parks", unwatched)
        assert unwatched < 2 * 60  # within two reconciler intervals (of the default minute)
        time.sleep(max(0.0, down_at + 75 - time.time()))  # an outage as long as the one first seen
    finally:
        ops.postgres.start()
    until(lambda: _healthy(ops), "the server answering again", ops, timeout=120)
    ops.start_worker()  # as its supervisor would, if it gave up on the server meanwhile
    # Whoever carries the rollout on finishes the rollback: the run if it lived through the outage,
    # or the run the reconciler starts once the run's lease has run out.
    until(
        lambda: (
            (r := record_of(db, "suspend-fails")).status is Status.ROLLED_BACK
            or (r.lease_until is not None and r.lease_until < datetime.now(UTC))
        ),
        "the rollback done, or its run gone",
        ops,
    )
    if record_of(db, "suspend-fails").status is not Status.ROLLED_BACK:
        reconcile(ops, plan)
        adopted = record_of(db, "suspend-fails").adopted_by
        assert adopted is not None, record_of(db, "suspend-fails").history[-3:]
        done = ops.wait(adopted, timeout=300)
        assert done["state"]["name"] == "RolledBack", ops.tail()
    final = record_of(db, "suspend-fails")
    assert final.status is Status.ROLLED_BACK, final.history[-3:]
    assert not flags.get("SUSPEND_FAILS").enabled
    assert ops.run(run_id)["state"]["type"] != "PAUSED"


def _healthy(ops: Operator) -> bool:
    """Whether the server answers a query that needs its database."""
    try:
        return bool(ops.runs_of("rollout"))
    except httpx.HTTPError:
        return False


def test_a_host_lost_right_after_a_wake_is_adopted_and_the_windows_verdict_acted_on(
    ops: Operator, sandbox: SandboxInfo, db: Any, plan_file: PlanFiles
) -> None:
    window = {"interval": "6s", "count": 2, "gates": ["errors"]}
    plan, run_id = launch(
        ops,
        plan_file,
        sandbox,
        "wake-lost",
        "vector(0)",
        window,
        (100,),
        park_after="3s",
        reconcile_interval="4s",
    )
    until(lambda: (r := record_of_or_none(db, "wake-lost")) and r.status is Status.PARKED, "parking", ops)
    until(lambda: ops.run(run_id)["state"]["name"] == "Suspended", "suspension", ops)
    until(lambda: flow_run_processes(run_id) == [], "the run's process ending", ops, timeout=30)
    time.sleep(6)
    reconcile(ops, plan)  # takes the last round: the window has its verdict, and the run is woken
    assert record_of(db, "wake-lost").window is not None
    until(lambda: ops.run(run_id)["state"]["type"] in ("PENDING", "RUNNING"), "the wake", ops, timeout=60)
    lost_at = time.time()
    ops.lose_host(run_id)
    ops.start_worker()
    assert record_of(db, "wake-lost").status is Status.PARKED  # nobody took the rollout
    reconcile(ops, plan, wake_grace_seconds=600)  # within the grace: on its way, left alone
    assert record_of(db, "wake-lost").adopted_by is None
    reconcile(ops, plan, wake_grace_seconds=5)  # past it: gone
    record = record_of(db, "wake-lost")
    assert record.adopted_by is not None, record.history[-3:]
    assert "did not take effect" in record.history[-1].why
    assert ops.run(run_id)["state"]["type"] == "CRASHED"
    done = ops.wait(record.adopted_by)
    assert (done["state"]["type"], done["state"]["name"]) == ("COMPLETED", "Promoted"), ops.tail()
    unwatched_for("a host lost right after a wake", time.time() - lost_at)
    assert FlagStore(db["feature_flags"]).get("WAKE_LOST").version == 1  # one step, written once
