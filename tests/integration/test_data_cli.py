"""`rollout checks`, `backup` and `restore` against the sandbox, as a user runs them."""

import json
from pathlib import Path
from typing import Any

import pytest

from cli.main import main
from rollout.sandbox.stack import SandboxInfo
from tests.plans import PlanFiles

pytestmark = pytest.mark.integration


def data_plan(plan_file: PlanFiles, **sections: Any) -> str:
    """A plan whose backup takes two collections, with ``sections`` over it."""
    sections = {
        "name": "cli-data",
        "release": {"version": "v9"},
        "backup": {"collections": ["shops", "users"]},
    } | sections
    return str(plan_file(file="plan.yaml", **sections))


ORPHANS = {"orphans": [{"collection": "product_returns", "field": "order_hub_id", "references": "order_hub"}]}


def test_checks_print_their_table_and_exit_0_when_all_pass(
    prefect_api: None,
    sandbox: SandboxInfo,
    plan_file: PlanFiles,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["checks", data_plan(plan_file, preflight=ORPHANS)]) == 0
    out = capsys.readouterr().out
    assert "product_returns.order_hub_id -> order_hub   pass" in out
    assert "all 60 order_hub_id values found in order_hub._id" in out


def test_a_failing_check_exits_3(
    prefect_api: None,
    sandbox: SandboxInfo,
    plan_file: PlanFiles,
    capsys: pytest.CaptureFixture[str],
) -> None:
    wrong = {
        "custom": [
            {
                "name": "tiny hub",
                "collection": "order_hub",
                "pipeline": [{"$count": "count"}],
                "expect": {"max": 1},
            }
        ]
    }
    assert main(["checks", data_plan(plan_file, preflight=wrong)]) == 3
    assert "tiny hub   FAIL" in capsys.readouterr().out


def test_a_pipeline_the_server_refuses_exits_2_naming_the_check(
    prefect_api: None,
    sandbox: SandboxInfo,
    plan_file: PlanFiles,
    capsys: pytest.CaptureFixture[str],
) -> None:
    broken = {
        "custom": [
            {"name": "typo", "collection": "order_hub", "pipeline": [{"$mach": {}}], "expect": {"max": 1}}
        ]
    }
    assert main(["checks", data_plan(plan_file, preflight=broken)]) == 2
    err = capsys.readouterr().err
    assert "preflight.custom[0].pipeline: check 'typo' was refused by MongoDB" in err
    assert "$mach" in err


def test_backup_prints_its_uri_and_restore_refuses_one_without_a_manifest(
    prefect_api: None,
    sandbox: SandboxInfo,
    plan_file: PlanFiles,
    capsys: pytest.CaptureFixture[str],
) -> None:
    plan = data_plan(
        plan_file,
    )
    assert main(["backup", plan]) == 0
    captured = capsys.readouterr()
    uri = captured.out.strip().splitlines()[-1]
    assert uri.startswith(f"s3://{sandbox.bucket}/backups/backup-") and uri.endswith("/")
    assert "shops: 60 documents" in captured.err

    missing = uri.rstrip("/") + "-nope/"
    assert main(["restore", plan, "--backup", missing, "--collections", "shops"]) == 2
    assert "has no manifest.json: the backup does not exist or never completed" in capsys.readouterr().err

    assert main(["restore", plan, "--backup", uri, "--verify"]) == 0
    assert "shops: 60/60 documents, matches the manifest, source unchanged" in capsys.readouterr().out

    assert main(["restore", plan, "--backup", uri, "--collections", "shops", "--filter", "{oops"]) == 2
    assert "--filter: not JSON" in capsys.readouterr().err


