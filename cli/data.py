"""Data-safety commands: the plan's data checks, a verified backup, a restore."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_ROLLED_BACK,
    Subcommands,
    prefect_defaults,
)
from rollout.errors import InputRejected

if TYPE_CHECKING:
    pass


def cmd_checks(args: argparse.Namespace) -> int:
    """Run the plan's data checks and print their table; exit 3 if any failed."""
    prefect_defaults()
    from flows.data import checks_flow
    from rollout.plan import load_plan
    from rollout.reporting.result_text import checks_table

    load_plan(args.plan)
    results = checks_flow(plan_path=str(args.plan))
    print(checks_table(results).to_string(index=False) if results else "the plan has no data checks")
    return EXIT_OK if all(r.passed for r in results) else EXIT_ROLLED_BACK


def cmd_backup(args: argparse.Namespace) -> int:
    """Take the plan's backup; print a summary on stderr and the backup's URI on stdout."""
    prefect_defaults()
    from flows.data import backup_flow
    from rollout.plan import load_plan

    load_plan(args.plan)
    result = backup_flow(plan_path=str(args.plan))
    manifest = result.manifest
    for name, entry in manifest.collections.items():
        print(f"{name}: {entry.count} documents, sha256 {entry.sha256[:16]}", file=sys.stderr)
    print(f"archive {manifest.archive.bytes} bytes, sha256 {manifest.archive.sha256}", file=sys.stderr)
    print(result.uri)
    return EXIT_OK


def _filter(text: str | None) -> dict[str, object] | None:
    if text is None:
        return None
    from bson import json_util

    try:
        value = json_util.loads(text)
    except ValueError as error:
        raise InputRejected(f'--filter: not JSON ({error}); write e.g. \'{{"source": "web"}}\'') from error
    if not isinstance(value, dict):
        raise InputRejected('--filter: a MongoDB filter is a JSON object, e.g. \'{"source": "web"}\'')
    return value


def cmd_restore(args: argparse.Namespace) -> int:
    """Restore a backup (all, some collections, or some documents); --verify only proves it restores."""
    prefect_defaults()
    from flows.data import restore_flow, verify_flow
    from rollout.plan import load_plan

    load_plan(args.plan)
    collections = [c.strip() for c in args.collections.split(",") if c.strip()] if args.collections else None
    document_filter = _filter(args.filter)
    if document_filter is not None and not collections:
        raise InputRejected("--filter needs --collections: name the collections to filter")
    if args.verify:
        verified = verify_flow(plan_path=str(args.plan), backup_uri=args.backup)
        for check in verified.collections:
            print(
                f"{check.name}: {check.restored}/{check.archived} documents, "
                f"{'matches' if check.matches_manifest else 'DIFFERS from'} the manifest, "
                f"source {'unchanged' if check.source_unchanged else 'changed'} since the backup"
            )
        return EXIT_OK if verified.ok else EXIT_FAILED
    result = restore_flow(
        plan_path=str(args.plan),
        backup_uri=args.backup,
        collections=collections,
        into=args.into,
        document_filter=document_filter,
    )
    for c in result.collections:
        print(f"{result.database}.{c.name}: {c.restored}/{c.archived} documents {c.how}, {c.indexes} indexes")
    return EXIT_OK if result.ok else EXIT_FAILED


def register(sub: Subcommands) -> None:
    """Add this module's subcommands."""
    checks = sub.add_parser("checks", help="run the plan's data checks")
    checks.add_argument("plan", type=Path)
    checks.set_defaults(run=cmd_checks)

    backup = sub.add_parser("backup", help="back up the plan's database to S3; prints the backup's URI")
    backup.add_argument("plan", type=Path)
    backup.set_defaults(run=cmd_backup)

    restore = sub.add_parser("restore", help="restore a backup after checking it against its manifest")
    restore.add_argument("plan", type=Path)
    restore.add_argument("--backup", required=True, metavar="URI", help="s3://bucket/prefix/backup-.../")
    restore.add_argument("--collections", metavar="A,B", help="restore only these collections")
    restore.add_argument("--filter", metavar="JSON", help="with --collections: only documents matching this")
    restore.add_argument("--into", metavar="DB", help="restore into this database instead of the original")
    restore.add_argument(
        "--verify", action="store_true", help="restore into a scratch database and compare digests only"
    )
    restore.set_defaults(run=cmd_restore)
