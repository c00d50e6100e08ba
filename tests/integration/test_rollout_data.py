"""The rollout protects the data: checks before any change, a verified backup, a restore on rollback."""

from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient

from flows.rollback import run_rollback
from flows.rollout_flow import run_rollout
from rollout.adapters.clients import Clients
from rollout.adapters.flags import FlagStore
from rollout.audience.flag_state import FlagChange
from rollout.data.manifest import Manifest
from rollout.data.restore import parse_backup_uri, read_manifest
from rollout.sandbox.stack import SandboxInfo
from tests.plans import PlanFiles

pytestmark = pytest.mark.integration

PLAN = """
name: data-test
release: {{version: v3}}
flag: USE_UNIFIED_ORDERS
preflight:
  custom:
    - name: hub size
      collection: order_hub
      pipeline: [{{$count: count}}]
      expect: {{max: {max_hub}}}
gates:
  errors: {{sli: error_ratio, max: 0.05, rate_window: 5s}}
phases:
  - name: everyone
    ramp: [100]
    window: {{interval: 1s, count: 2, initial_delay: 3s, decision_timeout: 5s, gates: [errors]}}
rollback:
  restore: {{mode: selective, collections: [order_hub]}}
  watch: {{interval: 1s, duration: 2s}}
"""


@pytest.fixture()
def clients(sandbox: SandboxInfo) -> Any:
    with Clients(sandbox.targets()) as opened:
        yield opened


@pytest.fixture()
def main_flag(sandbox: SandboxInfo) -> Any:
    client: MongoClient[dict[str, Any]] = MongoClient(sandbox.mongodb_uri)
    store = FlagStore(client.shop.feature_flags)
    off = FlagChange(enabled=False, percentage=0, users=(), stores=())
    store.set("USE_UNIFIED_ORDERS", off)
    yield store
    store.set("USE_UNIFIED_ORDERS", off)
    client.close()


def data_plan(plan_file: PlanFiles, max_hub: int = 100000) -> str:
    """:data:`PLAN` whose data check allows at most ``max_hub`` hub orders."""
    return str(plan_file.text(PLAN.format(max_hub=max_hub)))


def backups(clients: Clients) -> list[str]:
    return clients.bucket.folders("backups/")


def test_a_failing_data_check_blocks_the_rollout_before_any_change(
    prefect_api: None,
    sandbox: SandboxInfo,
    clients: Clients,
    main_flag: FlagStore,
    plan_file: PlanFiles,
) -> None:
    before_flag, before_backups = main_flag.get("USE_UNIFIED_ORDERS"), backups(clients)
    result = run_rollout(plan_path=data_plan(plan_file, max_hub=10), targets=sandbox.targets())
    assert result.status == "blocked"
    assert [(c.name, c.passed, c.detail) for c in result.checks] == [
        ("hub size", False, "count = 1200 (expected <= 10)")
    ]
    assert result.steps == () and result.backup is None
    assert main_flag.get("USE_UNIFIED_ORDERS").version == before_flag.version
    assert backups(clients) == before_backups


def test_the_rollout_takes_a_verified_backup_and_records_it_before_traffic_moves(
    prefect_api: None,
    sandbox: SandboxInfo,
    clients: Clients,
    main_flag: FlagStore,
    plan_file: PlanFiles,
) -> None:
    result = run_rollout(plan_path=data_plan(plan_file), targets=sandbox.targets())
    assert result.status == "promoted"
    assert result.backup is not None
    stored = read_manifest(clients.bucket, parse_backup_uri(result.backup.uri))
    assert stored == result.backup.manifest
    assert stored.kind == "pre-rollout" and stored.release == "v3"
    assert stored.collections["order_hub"].count == 1200
    record = clients.runs.get("data-test")
    assert record is not None and record.backup == result.backup.uri
    assert clients.releases.stable("data-test") == "v3"  # promoted: now the release to roll back to
    artifacts = artifacts_of(record.run_id)
    assert {"data-test-data-checks", "data-test-pre-rollout-backup"} <= {a.key for a in artifacts}
    progress = [a for a in artifacts if a.type == "progress"]
    assert progress and all(a.data == 100.0 for a in progress)
    markdown = next(a for a in artifacts if a.key == "data-test-pre-rollout-backup")
    assert result.backup.manifest.archive.sha256 in str(markdown.data)


def artifacts_of(run_id: str) -> list[Any]:
    from uuid import UUID

    from prefect import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        FlowRunFilter,
        TaskRunFilter,
    )
    from prefect.client.schemas.sorting import ArtifactSort

    with get_client(sync_client=True) as client:
        # The sync client sends None for whatever is left out, which the server refuses.
        return client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[UUID(run_id)])),
            flow_run_filter=FlowRunFilter(),
            task_run_filter=TaskRunFilter(),
            sort=ArtifactSort.CREATED_DESC,
            limit=100,
            offset=0,
        )


