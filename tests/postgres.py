"""A throwaway PostgreSQL server (Debian's), for a Prefect server that must take concurrent writes."""

import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from rollout.sandbox.postgres import database_user, init_cluster, psql, server_argv
from rollout.sandbox.processes import free_port, wait_until


@dataclass
class Postgres:
    """One PostgreSQL cluster on a port of its own, which a drill may stop and start again."""

    data: Path
    sockets: Path
    port: int
    log: Path
    database: str
    server: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The SQLAlchemy URL of its database."""
        return f"postgresql+asyncpg://{database_user()}@127.0.0.1:{self.port}/{self.database}"

    def start(self) -> None:
        """Start the server (again, after :meth:`stop`: its data kept) and wait until it answers."""
        with self.log.open("ab") as out:
            self.server = subprocess.Popen(
                server_argv(self.data, self.sockets, self.port),
                stdout=out,
                stderr=out,
                start_new_session=True,
            )
        wait_until(lambda: psql(self.port, "select 1"), "PostgreSQL", timeout=60, interval=0.3)

    def stop(self) -> None:
        """Stop the server at once (SIGINT, PostgreSQL's fast shutdown: clients are disconnected)."""
        if self.server is None:
            return
        os.killpg(self.server.pid, signal.SIGINT)
        try:
            self.server.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.server.pid, signal.SIGKILL)
            self.server.wait()
        self.server = None


@contextmanager
def postgres_cluster(database: str = "prefect") -> Iterator[Postgres]:
    """Start PostgreSQL on a free port with one database (``prefect``).

    Its files live in a folder of its own under /tmp, which the postgres user can reach
    (pytest's folders are private to the user running the tests).
    """
    workdir = Path(tempfile.mkdtemp(prefix="rollout-postgres-"))
    workdir.chmod(0o755)
    data, sockets = init_cluster(workdir)
    cluster = Postgres(data, sockets, free_port(), workdir / "postgres.log", database)
    try:
        cluster.start()
        if not psql(cluster.port, f"create database {database}"):
            raise RuntimeError(f"could not create database {database}")
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@contextmanager
def postgres_server(database: str = "prefect") -> Iterator[str]:
    """:func:`postgres_cluster`, for those who need only its SQLAlchemy URL."""
    with postgres_cluster(database) as cluster:
        yield cluster.url
