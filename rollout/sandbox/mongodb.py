"""SecantusDB, the MongoDB stand-in, as a child process."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rollout.adapters.mongo import connect
from rollout.sandbox.processes import ProcessRecord, spawn, wait_until

HOST = "127.0.0.1"


def secantus_argv(port: int, storage: Path) -> list[str]:
    """The command line of a SecantusDB on ``port`` keeping its data in ``storage``."""
    return [
        sys.executable,
        "-m",
        "secantus",
        "--host",
        HOST,
        "--port",
        str(port),
        "--storage-path",
        str(storage),
        "--log-level",
        "WARNING",
    ]


def mongodb_uri(port: int) -> str:
    """The connection string of the SecantusDB on ``port``."""
    return f"mongodb://{HOST}:{port}/?directConnection=true"


def answers(client: Any) -> Callable[[], bool]:
    """A check that is true once ``client``'s server answers a ping."""

    def check() -> bool:
        try:
            client.admin.command("ping")
            return True
        except Exception:
            return False

    return check


def start_mongodb(port: int, workdir: Path, *, timeout: float = 60) -> tuple[ProcessRecord, str]:
    """Start a SecantusDB with data under ``workdir``, wait until it answers; returns it and its URI."""
    storage = workdir / "mongodb"
    record = spawn("mongodb", secantus_argv(port, storage), workdir, marker=str(storage))
    uri = mongodb_uri(port)
    client = connect(uri, timeout_ms=500)
    try:
        wait_until(answers(client), "MongoDB (SecantusDB)", timeout=timeout, still_alive=record.alive)
    finally:
        client.close()
    return record, uri
