"""Data-safety flows that also run on their own: nightly checks, an on-demand backup, a restore."""

from __future__ import annotations

from typing import Any

from prefect import flow

from rollout.analysis.check_result import CheckResult
from rollout.data.backup import BackupResult
from rollout.data.restore import RestoreResult
from rollout.data.restore_check import VerificationResult
from rollout.plan import load_plan
from rollout.plan.model import Targets
from rollout.targets import resolve_targets
from tasks.data import (
    backup_data,
    check_archive,
    database_lock,
    restore_data,
    run_data_checks,
    verify_restore,
)


@flow(name="data-checks")
def checks_flow(plan_path: str, targets: Targets | None = None) -> list[CheckResult]:
    """Run the plan's data checks and return every result (a failing check does not fail the run)."""
    plan = load_plan(plan_path)
    return run_data_checks(resolve_targets(plan, targets), plan.name, plan.preflight)


@flow(name="backup")
def backup_flow(plan_path: str, targets: Targets | None = None) -> BackupResult:
    """Take a backup as the plan describes it, verified and with its manifest."""
    plan = load_plan(plan_path)
    return backup_data(resolve_targets(plan, targets), plan, "manual")


@flow(name="restore")
def restore_flow(
    plan_path: str,
    backup_uri: str,
    collections: list[str] | None = None,
    into: str | None = None,
    document_filter: dict[str, Any] | None = None,
    targets: Targets | None = None,
) -> RestoreResult:
    """Restore a backup of the plan's database, all of it or some collections, in place or into ``into``."""
    plan = load_plan(plan_path)
    resolved = resolve_targets(plan, targets)
    check_archive(resolved, backup_uri)  # before the lock: a refused restore writes nowhere
    with database_lock(resolved, f"restore of {backup_uri}", into):
        return restore_data(
            resolved, backup_uri, into=into, collections=collections, document_filter=document_filter
        )


@flow(name="verify-backup")
def verify_flow(plan_path: str, backup_uri: str, targets: Targets | None = None) -> VerificationResult:
    """Restore a backup into a scratch database and compare collection digests; the source is untouched."""
    plan = load_plan(plan_path)
    return verify_restore(resolve_targets(plan, targets), backup_uri)
