"""A real Prefect server (and a process serving a flow) for tests that go through Prefect's REST API."""

import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx

from rollout.sandbox.processes import free_port, wait_until

ROOT = Path(__file__).resolve().parents[1]


def prefect_env(home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Settings for a quiet, self-contained Prefect under ``home``."""
    home.mkdir(parents=True, exist_ok=True)
    return {
        **os.environ,
        "PREFECT_HOME": str(home),
        "DO_NOT_TRACK": "1",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{home}/prefect.db",
        **(extra or {}),
    }


@contextmanager
def running(argv: list[str], env: Mapping[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Start ``argv`` in a session of its own; stop the whole group on the way out."""
    with log.open("ab") as out:
        process = subprocess.Popen(
            argv, env=dict(env), cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield process
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(process.pid, sig)
                process.wait(timeout=10)
                break
            except (ProcessLookupError, subprocess.TimeoutExpired):
                continue


def answers_health(api: str, timeout: float = 5) -> bool:
    """Whether the Prefect server at ``api`` answers its health check."""
    try:
        return httpx.get(f"{api}/health", timeout=timeout).status_code == 200
    except httpx.TransportError:
        return False


@contextmanager
def prefect_server(
    workdir: Path,
    auth: str,
    settings: Mapping[str, str] | None = None,
    port: int | None = None,
    ui: bool = False,
) -> Iterator[str]:
    """A Prefect server with basic auth on (and any other ``settings``); yields its API URL.

    Given ``port`` (and a database that outlives it, PostgreSQL), a server started again there
    is the same server to its clients: a restart. With ``ui``, it serves the UI at the URL's root.
    """
    port = port or free_port()
    # The UI's pages call the API at the address they are told (by default port 4200's).
    ui_api = {"PREFECT_UI_API_URL": f"http://127.0.0.1:{port}/api"} if ui else {}
    env = prefect_env(
        workdir / "server", {"PREFECT_SERVER_API_AUTH_STRING": auth, **ui_api, **(settings or {})}
    )
    argv = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--analytics-off"] if ui else ["--no-ui", "--analytics-off"]
    with running(argv, env, workdir / "server.log") as server:
        api = f"http://127.0.0.1:{port}/api"
        wait_until(
            lambda: answers_health(api, timeout=2),
            "Prefect server",
            timeout=180,
            interval=0.5,
            still_alive=lambda: server.poll() is None,
        )
        yield api