def test_rollback_backs_up_the_current_state_then_restores_the_data(
    prefect_api: None,
    sandbox: SandboxInfo,
    clients: Clients,
    main_flag: FlagStore,
    plan_file: PlanFiles,
) -> None:
    plan = data_plan(plan_file)
    assert run_rollout(plan_path=plan, targets=sandbox.targets()).status == "promoted"
    removed = list(clients.db.order_hub.find({"source": "web"}))
    clients.db.order_hub.delete_many({"source": "web"})  # what a bad release might do
    try:
        # Promoted: forced, and the restore named, or no data would be touched.
        result = run_rollback(
            plan_path=plan,
            reason="orders went missing",
            targets=sandbox.targets(),
            force=True,
            restore="selective",
        )
        assert result.ok, result.steps
        names = [s.name for s in result.steps]
        assert names == [
            "flag USE_UNIFIED_ORDERS",
            "emergency backup",
            "data restore",
            "health check",
            "smoke test",
            "health watch",
            "traffic still off",
        ]
        emergency_uri = result.steps[1].detail
        emergency: Manifest = read_manifest(clients.bucket, parse_backup_uri(emergency_uri))
        assert emergency.kind == "emergency" and emergency.name.startswith("emergency-backup-")
        assert emergency.collections["order_hub"].count == 800  # the state before the restore, kept
        assert "order_hub 1200/1200 replaced" in result.steps[2].detail
        assert "writes to these collections since then are lost" in result.steps[2].detail
        assert clients.db.order_hub.count_documents({"source": "web"}) == 400
        record = clients.runs.get("data-test")
        assert record is not None and record.status == "rolled-back"
        # Rolled back: a second rollback does nothing, and says when, by whom, from which backup.
        again = run_rollback(plan_path=plan, reason="again", targets=sandbox.targets())
        assert again.outcome == "nothing-to-do" and again.steps == ()
        assert f"from backup {record.backup}" in again.note and "rolled back at " in again.note
        # Forced without naming a restore: everything but the data, and the report says why.
        clients.db.order_hub.insert_one({"_id": "written-since", "source": "web"})
        forced = run_rollback(plan_path=plan, reason="again", targets=sandbox.targets(), force=True)
        skipped = next(s for s in forced.steps if s.name == "data restore")
        assert forced.ok and skipped.detail.startswith(
            "not asked: a forced rollback of a promoted (or rolled-back) rollout restores only when told to"
        )
        assert clients.db.order_hub.count_documents({"_id": "written-since"}) == 1
        clients.db.order_hub.delete_one({"_id": "written-since"})
    finally:
        if clients.db.order_hub.count_documents({"source": "web"}) == 0:
            clients.db.order_hub.insert_many(removed)


def test_a_dry_run_counts_who_each_step_would_admit_and_changes_nothing(
    prefect_api: None,
    sandbox: SandboxInfo,
    clients: Clients,
    main_flag: FlagStore,
    tmp_path: Path,
    plan_file: PlanFiles,
) -> None:
    from rollout.audience.bucketing import admitted

    text = (
        Path(data_plan(plan_file))
        .read_text()
        .replace("flag: USE_UNIFIED_ORDERS", "flag: USE_UNIFIED_ORDERS\nusers: {collection: users}")
        .replace("ramp: [100]", "ramp: [10, 50]")
    )
    plan = tmp_path / "dry.yaml"
    plan.write_text(text)
    before_flag, before_backups = main_flag.get("USE_UNIFIED_ORDERS"), backups(clients)
    before_run = clients.runs.get("data-test")

    result = run_rollout(plan_path=str(plan), targets=sandbox.targets(), dry_run=True)

    assert result.status == "dry_run"
    ids = [str(u["_id"]) for u in clients.db.users.find({}, {"_id": 1})]
    at = {pct: sum(admitted("USE_UNIFIED_ORDERS", user, pct) for user in ids) for pct in (10, 50)}
    assert 0 < at[10] < at[50] < len(ids)
    assert [(s.step, s.outcome, s.reason) for s in result.steps] == [
        ("10% of users", "planned", f"{at[10]} of {len(ids)} users"),
        ("50% of users", "planned", f"{at[50]} of {len(ids)} users"),
    ]
    assert main_flag.get("USE_UNIFIED_ORDERS").version == before_flag.version
    assert backups(clients) == before_backups
    assert clients.runs.get("data-test") == before_run


def test_a_rollback_run_again_to_finish_does_not_restore_the_same_backup_twice(
    prefect_api: None,
    sandbox: SandboxInfo,
    clients: Clients,
    main_flag: FlagStore,
    plan_file: PlanFiles,
) -> None:
    from datetime import UTC, datetime, timedelta

    from rollout.lifecycle.record import RestoreRecord
    from rollout.lifecycle.statuses import Status

    plan = data_plan(plan_file)
    runs, uri = clients.runs, "s3://rollout-backups/backups/backup-earlier/"
    runs.claim("data-test", "run-1", "v3", timedelta(minutes=5), version="v3", stable_before="v2")
    runs.keep_backup("data-test", uri)
    runs.take_over("data-test", "rollback-1")
    runs.record_restore("data-test", RestoreRecord(uri, datetime.now(UTC), "rollback run rollback-1", True))
    runs.move("data-test", Status.ROLLBACK_INCOMPLETE, by="rollback run rollback-1", why="smoke failed")
    clients.db.order_hub.insert_one({"_id": "written-since", "source": "web"})
    try:
        result = run_rollback(plan_path=plan, reason="finish it", targets=sandbox.targets())
        restore = next(s for s in result.steps if s.name == "data restore")
        assert restore.ok and restore.detail.startswith(f"not restored again: {uri} was restored at ")
        assert "by rollback run rollback-1 (force to restore it again)" in restore.detail
        assert "emergency backup" not in [s.name for s in result.steps]
        assert clients.db.order_hub.count_documents({"_id": "written-since"}) == 1  # nothing discarded
        record = runs.get("data-test")
        assert record is not None and record.status == "rolled-back"
    finally:
        clients.db.order_hub.delete_one({"_id": "written-since"})
