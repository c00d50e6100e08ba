"""What reaches a run's log: our adapters' warnings, and not Prefect's lines that say nothing."""

from __future__ import annotations

import logging

SAID_BY_THE_UI = "Finished in state Completed()"
ADAPTERS = "rollout"
"""The logger our adapters warn through (``rollout.kubernetes``...), outside any Prefect import."""


class _DropCompletions(logging.Filter):
    """Drops Prefect's ``Finished in state Completed()`` line of each task run; failures stay."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != SAID_BY_THE_UI


def quiet_task_completions() -> None:
    """Stop every task run logging that it completed (once, however often called)."""
    logger = logging.getLogger("prefect.task_runs")
    if not any(isinstance(f, _DropCompletions) for f in logger.filters):
        logger.addFilter(_DropCompletions())


class _InRuns(logging.Handler):
    """Passes records to Prefect's API handler only inside a flow or task run, where they have a home."""

    def __init__(self, api: logging.Handler) -> None:
        super().__init__()
        self.api = api

    def emit(self, record: logging.LogRecord) -> None:
        from prefect.context import FlowRunContext, TaskRunContext

        if FlowRunContext.get() is not None or TaskRunContext.get() is not None:
            self.api.handle(record)


def forward_adapter_logs() -> None:
    """Send the adapters' log records where Prefect sends its own: the console and the run's log.

    This is what Prefect's ``PREFECT_LOGGING_EXTRA_LOGGERS`` does; done here, a warning such as
    an unverified TLS connection reaches the run's log without any setting. Outside a run (the
    CLI) the records go to the console only.
    """
    from prefect.logging.configuration import setup_logging
    from prefect.logging.loggers import get_logger

    extra = get_logger("prefect.extra")
    if not extra.handlers:
        setup_logging()
    ours = logging.getLogger(ADAPTERS)
    if not any(isinstance(h, _InRuns) for h in ours.handlers):
        for handler in extra.handlers:
            ours.addHandler(_InRuns(handler))
    ours.setLevel(logging.INFO)
