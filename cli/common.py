"""What every command shares: exit codes, Prefect's defaults, the sandbox's flag choice."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any, TypeAlias

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_ROLLED_BACK = 0, 1, 2, 3
FLAGS_OPTION: dict[str, Any] = {
    "choices": ["mongodb", "unleash", "flagd"],
    "default": "mongodb",
    "help": "where the flags live: MongoDB documents, a real Unleash server (on PostgreSQL), or a "
    "flagd file; the orders service reads them through the matching SDK",
}
DEMO_PLAN = Path(__file__).resolve().parent.parent / "deployments" / "plans" / "sandbox-demo.yaml"
Subcommands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
"""What each command module registers its subcommands on."""


def prefect_defaults() -> None:
    """Settings for a self-contained Prefect: no telemetry, time for first-start migrations."""
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")


def exit_code(result: Any) -> int:
    """The exit code of a rollout's result: 0 promoted, 3 rolled back or blocked, 1 otherwise."""
    if result.rollback is not None and result.rollback.outcome == "incomplete":
        return EXIT_FAILED  # a rollback that left something undone is not "rolled back as designed"
    if result.status == "dry_run":
        return EXIT_OK if all(c.passed for c in result.checks) else EXIT_ROLLED_BACK
    codes = {"promoted": EXIT_OK, "rolled_back": EXIT_ROLLED_BACK, "blocked": EXIT_ROLLED_BACK}
    return codes.get(result.status, EXIT_FAILED)
