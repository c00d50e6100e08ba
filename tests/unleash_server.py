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

from rollout.sandbox.processes import free_port, wait_until
from rollout.sandbox.unleash import answers, server_argv, server_env, unleash_missing
from tests.postgres import postgres_server

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
    return unleash_missing()


@contextmanager
def unleash_server() -> Iterator[UnleashServer]:
    """Start PostgreSQL and Unleash on free ports; the admin and backend tokens are made at start."""
    with postgres_server("unleash") as database:
        port = free_port()
        workdir = Path(tempfile.mkdtemp(prefix="rollout-unleash-"))
        log = workdir / "unleash.log"
        url = database.replace("postgresql+asyncpg://", "postgres://")
        env = {**os.environ, **server_env(url, port, ADMIN_TOKEN, BACKEND_TOKEN)}
        with open(log, "wb") as out:
            process = subprocess.Popen(server_argv(str(workdir)), env=env, stdout=out, stderr=out)
        base = f"http://127.0.0.1:{port}"
        try:
            probe = answers(base, ADMIN_TOKEN)

            def ready() -> bool:
                if process.poll() is not None:
                    raise RuntimeError(f"unleash-server exited: {log.read_text()[-2000:]}")
                return probe()

            wait_until(ready, "Unleash", timeout=120, interval=0.3)
            yield UnleashServer(base, ADMIN_TOKEN, BACKEND_TOKEN, log)
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
            shutil.rmtree(workdir, ignore_errors=True)
