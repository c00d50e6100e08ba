"""Durability: parked rollouts hold no process, the reconciler keeps them watched, a lost host is adopted.

Starts the sandbox, a Prefect server on PostgreSQL, ``make deploy`` and a process worker
(``tests.operator``), then:

1. parks ``--real`` rollouts from ``rollout-manual`` in 7-day windows measured every
   5 minutes, and counts the processes they hold and the machine's memory growth;
2. adds parked rollouts up to ``--parked`` (records and suspended runs as parking
   writes them, every one with its next round due) and times a reconciler pass that
   measures them all, then passes with nothing due (wall and CPU, in this process);
3. time to safety in a parked window (interval 1m, the reconciler deployment on its
   1-minute schedule): from the candidate breaking to the flag admitting no one;
4. unwatched time: SIGKILL of the worker and the flow-run process inside a window
   (interval 5s, lease 1m) until a new run takes the next round, and the round it takes;
5. with ``--drills``, the durability drills of ``tests/integration/test_durability.py`` (the
   Prefect database down as a run parks, a host lost right after a wake, ...), each of which
   prints how long its rollout went unwatched after its fault: the worst of them is reported.

Goals: no process per parked rollout; memory growth <= 1 GiB; a pass <= 30 s; parked time to
safety <= interval + reconciler interval + 10 s; unwatched <= lease + reconciler interval + 30 s.
The last line is ``parked=N processes_held=P memory_growth_mb=M reconcile_pass_s=R
parked_time_to_safety_s=T unwatched_s=U window_resumed_at=K/N`` (and ``worst_drill_unwatched_s=W``
with ``--drills``).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from cli.common import prefect_defaults  # noqa: E402

prefect_defaults()
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

from pymongo import MongoClient  # noqa: E402

from rollout.adapters.flags import FlagStore  # noqa: E402
from rollout.adapters.run_state import RunStateStore  # noqa: E402
from rollout.lifecycle.statuses import Status  # noqa: E402
from rollout.sandbox.stack import Sandbox, SandboxInfo, SandboxOptions  # noqa: E402
from tests.operator import Operator, flow_run_processes, operator  # noqa: E402

AUTH = ("bench", "durability")
DATABASE = "bench_durability"


def write_plan(
    folder: Path, info: SandboxInfo, name: str, errors: str, window: dict[str, Any], **extra: Any
) -> str:
    """A one-phase plan against the sandbox, its flags and records in a database of their own."""
    targets = info.targets().model_dump(mode="json", exclude_none=True, by_alias=True)
    targets["flag_store"] = {"database": DATABASE}
    plan = {
        "name": name,
        "release": {"version": "v2", "stable_version": "v1"},
        "flag": name.upper().replace("-", "_"),
        "targets": targets,
        "backup": {"enabled": False, "waived_by": "durability benchmark"},
        "gates": {"errors": {"query": errors, "max": 0.5}},
        "rollback": {"watch": {"duration": "1s", "interval": "1s"}},
        "phases": [{"name": "ramp", "ramp": [10, 100], "window": window}],
        **extra,
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(plan))
    return str(path)


def available_mb() -> float:
    """The machine's available memory."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no MemAvailable in /proc/meminfo")


