"""Prefect flows: the order of phases, windows, approvals and compensation."""

from flows.logs import forward_adapter_logs, quiet_task_completions

quiet_task_completions()
forward_adapter_logs()
