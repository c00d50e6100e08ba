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


def test_a_database_that_cannot_be_read_is_reported_and_the_others_are_still_reconciled(
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
        [cannot] = report.cannot_act
        assert cannot.plan == f"rollouts in database {sandbox.database}"
        assert "reconcile-pass-missing-uri" in cannot.why and "was not found" in cannot.why
        assert report.acted == ()
    finally:
        sandbox_mongo.drop_database(DATABASE)
