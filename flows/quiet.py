"""Fewer lines that say nothing: a task run that completed says so in the UI, not once more in the log."""

from __future__ import annotations

import logging

SAID_BY_THE_UI = "Finished in state Completed()"


class _DropCompletions(logging.Filter):
    """Drops Prefect's ``Finished in state Completed()`` line of each task run; failures stay."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != SAID_BY_THE_UI


def quiet_task_completions() -> None:
    """Stop every task run logging that it completed (once, however often called)."""
    logger = logging.getLogger("prefect.task_runs")
    if not any(isinstance(f, _DropCompletions) for f in logger.filters):
        logger.addFilter(_DropCompletions())
