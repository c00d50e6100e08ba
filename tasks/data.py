"""Data-safety tasks: preflight checks, the backup before any change, restores."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from rollout.adapters.clients import Clients
from rollout.adapters.locks import LOCKS, MongoLock, holder_name
from rollout.adapters.s3 import S3Location
from rollout.analysis.check_result import CheckResult
from rollout.data.backup import BackupRequest, BackupResult, prune_backups, take_backup
from rollout.data.check_runner import run_check, validate_checks
from rollout.data.checks import plan_checks
from rollout.data.manifest import BackupKind
from rollout.data.restore import RestoreResult, parse_backup_uri, restore_backup, verify_archive
from rollout.data.restore_check import VerificationResult, verify_by_restore
from rollout.errors import PermanentError
from rollout.plan import Plan
from rollout.plan.model import Preflight, Targets
from rollout.redact import redact
from rollout.reporting.result_text import checks_table
from tasks.progress import RunProgress
from tasks.retries import TRANSIENT_RETRIES
from tasks.secrets import prefect_resolver

DATA_LOCK_WAIT = timedelta(minutes=30)
"""How long a restore waits for another one into the same database to finish."""


@contextmanager
def database_lock(targets: Targets, what: str, database: str | None = None) -> Iterator[None]:
    """Hold the data lock of the plan's database (or ``database``) for the block.

    Restores into one database go one at a time, whichever plan or process makes
    them: two at once would drop and refill the same collections under each other.
    The lock is kept beside the rollout records (the flag store's database), keyed by the
    database it guards: never written into a database a restore is about to fill, which a
    refused restore must leave exactly as it was.
    """
    name = database or targets.mongodb.database
    with Clients(targets, prefect_resolver) as clients:
        lock = MongoLock(clients.flag_db[LOCKS], f"data of {name}", holder_name(what))
        held = lock.current()
        if held is not None:
            get_run_logger().info("waiting for %s, held by %s", lock.name, held.get("holder"))
        with lock.held(DATA_LOCK_WAIT):
            yield


def _artifact_key(*parts: str) -> str:
    return "-".join(parts).lower().replace("_", "-")


@task(name="data-checks", cache_policy=NO_CACHE, **TRANSIENT_RETRIES)
def run_data_checks(targets: Targets, plan_name: str, preflight: Preflight) -> list[CheckResult]:
    """Validate every check, then run them all on the server; the results as a table artifact."""
    logger = get_run_logger()
    specs = plan_checks(preflight)
    if not specs:
        logger.info("the plan has no data checks")
        return []
    with Clients(targets, prefect_resolver) as clients:
        validate_checks(clients.db, specs)
        results = [run_check(clients.db, spec) for spec in specs]
    table = checks_table(results)
    failing = [r.name for r in results if not r.passed]
    summary = f"{len(results) - len(failing)} of {len(results)} passed"
    logger.log(
        logging.ERROR if failing else logging.INFO,
        "data checks: %s%s (table in the run's artifacts)",
        summary,
        f"; failing: {', '.join(failing)}" if failing else "",
    )
    create_table_artifact(
        table.astype(str).to_dict(orient="records"),
        key=_artifact_key(plan_name, "data-checks"),
        description=f"Data checks of {plan_name}: {summary}",
    )
    return results


def _backup_markdown(result: BackupResult, verification: VerificationResult | None) -> str:
    manifest = result.manifest
    lines = [
        f"# Backup {manifest.name}",
        "",
        f"- location: `{result.uri}`",
        f"- kind: {manifest.kind}, release {manifest.release}, plan {manifest.plan}",
        f"- source: {', '.join(manifest.source.hosts)} / {manifest.source.database}",
        f"- archive: {manifest.archive.bytes} bytes, sha256 `{manifest.archive.sha256}`",
        f"- encryption: {manifest.encryption or 'none'}; kept until {manifest.retain_until:%Y-%m-%d}",
        "",
        "| collection | documents | bytes | indexes | sha256 |",
        "|---|---:|---:|---:|---|",
    ]
    lines += [
        f"| {name} | {c.count} | {c.bytes} | {c.indexes} | `{c.sha256[:16]}…` |"
        for name, c in manifest.collections.items()
    ]
    if verification is not None:
        lines += ["", f"Restored into `{verification.scratch_database}` and compared:", ""]
        lines += [
            f"- {c.name}: {'matches' if c.matches_manifest else 'DIFFERS from'} the manifest"
            for c in verification.collections
        ]
    return redact("\n".join(lines))


@task(name="keep-backup", cache_policy=NO_CACHE, **TRANSIENT_RETRIES)
def keep_backup(targets: Targets, plan: str, uri: str) -> None:
    """Name the pre-rollout backup in the rollout's record (a resumed rollout keeps the first)."""
    with Clients(targets, prefect_resolver) as clients:
        clients.runs.keep_backup(plan, uri)


@task(name="backup", cache_policy=NO_CACHE, **TRANSIENT_RETRIES)
def backup_data(targets: Targets, plan: Plan, kind: BackupKind = "pre-rollout") -> BackupResult:
    """Take the plan's backup, verify it as the plan says, then apply retention."""
    logger = get_run_logger()
    settings = plan.backup
    with Clients(targets, prefect_resolver) as clients:
        bucket = clients.bucket
        prefix = targets.s3.prefix if targets.s3 else ""
        request = BackupRequest(
            plan=plan.name,
            release=plan.release.version,
            kind=kind,
            database=targets.mongodb.database,
            prefix=prefix,
            collections=tuple(settings.collections) if settings.collections else None,
            retention_days=settings.retention_days,
            hosts=clients.mongo_hosts,
        )
        result = take_backup(
            clients.mongo,
            bucket,
            request,
            now=lambda: datetime.now(UTC),
            progress=RunProgress(f"{kind} backup"),
        )
        verify_archive(bucket, result.location)
        verification = None
        if settings.verify == "restore":
            verification = _verify(clients, result.location)
            if not verification.ok:
                wrong = [c.name for c in verification.collections if not c.matches_manifest]
                raise PermanentError(
                    f"backup {result.uri} did not restore to its manifest: {', '.join(wrong)}"
                )
        for folder in prune_backups(bucket, prefix, now=datetime.now(UTC), keep=result.manifest.name):
            logger.info("retention: deleted %s", bucket.location(folder))
    logger.info(
        "%s backup %s: %d documents in %d collections, archive verified",
        kind,
        result.uri,
        result.manifest.documents,
        len(result.manifest.collections),
    )
    create_markdown_artifact(
        _backup_markdown(result, verification),
        key=_artifact_key(plan.name, kind, "backup"),
        description=f"{kind} backup {result.uri}",
    )
    return result


@task(name="restore", cache_policy=NO_CACHE, **TRANSIENT_RETRIES)
def restore_data(
    targets: Targets,
    backup_uri: str,
    *,
    into: str | None = None,
    collections: list[str] | None = None,
    document_filter: dict[str, Any] | None = None,
) -> RestoreResult:
    """Verify the backup at ``backup_uri`` against its manifest, then restore it."""
    logger = get_run_logger()
    location = parse_backup_uri(backup_uri)
    with Clients(targets, prefect_resolver) as clients:
        bucket = clients.bucket
        if location.bucket != bucket.name:
            raise PermanentError(
                f"{backup_uri} is in bucket {location.bucket}, but the plan's bucket is {bucket.name}: "
                "restore from the plan's own backups"
            )
        result = restore_backup(
            clients.mongo,
            bucket,
            location,
            into=into,
            collections=collections,
            document_filter=document_filter,
            progress=RunProgress(f"restore of {backup_uri}"),
        )
    for c in result.collections:
        logger.info(
            "restored %s.%s: %d of %d documents %s, %d indexes",
            result.database,
            c.name,
            c.restored,
            c.archived,
            c.how,
            c.indexes,
        )
    return result


@task(
    name="check-archive",
    task_run_name="check archive {backup_uri}",
    cache_policy=NO_CACHE,
    **TRANSIENT_RETRIES,
)
def check_archive(targets: Targets, backup_uri: str) -> None:
    """Read the backup's whole archive against its manifest before anything is locked or written.

    A changed or missing archive is refused here (BackupUnusable), so a refused restore touches
    no database at all; the restore reads it again as it loads it, so a change in between is caught.
    """
    location = parse_backup_uri(backup_uri)
    with Clients(targets, prefect_resolver) as clients:
        verify_archive(clients.bucket, location)


def _verify(clients: Clients, backup: S3Location) -> VerificationResult:
    return verify_by_restore(
        clients.mongo,
        clients.bucket,
        backup,
        scratch=f"{clients.targets.mongodb.database}_rollout_verify",
        progress=RunProgress("verification restore"),
    )


@task(name="verify-backup", cache_policy=NO_CACHE, **TRANSIENT_RETRIES)
def verify_restore(targets: Targets, backup_uri: str) -> VerificationResult:
    """Restore ``backup_uri`` into a scratch database; compare digests with the manifest and the source."""
    with Clients(targets, prefect_resolver) as clients:
        result = _verify(clients, parse_backup_uri(backup_uri))
    for check in result.collections:
        get_run_logger().info(
            "%s: %d/%d documents, %s the manifest",
            check.name,
            check.restored,
            check.archived,
            "matches" if check.matches_manifest else "DIFFERS from",
        )
    return result