def test_status_tells_where_the_last_rollout_stands(
    prefect_api: None,
    sandbox: SandboxInfo,
    plan_file: PlanFiles,
    capsys: pytest.CaptureFixture[str],
) -> None:
    plan = data_plan(
        plan_file,
        gates={"errors": {"sli": "error_ratio", "max": 0.5, "rate_window": "5s"}},
        phases=[
            {
                "name": "all",
                "ramp": [30],
                "window": {
                    "interval": "1s",
                    "count": 2,
                    "initial_delay": "3s",
                    "decision_timeout": "5s",
                    "gates": ["errors"],
                },
            }
        ],
        rollback={"watch": {"interval": "1s", "duration": "1s"}},
    )
    try:
        assert main(["run", plan, "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["status"] == "promoted"
        assert main(["status", plan]) == 0
        out = capsys.readouterr().out
        assert "status    promoted" in out
        assert "phase     all (30% of users)" in out
        assert "traffic   30%" in out
        assert "gates     errors " in out and "-> successful" in out
        assert "stable    v9" in out
        assert "flag      USE_UNIFIED_ORDERS: 30% (enabled, version " in out
        assert "as the last committed step (all/0: 30%) says" in out
        assert main(["status", plan, "--run", "not-this-one"]) == 2

        # Promoted: refused without --force, nothing changed; with it, traffic off; then nothing to do.
        assert main(["rollback", plan, "--reason", "pager"]) == 2
        assert "was promoted at" in capsys.readouterr().err
        assert main(["status", plan]) == 0 and "status    promoted" in capsys.readouterr().out
        assert main(["rollback", plan, "--force"]) == 2
        assert "--force needs --reason" in capsys.readouterr().err
        assert main(["rollback", plan, "--reason", "pager", "--force"]) == 3
        assert "flag USE_UNIFIED_ORDERS: ok (traffic 0)" in capsys.readouterr().out
        assert main(["rollback", plan, "--reason", "pager"]) == 0
        assert capsys.readouterr().out.startswith("nothing to do: rollout v9 of cli-data was rolled back at ")
        assert main(["status", plan]) == 0
        out = capsys.readouterr().out
        assert "status    rolled-back since " in out and "as the rollback (traffic off) says" in out
    finally:
        from pymongo import MongoClient

        from rollout.adapters.flags import FlagStore
        from rollout.audience.flag_state import FlagChange

        client: MongoClient[dict[str, Any]] = MongoClient(sandbox.mongodb_uri)
        FlagStore(client.shop.feature_flags).set(
            "USE_UNIFIED_ORDERS", FlagChange(enabled=False, percentage=0, users=(), stores=())
        )
        client.close()


def test_a_rollback_of_a_plan_with_no_rollout_on_record_exits_2_and_changes_nothing(
    prefect_api: None,
    sandbox: SandboxInfo,
    tmp_path: Path,
    plan_file: PlanFiles,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from pymongo import MongoClient

    from rollout.adapters.flags import FlagStore
    from rollout.audience.flag_state import FlagChange

    plan = data_plan(plan_file, name="cli-never-rolled-out", flag="CLI_NEVER")
    client: MongoClient[dict[str, Any]] = MongoClient(sandbox.mongodb_uri)
    flags = FlagStore(client.shop.feature_flags)
    flags.set("CLI_NEVER", FlagChange(enabled=True, percentage=100))
    try:
        assert main(["rollback", plan, "--reason", "pager"]) == 2
        err = capsys.readouterr().err
        assert "plan cli-never-rolled-out has no rollout on record: nothing to roll back" in err
        assert flags.get("CLI_NEVER").percentage == 100
        assert client.shop.rollout_runs.find_one({"_id": "cli-never-rolled-out"}) is None
        assert main(["rollback", str(tmp_path / "missing.yaml"), "--reason", "pager"]) == 2
        assert "does not exist; check the path" in capsys.readouterr().err
    finally:
        client.shop.feature_flags.delete_one({"_id": "CLI_NEVER"})
        client.close()


def _everything(client: Any) -> dict[str, Any]:
    """Every database on the server: its collections with their UUIDs, indexes and documents.

    The server's own (``local``, holding the oplog of every write anywhere; ``config``) aside.
    """
    seen: dict[str, Any] = {"databases": sorted(client.list_database_names())}
    for name in client.list_database_names():
        if name in ("local", "config"):
            continue
        db = client[name]
        seen[name] = {
            info["name"]: (
                info.get("info", {}).get("uuid"),
                sorted(str(i) for i in db[info["name"]].list_indexes()),
                sorted(str(d) for d in db[info["name"]].find({})),
            )
            for info in db.list_collections()
        }
    return seen


def test_a_refused_restore_of_a_tampered_archive_leaves_every_database_exactly_as_it_was(
    prefect_api: None,
    sandbox: SandboxInfo,
    sandbox_mongo: Any,
    plan_file: PlanFiles,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from rollout.adapters.clients import Clients
    from rollout.data.restore import parse_backup_uri, read_manifest

    plan = data_plan(plan_file)
    assert main(["backup", plan]) == 0
    uri = capsys.readouterr().out.strip().splitlines()[-1]
    with Clients(sandbox.targets()) as clients:
        bucket = clients.bucket
        key = read_manifest(bucket, parse_backup_uri(uri)).archive.key
        body = bytearray(bucket.client.get_object(Bucket=bucket.name, Key=key)["Body"].read())
        body[len(body) // 2] ^= 0x01
        bucket.client.put_object(Bucket=bucket.name, Key=key, Body=bytes(body))
    before = _everything(sandbox_mongo)
    for extra in ([], ["--into", "restored-elsewhere"], ["--verify"], ["--collections", "shops"]):
        assert main(["restore", plan, "--backup", uri, *extra]) == 2, extra
        assert "does not match the SHA-256 in its manifest" in capsys.readouterr().err, extra
        assert _everything(sandbox_mongo) == before, extra  # no lock, no database, no collection
