"""Each stand-in server alone, for tests that need one system and not the whole sandbox."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from rollout.sandbox.mongodb import start_mongodb
from rollout.sandbox.processes import free_port, spawn, wait_until


@contextmanager
def lone_mongodb(workdir: Path) -> Iterator[str]:
    """A SecantusDB of its own on a free port, empty; yields its connection string."""
    record, uri = start_mongodb(free_port(), workdir)
    try:
        yield uri
    finally:
        record.stop()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code < 500
    except httpx.HTTPError:
        return False


@contextmanager
def lone_s3(workdir: Path) -> Iterator[str]:
    """moto's S3 server of its own on a free port, with no bucket; yields its endpoint."""
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "rollout.sandbox.s3server",
        "--port",
        str(port),
        "--state-dir",
        str(workdir),
    ]
    record = spawn("s3", argv, workdir, marker=str(workdir))
    endpoint = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _answers(endpoint + "/"), "S3 (moto)", timeout=60, still_alive=record.alive)
        yield endpoint
    finally:
        record.stop()
