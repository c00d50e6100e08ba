"""A real Unleash server (npm's unleash-server, under Node) on a throwaway PostgreSQL (Debian's)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from rollout.sandbox.processes import free_port, wait_until
from tests.postgres import postgres_server

NODE_DIR = Path(__file__).resolve().parent.parent / "node"
SERVER = NODE_DIR / "node_modules" / "unleash-server" / "dist" / "server.js"
ADMIN_TOKEN = "*:*.rollout-tests-admin"
BACKEND_TOKEN = "default:development.rollout-tests-backend"


@dataclass(frozen=True)
class UnleashServer:
    """Where the server listens and the tokens it was started with."""

    url: str
    admin_token: str
    backend_token: str
    log: Path


def missing() -> str | None:
    """Why no Unleash server can start here, or None."""
    if shutil.which("node") is None:
        return "Node is not installed: `make setup` installs it"
    if not SERVER.exists():
        return "unleash-server is not installed: `make setup` runs npm ci in node/"
    return None


@contextmanager
def unleash_server() -> Iterator[UnleashServer]:
    """Start PostgreSQL and Unleash on free ports; the admin and backend tokens are made at start."""
    with postgres_server("unleash") as database:
        port = free_port()
        workdir = Path(tempfile.mkdtemp(prefix="rollout-unleash-"))
        log = workdir / "unleash.log"
        env = {
            **os.environ,
            "DATABASE_URL": database.replace("postgresql+asyncpg://", "postgres://"),
            "DATABASE_SSL": "false",
            "HTTP_PORT": str(port),
            "INIT_ADMIN_API_TOKENS": ADMIN_TOKEN,
            "INIT_BACKEND_API_TOKENS": BACKEND_TOKEN,
            "LOG_LEVEL": "warn",
            "CHECK_VERSION": "false",
            "SEND_TELEMETRY": "false",
            "SCARF_ANALYTICS": "false",
        }
        url = f"http://127.0.0.1:{port}"
        with open(log, "wb") as out:
            process = subprocess.Popen(["node", str(SERVER)], cwd=NODE_DIR, env=env, stdout=out, stderr=out)
        try:

            def ready() -> bool:
                if process.poll() is not None:
                    raise RuntimeError(f"unleash-server exited: {log.read_text()[-2000:]}")
                try:
                    answer = httpx.get(f"{url}/api/admin/projects", headers={"Authorization": ADMIN_TOKEN})
                except httpx.TransportError:
                    return False
                return answer.status_code == 200

            wait_until(ready, "Unleash", timeout=120, interval=0.3)
            yield UnleashServer(url, ADMIN_TOKEN, BACKEND_TOKEN, log)
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
            shutil.rmtree(workdir, ignore_errors=True)
