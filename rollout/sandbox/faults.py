"""Breaking the sandbox's candidate on cue, to show a rollback."""

from __future__ import annotations

import threading

import httpx

from rollout.adapters.clients import Clients
from rollout.errors import RolloutError
from rollout.sandbox.stack import SandboxInfo


class FaultAtPercentage:
    """Watches the flag wherever it lives; once it admits ``percentage`` % of users, the candidate fails."""

    def __init__(self, info: SandboxInfo, percentage: float, error_rate: float = 0.5) -> None:
        self._info, self._percentage, self._error_rate = info, percentage, error_rate
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fault-at", daemon=True)
        self.injected = threading.Event()

    def start(self) -> None:
        """Begin watching."""
        self._thread.start()

    def stop(self) -> None:
        """Stop watching."""
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        clients = Clients(self._info.targets())
        flags = clients.flags
        try:
            while not self._stop.wait(0.1):
                try:
                    state = flags.get(self._info.flag)
                except RolloutError:
                    continue
                if state.enabled and state.percentage >= self._percentage:
                    httpx.put(
                        f"{self._info.service_url}/fault",
                        json={"variant": "candidate", "error_rate": self._error_rate},
                    )
                    self.injected.set()
                    return
        finally:
            clients.close()
