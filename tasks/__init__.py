"""Prefect tasks: one concern each, with retries and timeouts declared here."""