def until(check: Any, what: str, timeout: float = 600) -> Any:
    """Poll ``check`` until it answers something true; TimeoutError naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    while not (found := check()):
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.25)
    return found


def park_real(ops: Operator, runs: RunStateStore, folder: Path, info: SandboxInfo, count: int) -> list[str]:
    """``count`` rollouts from the deployment, each parked in a 7-day window; their run ids."""
    window = {"interval": "5m", "duration": "7d", "gates": ["errors"]}
    ids = []
    for i in range(count):
        plan = write_plan(folder, info, f"real-{i}", "vector(0)", window)
        ids.append(ops.start("rollout", "rollout-manual", {"plan_path": plan}))
    for i in range(count):
        until(
            lambda i=i: (r := runs.get(f"real-{i}")) is not None and r.status is Status.PARKED,
            f"real-{i} parks",
        )
    until(
        lambda: all(not flow_run_processes(run_id) for run_id in ids), "the parked runs' processes end", 120
    )
    return ids


def add_parked(ops: Operator, db: Any, template: str, count: int) -> None:
    """Parked rollouts as parking writes them, with suspended runs, each with its next round due."""
    doc = db["rollout_runs"].find_one({"_id": template})
    deployment = ops.deployment_id("rollout", "rollout-manual")
    now = datetime.now(UTC)
    docs = []
    later = (now + timedelta(days=365)).isoformat()
    for i in range(count):
        # Created due in a year (no worker takes it), then suspended as parking leaves a run.
        run = ops._post(
            f"deployments/{deployment}/create_flow_run",
            {
                "parameters": {"plan_path": doc["plan_path"]},
                "state": {"type": "SCHEDULED", "state_details": {"scheduled_time": later}},
            },
        )
        ops._post(
            f"flow_runs/{run['id']}/set_state",
            {"state": {"type": "PAUSED", "name": "Suspended"}, "force": True},
        )
        # Every next round is due by the first pass (the worst case: on a 1-minute schedule over
        # 5-minute windows, a pass finds a fifth of them due).
        started = now - timedelta(seconds=300 + 300 * i / count)
        window = {**doc["window"], "started_at": started}
        window["rounds"] = [{**r, "at": started} for r in doc["window"]["rounds"]]
        docs.append({**doc, "_id": f"parked-{i}", "run_id": str(run["id"]), "window": window})
    db["rollout_runs"].insert_many(docs)


def one_pass(ops: Operator, plan: str) -> tuple[float, float, str]:
    """A reconciler pass in this process against the operator's server: wall s, CPU s, its summary."""
    from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings

    from flows.reconcile import reconcile_flow

    with temporary_settings({PREFECT_API_URL: ops.api, PREFECT_API_AUTH_STRING: ":".join(ops.auth)}):
        wall, cpu = time.perf_counter(), time.process_time()
        report = reconcile_flow(plans=[plan])
        return time.perf_counter() - wall, time.process_time() - cpu, report.summary()


def schedule_reconciler(ops: Operator, plan: str) -> None:
    """Switch the reconciler deployment's 1-minute schedule on, over the benchmark's plans."""
    response = httpx.patch(
        f"{ops.api}/deployments/{ops.deployment_id('reconcile', 'rollout-reconcile')}",
        json={"paused": False, "parameters": {"plans": [plan]}},
        auth=ops.auth,
        timeout=30,
    )
    response.raise_for_status()


def parked_time_to_safety(
    ops: Operator, flags: FlagStore, runs: RunStateStore, folder: Path, info: SandboxInfo
) -> float:
    """From the candidate breaking in a parked window to the main flag admitting no one."""
    breaks_at = time.time() + 90
    # 90 s: a window parks only when its interval is a quarter longer than the reconciler's minute.
    window = {"interval": "90s", "count": 60, "gates": ["errors"]}
    plan = write_plan(
        folder, info, "breaks", f"vector(time() > bool {breaks_at:.0f})", window, park_after="30s"
    )
    ops.start("rollout", "rollout-manual", {"plan_path": plan})
    until(
        lambda: (r := runs.get("breaks")) is not None and r.status is Status.PARKED,
        "the breaking rollout parks",
    )
    until(lambda: time.time() >= breaks_at, "the break", 200)
    until(lambda: not flags.get("BREAKS").enabled, "traffic off", 400)
    return time.time() - breaks_at


