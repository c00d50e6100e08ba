"""An Unleash server for the sandbox: npm's unleash-server under Node, on the sandbox's PostgreSQL."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import httpx

NODE_DIR = Path(__file__).resolve().parents[2] / "node"
SERVER = NODE_DIR / "node_modules" / "unleash-server" / "dist" / "server.js"
PROJECT, ENVIRONMENT = "default", "development"
# How the sandbox hands the tokens to its service: environment variables, never the command line.
ADMIN_TOKEN_ENV = "ROLLOUT_SANDBOX_UNLEASH_ADMIN_TOKEN"
BACKEND_TOKEN_ENV = "ROLLOUT_SANDBOX_UNLEASH_BACKEND_TOKEN"


def unleash_missing() -> str | None:
    """Why no Unleash server can start here (and how to fix it), or None."""
    if shutil.which("node") is None:
        return "Node is not installed: `make setup` installs it (Debian's nodejs)"
    if not SERVER.exists():
        return f"unleash-server is not installed in {NODE_DIR}: `make setup` runs npm ci there"
    return None


def server_argv(marker: str) -> list[str]:
    """The Node command of the server; ``marker`` (ignored by the server) tells the process apart."""
    return ["node", str(SERVER), "--sandbox", marker]


def server_env(database_url: str, port: int, admin_token: str, backend_token: str) -> dict[str, str]:
    """The server's settings: its database, port, the tokens made at start, and no telemetry."""
    return {
        "DATABASE_URL": database_url,
        "DATABASE_SSL": "false",
        "HTTP_PORT": str(port),
        "INIT_ADMIN_API_TOKENS": admin_token,
        "INIT_BACKEND_API_TOKENS": backend_token,
        "LOG_LEVEL": "warn",
        "CHECK_VERSION": "false",
        "SEND_TELEMETRY": "false",
        "SCARF_ANALYTICS": "false",
    }


def answers(url: str, admin_token: str) -> Callable[[], bool]:
    """A readiness probe: the Admin API lists projects with the admin token."""

    def check() -> bool:
        try:
            response = httpx.get(
                f"{url}/api/admin/projects", headers={"Authorization": admin_token}, timeout=2
            )
        except httpx.TransportError:
            return False
        return response.status_code == 200

    return check


def create_flags(url: str, admin_token: str, names: Sequence[str]) -> None:
    """Create release flags in the default project, off in every environment (existing ones are kept)."""
    with httpx.Client(base_url=url, headers={"Authorization": admin_token}, timeout=10) as http:
        for name in names:
            response = http.post(
                f"/api/admin/projects/{PROJECT}/features", json={"name": name, "type": "release"}
            )
            if response.status_code not in (200, 201, 409):
                response.raise_for_status()
