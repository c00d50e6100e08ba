"""A throwaway PostgreSQL server (Debian's), for a Prefect server that must take concurrent writes."""

import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rollout.sandbox.postgres import database_user, init_cluster, psql, server_argv
from rollout.sandbox.processes import free_port, wait_until


@contextmanager
def postgres_server(database: str = "prefect") -> Iterator[str]:
    """Start PostgreSQL on a free port with one database (``prefect``); yields its SQLAlchemy URL.

    Its files live in a folder of its own under /tmp, which the postgres user can reach
    (pytest's folders are private to the user running the tests).
    """
    workdir = Path(tempfile.mkdtemp(prefix="rollout-postgres-"))
    workdir.chmod(0o755)
    data, sockets = init_cluster(workdir)
    port = free_port()
    log = workdir / "postgres.log"
    with log.open("ab") as out:
        server = subprocess.Popen(
            server_argv(data, sockets, port), stdout=out, stderr=out, start_new_session=True
        )
    try:
        wait_until(lambda: psql(port, "select 1"), "PostgreSQL", timeout=60, interval=0.3)
        if not psql(port, f"create database {database}"):
            raise RuntimeError(f"could not create database {database}")
        yield f"postgresql+asyncpg://{database_user()}@127.0.0.1:{port}/{database}"
    finally:
        # SIGINT is PostgreSQL's fast shutdown: clients still connected are disconnected.
        os.killpg(server.pid, signal.SIGINT)
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        shutil.rmtree(workdir, ignore_errors=True)
