"""Prefect flows: the order of phases, windows, approvals and compensation."""
