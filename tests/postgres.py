"""A throwaway PostgreSQL server (Debian's), for a Prefect server that must take concurrent writes."""

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rollout.sandbox.processes import free_port, wait_until


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise RuntimeError("PostgreSQL is not installed: `make setup` installs Debian's postgresql")
    return found[-1]


def _as_postgres(argv: list[str]) -> list[str]:
    # initdb and postgres refuse to run as root; Debian's package creates the postgres user.
    return ["runuser", "-u", "postgres", "--", *argv] if os.getuid() == 0 else argv


@contextmanager
def postgres_server(database: str = "prefect") -> Iterator[str]:
    """Start PostgreSQL on a free port with one database (``prefect``); yields its SQLAlchemy URL.

    Its files live in a folder of its own under /tmp, which the postgres user can reach
    (pytest's folders are private to the user running the tests).
    """
    workdir = Path(tempfile.mkdtemp(prefix="rollout-postgres-"))
    workdir.chmod(0o755)
    data, sockets = workdir / "pgdata", workdir / "pgsock"
    for folder in (data, sockets):
        folder.mkdir(parents=True)
        if os.getuid() == 0:
            shutil.chown(folder, user="postgres", group=pwd.getpwnam("postgres").pw_gid)
    user = "postgres" if os.getuid() == 0 else pwd.getpwuid(os.getuid()).pw_name
    subprocess.run(
        _as_postgres([_bin("initdb"), "-D", str(data), "-U", user, "--auth=trust", "-E", "UTF8"]),
        check=True,
        capture_output=True,
    )
    port = free_port()
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {sockets} -c max_connections=200 -c fsync=off"
    ctl = _bin("pg_ctl")
    log = workdir / "postgres.log"
    if os.getuid() == 0:
        log.touch()
        shutil.chown(log, user="postgres")
    subprocess.run(
        _as_postgres([ctl, "-D", str(data), "-o", options, "-l", str(log), "-w", "start"]),
        check=True,
        capture_output=True,
    )
    try:
        psql = [_bin("psql"), "-h", "127.0.0.1", "-p", str(port), "-U", user, "-d", "postgres", "-q"]

        def answers() -> bool:
            return subprocess.run([*psql, "-c", "select 1"], capture_output=True).returncode == 0

        wait_until(answers, "PostgreSQL", timeout=60, interval=0.3)
        subprocess.run([*psql, "-c", f"create database {database}"], check=True, capture_output=True)
        yield f"postgresql+asyncpg://{user}@127.0.0.1:{port}/{database}"
    finally:
        subprocess.run(_as_postgres([ctl, "-D", str(data), "-m", "fast", "-w", "stop"]), capture_output=True)
        shutil.rmtree(workdir, ignore_errors=True)
