import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s

from tests.control_plane import ControlPlane, missing
from tests.tiers import cannot_run, in_ci

ROOT = Path(__file__).resolve().parents[2]
STABLE_IMAGE = "registry.example.com/orders:backend-v2026.11.14-0900"


def demo(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "ROLLOUT_REPORTS_DIR": str(tmp_path / "reports"),
    }
    return subprocess.run(
        [sys.executable, "-m", "cli", "demo", "--prometheus", "required", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=600,
        check=False,
    )


def test_demo_promotes_the_unified_orders_plan_to_100_percent_with_flags_in_a_flagd_file(
    tmp_path: Path,
) -> None:
    # The demo plan with its full launch in one step: the scheduled-run drill takes all seven.
    plan = yaml.safe_load((ROOT / "deployments/plans/sandbox-demo.yaml").read_text())
    assert plan["phases"][-1]["name"] == "full-launch"
    plan["phases"][-1]["ramp"] = [100]
    short = tmp_path / "sandbox-demo.yaml"
    short.write_text(yaml.safe_dump(plan))
    # The service asks OpenFeature's flagd provider, reading the file the rollout writes.
    done = demo(tmp_path, "--flags", "flagd", "--plan", str(short))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "flags       flagd file /tmp/rollout-sandbox-" in done.stdout
    assert "plan sandbox-demo: promoted, final audience 2 users, 10 stores, 100%" in done.stdout
    assert done.stdout.count("successful") == 3
    checks, _, rest = done.stdout.partition("backup before any change: s3://rollout-backups/backups/backup-")
    assert "order_hub backfill from orders_web   pass" in checks
    assert " FAIL " not in checks
    manifest, _, steps = rest.partition("\n\n")
    assert "manifest: 2828 documents in 8 collections" in manifest and manifest.endswith("verified")
    assert "internal-users" in steps and "internal-users" not in checks


@pytest.fixture()
def cluster(request: pytest.FixtureRequest) -> ControlPlane | None:
    """The real control plane where one can start (CI must have it), else None: the demo runs flags only."""
    why = missing()
    if why is not None:
        if in_ci():
            cannot_run(why)
        return None
    found: ControlPlane = request.getfixturevalue("control_plane")
    return found


def test_demo_with_a_fault_at_50_percent_in_unleash_rolls_back_every_step_and_reports_as_json(
    tmp_path: Path, cluster: ControlPlane | None
) -> None:
    # The flags live in a real Unleash server; the service asks Unleash's Python SDK.
    on_cluster = ("--kubernetes", str(cluster.kubeconfig), "--namespace", "demo") if cluster else ()
    done = demo(tmp_path, "--fault-at", "50", "--json", "--flags", "unleash", *on_cluster)
    assert done.returncode == 3, done.stderr[-3000:]
    assert "flags       Unleash http://127.0.0.1:" in done.stderr
    result = json.loads(done.stdout)
    assert result["status"] == "rolled_back"
    assert [s["audience"].split(", ")[-1] for s in result["steps"]][-1] == "50%"
    assert result["steps"][-1]["outcome"] == "failed"
    assert result["time_to_safety_seconds"] < 5
    rollback = result["rollback"]
    assert rollback["ok"] is True
    assert [s["name"] for s in rollback["steps"]] == [
        "flag USE_UNIFIED_ORDERS",
        *(["router weight"] if cluster else []),
        "flag SHOW_SOURCE_INDICATOR",
        "flag ENABLE_DUAL_WRITE",
        "flag SHOW_UNIFIED_DASHBOARD",
        *(["deployment"] if cluster else []),
        "stable release",
        "emergency backup",
        "data restore",
        "cache invalidation",
        "health check",
        "smoke test",
        "balance check",
        "health watch",
        "traffic still off",
    ]
    assert all(s["ok"] for s in rollback["steps"])
    released = next(s for s in rollback["steps"] if s["name"] == "stable release")
    assert released["detail"].endswith("healthy, running backend-v2026.11.14-0900"), released  # per /health
    report = Path(rollback["report"])
    assert report.is_file() and (report.parent / "metrics.png").stat().st_size > 10_000
    text = report.read_text()
    assert "| severity | SEV2 (resolve within 1 h) |" in text
    assert "| version restored | backend-v2026.11.14-0900 |" in text
    if cluster is not None:
        with cluster.admin() as api:
            networking: Any = k8s.NetworkingV1Api(api)
            canary = networking.read_namespaced_ingress("orders-canary", "demo").metadata.annotations
            deployment = k8s.AppsV1Api(api).read_namespaced_deployment("orders", "demo")
        assert canary["nginx.ingress.kubernetes.io/canary-weight"] == "0"
        assert [c.image for c in deployment.spec.template.spec.containers] == [STABLE_IMAGE]
        assert f"Deployment orders runs {STABLE_IMAGE}" in done.stderr
