import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def demo(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect")}
    return subprocess.run(
        [sys.executable, "-m", "rollout.cli", "demo", "--prometheus", "required", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=600,
        check=False,
    )


def test_demo_promotes_the_unified_orders_plan_to_100_percent(tmp_path: Path) -> None:
    done = demo(tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "plan sandbox-demo: promoted, final audience 2 users, 10 stores, 100%" in done.stdout
    assert done.stdout.count("successful") == 7
    checks, _, rest = done.stdout.partition("backup before any change: s3://rollout-backups/backups/backup-")
    assert "order_hub backfill from orders_web   pass" in checks
    assert " FAIL " not in checks
    manifest, _, steps = rest.partition("\n\n")
    assert "manifest: 2828 documents in 8 collections" in manifest and manifest.endswith("verified")
    assert "internal-users" in steps and "internal-users" not in checks


def test_demo_with_a_fault_at_25_percent_rolls_back_with_exit_3(tmp_path: Path) -> None:
    done = demo(tmp_path, "--fault-at", "25")
    assert done.returncode == 3, done.stderr[-3000:]
    out = done.stdout
    assert "plan sandbox-demo: rolled back" in out
    assert "rollback flag USE_UNIFIED_ORDERS: ok (traffic 0)" in out
    assert "time to safety:" in out
    assert "rollback emergency backup: ok (s3://rollout-backups/backups/emergency-backup-" in out
    assert "order_hub 1200/1200 replaced" in out
    assert "100%" not in out.split("plan sandbox-demo")[0]
