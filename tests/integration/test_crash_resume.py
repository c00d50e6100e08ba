"""The orchestrator SIGKILLed inside a step and between phases; the next run resumes or rolls back."""

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient

from rollout.adapters.flags import FlagStore
from rollout.audience.flag_state import FlagState
from rollout.sandbox.stack import SandboxInfo
from tests.plans import PlanFiles
from tests.prefect_server import ROOT, prefect_env

pytestmark = pytest.mark.integration

ROLLOUT = str(Path(sys.executable).parent / "rollout")
FLAG = "CRASH_TEST_FLAG"


def crash_plan(plan_file: PlanFiles, name: str, **extra: Any) -> Path:
    """A plan the drills kill runs of: an allowlist, then a ramp; short windows and lease."""
    window = {"interval": "1s", "count": 2}
    phases = [
        {"name": "internal", "allowlist": {"users": ["dev@example.com"]}, "window": window},
        {"name": "ramp", "ramp": [25, 50, 75, 100], "window": window},
    ]
    rollback = {"watch": {"interval": "1s", "duration": "1s"}, **extra.pop("rollback", {})}
    phases = extra.pop("phases", phases)
    return plan_file(
        name, flag=FLAG, file="plan.yaml", rollback=rollback, lease_ttl="5s", phases=phases, **extra
    )


@pytest.fixture(scope="module")
def cli_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    home = tmp_path_factory.mktemp("prefect")
    return prefect_env(
        home,
        {
            "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
            "ROLLOUT_REPORTS_DIR": str(home / "reports"),
        },
    )


@pytest.fixture()
def db(sandbox: SandboxInfo) -> Any:
    client: MongoClient[dict[str, Any]] = MongoClient(sandbox.mongodb_uri)
    yield client[sandbox.database]
    client[sandbox.database]["feature_flags"].delete_one({"_id": FLAG})
    client.close()


def lease_runs_out(db: Any, plan: str, timeout: float = 120) -> None:
    """Wait until the killed run's lease on ``plan`` has run out (read from its record, not guessed)."""
    deadline = time.monotonic() + timeout
    while (lease := record(db, plan)["lease_until"].replace(tzinfo=UTC)) >= datetime.now(UTC):
        assert time.monotonic() < deadline, f"the lease of {plan} never ran out: {lease}"
        time.sleep(min(0.5, max(0.05, (lease - datetime.now(UTC)).total_seconds())))


def start(plan: Path, env: dict[str, str], log: Path, *args: str) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [ROLLOUT, "run", str(plan), "--json", *args],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def run(plan: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ROLLOUT, "run", str(plan), "--json"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )


def kill_when(process: subprocess.Popen[bytes], ready: Callable[[], bool], log: Path) -> None:
    deadline = time.monotonic() + 240
    while not ready():
        assert process.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


def record(db: Any, plan: str) -> dict[str, Any]:
    found: dict[str, Any] = db["rollout_runs"].find_one({"_id": plan})
    return found


def test_killed_inside_a_step_the_next_run_resumes_after_the_last_committed_step(
    sandbox: SandboxInfo, db: Any, cli_env: dict[str, str], tmp_path: Path, plan_file: PlanFiles
) -> None:
    plan = crash_plan(plan_file, "crash-resume")
    log = tmp_path / "first.log"
    first = start(plan, cli_env, log)
    kill_when(first, lambda: len((record(db, "crash-resume") or {}).get("steps", [])) >= 2, log)

    left = record(db, "crash-resume")
    assert left["status"] in {"stepping", "observing"}  # left as a run drove it
    committed = [s["key"] for s in left["steps"]]
    assert committed[:2] == ["internal/0", "ramp/0"]
    flags = FlagStore(db["feature_flags"])
    at_kill: FlagState = flags.get(FLAG)
    # Known, never unknown: the last committed step's traffic, or the next step's if its write landed.
    assert at_kill.percentage in {25, 50} and at_kill.users == ("dev@example.com",)

    lease_runs_out(db, "crash-resume")
    second = run(plan, cli_env)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    result = json.loads(second.stdout)
    assert result["status"] == "promoted"
    outcomes = {s["step"]: s["outcome"] for s in result["steps"]}
    assert outcomes["+1 allowlisted users"] == "done before" and outcomes["25% of users"] == "done before"
    assert outcomes["100% of users"] == "successful"

    done = record(db, "crash-resume")
    keys = [s["key"] for s in done["steps"] if s["outcome"] == "successful"]
    assert sorted(keys) == sorted(set(keys)), "a step took effect twice"
    assert set(keys) == {"internal/0", "ramp/0", "ramp/1", "ramp/2", "ramp/3"}
    final = flags.get(FLAG)
    assert final.percentage == 100
    # Writes are idempotent: one version per distinct traffic change, none for a step redone.
    assert final.version == 5


def test_killed_between_phases_a_second_rollout_is_refused_and_the_restart_rolls_back(
    sandbox: SandboxInfo, db: Any, cli_env: dict[str, str], tmp_path: Path, plan_file: PlanFiles
) -> None:
    phases = [
        {
            "name": "internal",
            "allowlist": {"users": ["dev@example.com"]},
            "window": {"interval": "1s", "count": 1},
        },
        {
            "name": "ramp",
            # Long enough for a second run to start and be refused while this one waits.
            "approval": {"timeout": "40s", "on_timeout": "hold"},
            "ramp": [50],
            "window": {"interval": "1s", "count": 1},
        },
    ]
    plan = crash_plan(plan_file, "crash-approval", phases=phases, rollback={"on_restart": "rollback"})
    log = tmp_path / "first.log"
    first = start(plan, cli_env, log)

    def paused() -> bool:
        found = record(db, "crash-approval") or {}
        return bool(found.get("steps")) and "waiting for a decision" in log.read_text()

    deadline = time.monotonic() + 240
    while not paused():
        assert first.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.2)
    refused = run(plan, cli_env)
    assert refused.returncode == 1
    assert "plan crash-approval is being rolled out by run" in refused.stdout + refused.stderr
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=30)
    assert FlagStore(db["feature_flags"]).get(FLAG).users == ("dev@example.com",)

    # The lease covered the approval's wait; it runs out after that, and only then may a run resume.
    lease_runs_out(db, "crash-approval")
    second = run(plan, cli_env)
    assert second.returncode == 3, second.stdout[-3000:] + second.stderr[-3000:]
    result = json.loads(second.stdout)
    assert result["status"] == "rolled_back"
    assert "stopped after internal/0; the plan rolls back on restart" in result["rollback"]["reason"]
    flag = FlagStore(db["feature_flags"]).get(FLAG)
    assert (flag.enabled, flag.percentage, flag.users) == (False, 0, ())
    assert record(db, "crash-approval")["status"] == "rolled-back"
