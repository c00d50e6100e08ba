"""Prefect flows: the order of phases, windows, approvals and compensation."""

from flows.quiet import quiet_task_completions

quiet_task_completions()
