"""Progress of long data work shown in the Prefect UI and the run's log."""

from __future__ import annotations

import time
from collections.abc import Callable
from uuid import UUID

from prefect import get_run_logger
from prefect.artifacts import create_progress_artifact, update_progress_artifact

LOG_EVERY_SECONDS = 10.0
ARTIFACT_EVERY_SECONDS = 1.0


class RunProgress:
    """A :data:`rollout.data.progress.Progress` that updates a progress artifact and logs now and then."""

    def __init__(self, what: str, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._what = what
        self._monotonic = monotonic
        self._artifact: UUID | None = None
        self._last_log = self._last_artifact = float("-inf")
        self._logger = get_run_logger()

    def __call__(self, done: int, total: int) -> None:
        """Report ``done`` of ``total`` documents."""
        now = self._monotonic()
        percent = 100.0 * done / total if total else 100.0
        finished = done >= total
        if self._artifact is None:
            artifact = create_progress_artifact(percent, description=self._what)
            # Called from synchronous code, Prefect's sync-compatible helper returns the id itself.
            assert isinstance(artifact, UUID)
            self._artifact = artifact
            self._last_artifact = now
        elif finished or now - self._last_artifact >= ARTIFACT_EVERY_SECONDS:
            update_progress_artifact(self._artifact, percent)
            self._last_artifact = now
        if finished or now - self._last_log >= LOG_EVERY_SECONDS:
            self._logger.info("%s: %d / %d documents (%.0f %%)", self._what, done, total, percent)
            self._last_log = now
