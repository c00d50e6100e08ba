import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def rollout(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli", *args], capture_output=True, text=True, cwd=ROOT, check=False
    )


def test_validate_accepts_every_example_plan() -> None:
    for plan in sorted((ROOT / "deployments" / "plans").glob("*.yaml")):
        done = rollout("validate", str(plan))
        assert (done.returncode, done.stdout) == (0, "OK\n"), done.stderr


def test_validate_prints_one_line_per_problem_and_exits_2(tmp_path: Path) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        "name: p\nrelease: {version: v}\nflag: F\nphases:\n"
        "  - {name: a, ramp: [50, 10], window: {interval: 1s, count: 1, gates: [nope]}}\n"
    )
    done = rollout("validate", str(plan))
    assert done.returncode == 2
    assert done.stdout.splitlines() == ["phases.0.ramp: percentages must increase strictly: 10 follows 50"]


def test_validate_a_missing_file() -> None:
    done = rollout("validate", "no/such/plan.yaml")
    assert done.returncode == 2
    assert done.stdout == "(plan): no/such/plan.yaml does not exist; check the path\n"


def test_reconcile_without_a_reachable_server_watches_only_says_so_and_exits_1() -> None:
    import os
    import socket

    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    env = {**os.environ, "PREFECT_API_URL": f"http://127.0.0.1:{port}/api"}
    done = subprocess.run(
        [sys.executable, "-m", "cli", "reconcile"], capture_output=True, text=True, cwd=ROOT, env=env
    )
    assert done.returncode == 1, done.stderr[-2000:]
    assert f"the Prefect server at http://127.0.0.1:{port}/api cannot serve (" in done.stderr
    assert "nothing is woken, adopted or held until it answers" in done.stderr
    assert "0 rollouts (0 parked)" in done.stdout  # the watching pass ran over the shipped plans
    unset = {k: v for k, v in env.items() if k != "PREFECT_API_URL"}
    done = subprocess.run(
        [sys.executable, "-m", "cli", "reconcile"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=unset,
    )
    assert done.returncode == 2 and "PREFECT_API_URL is not set" in done.stderr


def test_two_sandboxes_of_one_user_keep_their_state_apart() -> None:
    import os

    probe = "from rollout.sandbox.stack import DEFAULT_STATE_FILE; print(DEFAULT_STATE_FILE)"
    mine = {**os.environ, "ROLLOUT_SANDBOX_STATE": "/tmp/checkout-a/sandbox.json"}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, env=mine)
    assert done.stdout.strip() == "/tmp/checkout-a/sandbox.json"
    plain = {k: v for k, v in os.environ.items() if k != "ROLLOUT_SANDBOX_STATE"}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, env=plain)
    assert done.stdout.strip().endswith("/.rollout/sandbox.json")
