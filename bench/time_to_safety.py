"""Time to safety: from the first failing sample visible in Prometheus to the flag and the router at 0.

Starts the sandbox (SecantusDB, moto, the orders service with load, Prometheus) and a
Kubernetes API (kmock) holding the canary Ingress, then runs the sandbox demo plan with
the canary router, ``--trials`` times. Each time the candidate starts failing once the ramp
reaches ``--fault-at`` percent. After the rollback:

- visible: the first instant, on a 100 ms grid, at which the gate's own PromQL (the
  candidate's 5xx ratio) over Prometheus's data is above the gate's limit;
- flag_off: when the main flag stopped admitting anyone (the rollback's first write);
- router_off: when the canary weight was set to 0 (the rollback's router step done).

Each is divided by the observe interval. Goal: at most 1 interval + 2 s to both. (Flagger
needs interval x threshold; Argo Rollouts (failureLimit + 1) x interval.)

Usage: ``python bench/time_to_safety.py [--trials 3] [--fault-at 50]``. The last line is
``flag_off_intervals=X router_off_intervals=Y interval_s=I flag_off_s=A router_off_s=B``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from cli.common import prefect_defaults  # noqa: E402

prefect_defaults()
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

from kubernetes import client as k8s  # noqa: E402

from flows.rollout_flow import run_rollout  # noqa: E402
from rollout.adapters.prometheus import PrometheusClient  # noqa: E402
from rollout.plan import load_plan  # noqa: E402
from rollout.sandbox.faults import FaultAtPercentage  # noqa: E402
from rollout.sandbox.stack import Sandbox, SandboxInfo, SandboxOptions  # noqa: E402
from tasks.observe import gate_query  # noqa: E402
from tests.kmock_cluster import NAMESPACE, EmulatorThread, deployment, replica_set  # noqa: E402

DEMO = ROOT / "deployments" / "plans" / "sandbox-demo.yaml"
CANARY = "nginx.ingress.kubernetes.io/canary-weight"


def write_plan(folder: Path, info: SandboxInfo, cluster: str, trial: int) -> Path:
    """The demo plan, aimed at the sandbox and the canary Ingress, with a release of its own per trial."""
    plan = yaml.safe_load(DEMO.read_text())
    targets = info.targets().model_dump(mode="json", exclude_none=True, by_alias=True)
    targets["kubernetes"] = {
        "namespace": NAMESPACE,
        "deployment": "orders",
        "api_url": cluster,
        "image_repository": "registry/orders",
        "router": {"kind": "nginx-canary", "name": "orders-canary"},
    }
    plan["targets"] = targets
    plan["release"]["version"] = f"bench-{trial}-{time.time_ns()}"
    plan["rollback"]["restore"] = {"mode": "none"}  # the data restore is timed by bench/backup.py
    plan["rollback"]["watch"] = {"interval": "1s", "duration": "1s"}
    path = folder / f"tts-{trial}.yaml"
    path.write_text(yaml.safe_dump(plan))
    return path


def first_visible(
    prometheus: PrometheusClient, query: str, limit: float, start: datetime, end: datetime
) -> datetime:
    """The first instant on a 100 ms grid at which ``query`` is above ``limit``."""
    for series in prometheus.query_range(query, start, end, 0.1):
        for timestamp, value in series.points:
            if value > limit:
                return datetime.fromtimestamp(timestamp, UTC)
    raise RuntimeError("the failure never showed in Prometheus")


def trial(
    folder: Path, info: SandboxInfo, cluster: str, number: int, fault_at: float
) -> tuple[float, float, float]:
    """One rollout with a fault; returns (interval, seconds to flag off, seconds to router off)."""
    path = write_plan(folder, info, cluster, number)
    plan = load_plan(path)
    httpx.delete(f"{info.service_url}/fault")
    time.sleep(12)  # let the last trial's errors leave the rate window
    watcher = FaultAtPercentage(info, fault_at, error_rate=0.5)
    watcher.start()
    started = datetime.now(UTC)
    try:
        result = run_rollout(plan_path=str(path), targets=plan.targets)
    finally:
        watcher.stop()
        httpx.delete(f"{info.service_url}/fault")
    assert result.status == "rolled_back" and result.rollback is not None, result.status
    router = next(s for s in result.rollback.steps if s.name == "router weight")
    assert router.ok, router
    gate = plan.gates["error-ratio"]
    assert plan.targets is not None and gate.max is not None
    query = gate_query(gate, plan.targets)
    assert query is not None
    with PrometheusClient(info.prometheus_url or "") as prometheus:
        visible = first_visible(prometheus, query, gate.max, started, datetime.now(UTC))
    window = plan.phases[-1].window
    assert window is not None and result.rollback.traffic_off_at is not None
    interval = window.interval.total_seconds()
    flag_off = (result.rollback.traffic_off_at - visible).total_seconds()
    router_off = (router.finished_at - visible).total_seconds()
    print(
        f"trial {number}: failure visible {visible:%H:%M:%S.%f}"[:-3]
        + f", flag at 0 after {flag_off:.2f} s, router at 0 after {router_off:.2f} s "
        f"(interval {interval:g} s; judged after {(result.first_bad_at - visible).total_seconds():.2f} s)"
    )
    return interval, flag_off, router_off


def main() -> None:
    """Start everything, run the trials, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--fault-at", type=float, default=50)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as folder,
        Sandbox(SandboxOptions(prometheus="required")) as info,
        EmulatorThread() as emulator,
    ):
        configuration = k8s.Configuration()
        configuration.host = emulator.url
        with k8s.ApiClient(configuration) as api:
            apps: Any = k8s.AppsV1Api(api)
            release, stable = "registry/orders:candidate", "registry/orders:stable"
            apps.create_namespaced_deployment(NAMESPACE, deployment("orders", release, 2, "u1"))
            apps.create_namespaced_replica_set(NAMESPACE, replica_set("orders", "u1", stable, 1))
            apps.create_namespaced_replica_set(NAMESPACE, replica_set("orders", "u1", release, 2))
            annotations = {"nginx.ingress.kubernetes.io/canary": "true", CANARY: "0"}
            k8s.NetworkingV1Api(api).create_namespaced_ingress(
                NAMESPACE, {"metadata": {"name": "orders-canary", "annotations": annotations}, "spec": {}}
            )
        results = [
            trial(Path(folder), info, emulator.url, n, args.fault_at) for n in range(1, args.trials + 1)
        ]
    interval = results[0][0]
    flag_s = statistics.median(r[1] for r in results)
    router_s = statistics.median(r[2] for r in results)
    worst = max(max(r[1], r[2]) for r in results)
    goal = interval + 2
    print(f"median: flag {flag_s:.2f} s, router {router_s:.2f} s; worst {worst:.2f} s; goal <= {goal:g} s")
    print(f"goal <= 1 interval + 2 s in every trial: {'met' if worst <= goal else 'missed'}")
    print(
        f"flag_off_intervals={flag_s / interval:.2f} router_off_intervals={router_s / interval:.2f} "
        f"interval_s={interval:g} flag_off_s={flag_s:.2f} router_off_s={router_s:.2f}"
    )


if __name__ == "__main__":
    main()
