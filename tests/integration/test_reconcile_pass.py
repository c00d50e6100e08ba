"""A reconciler pass over several plans' databases, in process against a Prefect test server."""

from datetime import timedelta
from typing import Any
from uuid import uuid4

import pytest
from pymongo import MongoClient

from flows.reconcile import reconcile_flow
from rollout.adapters.run_state import RunStateStore
from rollout.sandbox.stack import SandboxInfo
from tests.plans import PlanFiles, target_sections

pytestmark = pytest.mark.integration

DATABASE = "reconcile_pass"


def test_a_database_whose_secret_is_not_created_is_named_not_configured_and_the_others_reconciled(
    prefect_api: None, sandbox: SandboxInfo, sandbox_mongo: MongoClient[dict[str, Any]], plan_file: PlanFiles
) -> None:
    targets = target_sections(sandbox.targets())
    targets["flag_store"] = {"database": DATABASE}
    readable = plan_file("readable", targets=targets, flag="READABLE")
    unreadable_targets = target_sections(sandbox.targets())
    # The shipped aquafarm plan is like this until its operator creates the Secret block.
    unreadable_targets["mongodb"]["uri"] = "${secret:reconcile-pass-missing-uri}"
    unreadable = plan_file("unreadable", targets=unreadable_targets, flag="UNREADABLE")
    store = RunStateStore(sandbox_mongo[DATABASE]["rollout_runs"])
    store.claim("readable", str(uuid4()), "v2", timedelta(hours=1))  # driven by a run holding its lease
    try:
        report = reconcile_flow(plans=[str(readable), str(unreadable)])
        assert report.rollouts == 1, report
        [idle] = report.not_configured
        assert idle.plan == f"rollouts in database {sandbox.database}"
        assert "reconcile-pass-missing-uri" in idle.why and "was not found" in idle.why
        # Nothing for a person: a fresh install's example plans do not make every pass a warning.
        assert report.cannot_act == () and report.acted == ()
        assert "0 to look at, 1 not configured" in report.summary()
    finally:
        sandbox_mongo.drop_database(DATABASE)
