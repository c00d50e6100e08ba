import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_demo_walks_the_unified_orders_plan_to_100_percent(tmp_path: Path) -> None:
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect")}
    done = subprocess.run(
        [sys.executable, "-m", "rollout.cli", "demo", "--prometheus", "required"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    for step in ("+2 allowlisted users", "+10 stores", "10% of users", "50% of users", "100% of users"):
        assert step in out
    assert "final audience 2 users, 10 stores, 100%" in out
