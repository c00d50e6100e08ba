"""Resolving ``${secret:...}`` references from Prefect Secret blocks."""

from __future__ import annotations

from prefect.blocks.system import Secret

from rollout.errors import SecretUnavailable
from rollout.plan.secrets import env_resolver


def prefect_resolver(kind: str, name: str) -> str:
    """Resolve ``${env:NAME}`` from the environment and ``${secret:NAME}`` from a Secret block."""
    if kind == "env":
        return env_resolver(kind, name)
    try:
        value = Secret.load(name).get()  # type: ignore[union-attr]
    except ValueError as error:
        raise SecretUnavailable(
            f"Prefect Secret block '{name}' was not found; create it with "
            f"`prefect block create secret` or in the UI"
        ) from error
    return str(value)