def unwatched(ops: Operator, runs: RunStateStore, folder: Path, info: SandboxInfo) -> tuple[float, str]:
    """From a lost host inside a window to the next round by a new run; and that round, as k/N."""
    window = {"interval": "5s", "count": 100, "gates": ["errors"]}
    plan = write_plan(folder, info, "lost", "vector(0)", window)
    run_id = ops.start("rollout", "rollout-manual", {"plan_path": plan})

    def rounds() -> int:
        record = runs.get("lost")
        return len(record.window.rounds) if record and record.window else 0

    until(lambda: rounds() >= 3, "three rounds")
    before = rounds()
    killed = time.time()
    ops.lose_host(run_id)
    ops.start_worker()
    until(lambda: rounds() > before, "a round by a new run", 600)
    return time.time() - killed, f"{before + 1}/{window['count']}"


def worst_drill() -> tuple[float, str]:
    """Run the durability drills; the longest unwatched time any of them printed, and which."""
    import re
    import subprocess

    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-s",
            "-p",
            "no:cacheprovider",
            "tests/integration/test_durability.py",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    found = [(float(s), d) for d, s in re.findall(r"^unwatched (.+): ([0-9.]+) s$", done.stdout, re.M)]
    if done.returncode != 0 or not found:
        raise SystemExit(f"the drills failed or printed no unwatched time:\n{done.stdout[-3000:]}")
    for seconds, drill in found:
        print(f"drill {drill}: unwatched {seconds:.1f} s", flush=True)
    return max(found)


def main() -> None:
    """Run the four measurements and print their figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parked", type=int, default=1000)
    parser.add_argument("--real", type=int, default=10)
    parser.add_argument("--drills", action="store_true", help="also run the durability drills")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, Sandbox(SandboxOptions(prometheus="required")) as info:
        folder = Path(tmp)
        with operator(folder / "operator", AUTH, postgres=True) as ops:
            client: MongoClient[dict[str, Any]] = MongoClient(info.mongodb_uri, tz_aware=True)
            db = client[DATABASE]
            runs, flags = RunStateStore(db["rollout_runs"]), FlagStore(db["feature_flags"])
            memory_before = available_mb()
            real = park_real(ops, runs, folder, info, args.real)
            held = sum(len(flow_run_processes(run_id)) for run_id in real)
            print(f"{args.real} rollouts parked from the deployment: {held} processes held", flush=True)
            add_parked(ops, db, "real-0", args.parked - args.real)
            growth = memory_before - available_mb()
            print(f"{args.parked} parked: memory growth {growth:.0f} MiB", flush=True)
            # The first pass finds every parked rollout's round due; the next ones, right after, find
            # none: the cost of a pass with nothing to measure.
            passes = [one_pass(ops, str(folder / "real-0.yaml")) for _ in range(3)]
            wall, cpu = passes[0][0], passes[0][1]
            for p in passes:
                print(f"pass: {p[0]:.1f} s wall, {p[1]:.1f} s CPU: {p[2]}", flush=True)
            idle = passes[-1][1]
            print(
                f"reconciling: {idle * 60:.0f}-{cpu * 60:.0f} CPU s an hour at one pass a minute", flush=True
            )
            schedule_reconciler(ops, str(folder / "*.yaml"))
            safety = parked_time_to_safety(ops, flags, runs, folder, info)
            print(
                f"parked window (interval 1m, reconciler 1m): traffic off {safety:.1f} s after it broke",
                flush=True,
            )
            lost, resumed = unwatched(ops, runs, folder, info)
            print(
                f"lost host (lease 1m, reconciler 1m): unwatched {lost:.1f} s; resumed at {resumed}",
                flush=True,
            )
            client.close()
    worst = ""
    if args.drills:
        seconds, drill = worst_drill()
        print(f"worst drill: {drill}, unwatched {seconds:.1f} s", flush=True)
        worst = f" worst_drill_unwatched_s={seconds:.1f}"
    print(
        f"parked={args.parked} processes_held={held} memory_growth_mb={growth:.0f} "
        f"reconcile_pass_s={wall:.1f} parked_time_to_safety_s={safety:.1f} unwatched_s={lost:.1f} "
        f"window_resumed_at={resumed}{worst}"
    )


if __name__ == "__main__":
    main()
