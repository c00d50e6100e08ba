"""Starting, watching and stopping the sandbox's server processes."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from rollout.errors import PortInUse, SandboxError

HOST = "127.0.0.1"


def free_port() -> int:
    """Ask the kernel for a port nobody listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def ensure_port_free(port: int, purpose: str) -> None:
    """Fail with a message naming ``port`` and ``purpose`` if something already listens there."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            raise PortInUse(
                f"port {port} on {HOST}, wanted for {purpose}, is already in use: stop what "
                f"listens there or choose another port (--{purpose}-port)"
            ) from None


def wait_until(
    check: Callable[[], bool],
    what: str,
    *,
    timeout: float,
    interval: float = 0.1,
    still_alive: Callable[[], bool] = lambda: True,
) -> None:
    """Poll ``check`` until it is true; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if not still_alive():
            raise SandboxError(f"{what}: the process exited while starting")
        time.sleep(interval)
    raise SandboxError(f"{what}: not ready after {timeout:.0f} s")


@dataclass(frozen=True)
class ProcessRecord:
    """What is needed to find a started process again, even from another command."""

    name: str
    pid: int
    log: str
    marker: str

    def alive(self) -> bool:
        """Whether this very process (not a later one reusing its pid) still runs."""
        try:
            cmdline = Path(f"/proc/{self.pid}/cmdline").read_bytes()
        except OSError:
            return False
        status = Path(f"/proc/{self.pid}/stat").read_text().split()
        return self.marker.encode() in cmdline and status[2] != "Z"

    def stop(self, grace: float = 5.0) -> None:
        """Stop the process group: SIGTERM, then SIGKILL after ``grace`` seconds."""
        if not self.alive():
            return
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 2.0)):
            try:
                os.killpg(self.pid, sig)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                _reap(self.pid)
                if not self.alive():
                    return
                time.sleep(0.05)


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def spawn(
    name: str, argv: Sequence[str], state_dir: Path, *, marker: str, env: Mapping[str, str] | None = None
) -> ProcessRecord:
    """Start ``argv`` in its own session, logging to ``state_dir/<name>.log``, with ``env`` added.

    ``marker`` must appear in ``argv``; it is how :meth:`ProcessRecord.alive`
    tells this process from an unrelated one that later got the same pid.
    """
    if not any(marker in arg for arg in argv):
        raise ValueError(f"marker {marker!r} must appear in the command line")
    log = state_dir / f"{name}.log"
    with log.open("ab") as out:
        try:
            process = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=state_dir,
                env={**os.environ, **env} if env else None,
            )
        except FileNotFoundError as error:
            raise SandboxError(f"{name}: cannot start {argv[0]}: {error}") from error
    return ProcessRecord(name=name, pid=process.pid, log=str(log), marker=marker)
