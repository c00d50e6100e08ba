"""Debian's PostgreSQL as a sandbox process: a fresh cluster in a folder, served in the foreground."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
from pathlib import Path

from rollout.errors import SandboxError


def postgres_bin(name: str) -> str:
    """The path of a PostgreSQL program (``initdb``, ``postgres``, ``psql``), newest version first."""
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise SandboxError("PostgreSQL is not installed: `make setup` installs Debian's postgresql")
    return found[-1]


def as_postgres(argv: list[str]) -> list[str]:
    """``argv`` run as the ``postgres`` user when we are root: initdb and postgres refuse root."""
    return ["runuser", "-u", "postgres", "--", *argv] if os.getuid() == 0 else argv


def database_user() -> str:
    """The superuser initdb makes: ``postgres`` under root, else the user running us."""
    return "postgres" if os.getuid() == 0 else pwd.getpwuid(os.getuid()).pw_name


def init_cluster(folder: Path) -> tuple[Path, Path]:
    """Make a cluster in ``folder/pgdata`` (trust auth, UTF-8); returns the data and socket folders.

    ``folder`` must be reachable by the postgres user when we are root.
    """
    data, sockets = folder / "pgdata", folder / "pgsock"
    for path in (data, sockets):
        path.mkdir(parents=True)
        if os.getuid() == 0:
            shutil.chown(path, user="postgres", group=pwd.getpwnam("postgres").pw_gid)
    command = [postgres_bin("initdb"), "-D", str(data), "-U", database_user(), "--auth=trust", "-E", "UTF8"]
    done = subprocess.run(as_postgres(command), capture_output=True, text=True)
    if done.returncode != 0:
        raise SandboxError(f"initdb failed: {done.stderr.strip()[-500:]}")
    return data, sockets


def server_argv(data: Path, sockets: Path, port: int) -> list[str]:
    """The foreground ``postgres`` command serving ``data`` on 127.0.0.1:``port``."""
    options = ["-c", "listen_addresses=127.0.0.1", "-p", str(port), "-k", str(sockets), "-c", "fsync=off"]
    return as_postgres([postgres_bin("postgres"), "-D", str(data), *options, "-c", "max_connections=200"])


def psql(port: int, sql: str, database: str = "postgres") -> bool:
    """Run ``sql`` over TCP as the cluster's superuser; whether it succeeded."""
    command = [
        postgres_bin("psql"),
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
        "-U",
        database_user(),
        "-d",
        database,
    ]
    return subprocess.run([*command, "-q", "-c", sql], capture_output=True).returncode == 0
