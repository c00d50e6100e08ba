"""The shipped alert rules and dashboard: current with the plan, accepted by promtool and Prometheus."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from rollout.adapters.prometheus import PrometheusClient
from rollout.plan import load_plan
from rollout.reporting.monitoring import alert_rules, dashboard
from rollout.sandbox.stack import SandboxInfo

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "deployments" / "monitoring"
PLAN = ROOT / "deployments" / "plans" / "unified-orders.yaml"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    assert binary, "promtool is missing: `make prometheus` installs it"
    return subprocess.run([binary, *args], cwd=MONITORING, capture_output=True, text=True, check=False)


def test_the_shipped_files_are_generated_from_the_plan() -> None:
    plan = load_plan(PLAN)
    assert yaml.safe_load((MONITORING / "unified-orders.rules.yml").read_text()) == alert_rules(plan), (
        "stale rules: run `make monitoring`"
    )
    shipped = json.loads((MONITORING / "unified-orders.dashboard.json").read_text())
    assert shipped == dashboard(plan), "stale dashboard: run `make monitoring`"


def test_promtool_accepts_the_rules_and_their_unit_tests_pass() -> None:
    checked = promtool("check", "rules", "unified-orders.rules.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 6 rules found" in checked.stdout
    tested = promtool("test", "rules", "unified-orders.rules.test.yml")
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_a_rule_whose_threshold_drifts_fails_its_unit_test(tmp_path: Path) -> None:
    rules = (MONITORING / "unified-orders.rules.yml").read_text().replace("> 0.02", "> 0.04", 1)
    (tmp_path / "unified-orders.rules.yml").write_text(rules)
    shutil.copy(MONITORING / "unified-orders.rules.test.yml", tmp_path)
    binary = shutil.which("promtool")
    assert binary
    drifted = subprocess.run(
        [binary, "test", "rules", "unified-orders.rules.test.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert drifted.returncode != 0
    assert "High5xxErrorRate" in drifted.stdout + drifted.stderr


def test_every_dashboard_query_is_accepted_by_prometheus(sandbox: SandboxInfo) -> None:
    assert sandbox.prometheus_url
    board = dashboard(load_plan(PLAN))
    queries = [t["expr"] for panel in board["panels"] for t in panel["targets"]]
    queries += [a["expr"] for a in board["annotations"]["list"]]
    with PrometheusClient(sandbox.prometheus_url) as prometheus:
        for query in queries:
            prometheus.query(query)  # a PromQL error raises ServiceRejected
    assert len(queries) == 9  # 3 panels x 2 variants, 2 traffic series, 1 annotation
