import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from rollout.sandbox.processes import HOST

pytestmark = pytest.mark.integration


def rollout(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli", *args], capture_output=True, text=True, check=False, timeout=180
    )


def test_up_then_down_stops_only_what_up_started(tmp_path: Path) -> None:
    state = tmp_path / "sandbox.json"
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        up = rollout("sandbox", "up", "--prometheus", "off", "--load-rate", "5", "--state-file", str(state))
        assert up.returncode == 0, up.stderr
        info = json.loads(state.read_text())
        assert httpx.get(f"{info['service_url']}/health").status_code == 200
        again = rollout("sandbox", "up", "--state-file", str(state))
        assert again.returncode == 2 and "already running" in again.stderr
        status = rollout("sandbox", "status", "--state-file", str(state))
        assert status.stdout.count("running") == len(info["processes"])

        down = rollout("sandbox", "down", "--state-file", str(state))
        assert down.returncode == 0, down.stderr
        assert not state.exists()
        assert not Path(info["state_dir"]).exists()
        for record in info["processes"]:
            assert (
                not Path(f"/proc/{record['pid']}").exists()
                or record["marker"].encode() not in Path(f"/proc/{record['pid']}/cmdline").read_bytes()
            )
        assert bystander.poll() is None
    finally:
        bystander.kill()
        if state.exists():
            rollout("sandbox", "down", "--state-file", str(state))


def test_a_taken_port_is_reported_and_nothing_starts(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind((HOST, 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = rollout("sandbox", "up", "--mongodb-port", str(port), "--state-file", str(tmp_path / "s.json"))
    assert done.returncode == 2
    assert f"port {port} on 127.0.0.1, wanted for mongodb, is already in use" in done.stderr
    assert not (tmp_path / "s.json").exists()
