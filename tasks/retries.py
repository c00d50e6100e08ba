"""The retry policy shared by tasks: transient errors are retried with backoff, others never."""

from __future__ import annotations

from typing import Any

from prefect.client.schemas.objects import State, TaskRun

from rollout.errors import is_transient

BACKOFF_SECONDS = [1.0, 2.0, 4.0]


def retry_transient(task: Any, task_run: TaskRun, state: State[Any]) -> bool:
    """``retry_condition_fn`` for Prefect: retry only a :class:`TransientError`."""
    error = state.data if isinstance(state.data, BaseException) else None
    if error is None:
        try:
            error = state.result(raise_on_failure=False)
        except Exception as exc:
            error = exc
    return isinstance(error, BaseException) and is_transient(error)


TRANSIENT_RETRIES: dict[str, Any] = {
    "retries": len(BACKOFF_SECONDS),
    "retry_delay_seconds": BACKOFF_SECONDS,
    "retry_jitter_factor": 0.2,
    "retry_condition_fn": retry_transient,
}
"""Keyword arguments for ``@task`` that retry transient failures three times, 1-2-4 s apart."""
