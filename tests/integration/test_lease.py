"""The plan's lease in MongoDB: one run at a time, resumption of a stopped rollout, fencing by a rollback."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import MongoClient

from rollout.adapters.run_state import RunStateStore
from rollout.errors import LeaseLost, RolloutBusy
from rollout.sandbox.stack import SandboxInfo

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
LEASE = timedelta(minutes=5)


@pytest.fixture()
def runs(sandbox: SandboxInfo, mongo: MongoClient[dict[str, Any]], request: pytest.FixtureRequest) -> Any:
    collection = mongo[sandbox.database][f"lease_{abs(hash(request.node.nodeid)) % 10**8}"]
    yield RunStateStore(collection)
    collection.drop()


def test_a_second_run_is_refused_while_the_first_holds_the_plan(runs: RunStateStore) -> None:
    assert runs.claim("p", "run-1", "v2", LEASE, now=T0).kind == "fresh"
    with pytest.raises(
        RolloutBusy, match=r"plan p is being rolled out by run run-1 \(rollout v2\).*`rollout rollback`"
    ):
        runs.claim("p", "run-2", "v2", LEASE, now=T0 + timedelta(minutes=4))
    runs.renew("p", "run-1", LEASE, now=T0 + timedelta(minutes=4))
    with pytest.raises(RolloutBusy):
        runs.claim("p", "run-2", "v2", LEASE, now=T0 + timedelta(minutes=8))


def test_a_run_that_stopped_half_way_is_resumed_by_the_same_rollout_only(runs: RunStateStore) -> None:
    runs.claim("p", "run-1", "v2", LEASE, now=T0)
    runs.step("p", {"key": "ramp/0", "outcome": "successful"})
    runs.step("p", {"key": "ramp/1", "outcome": "inconclusive"})
    later = T0 + LEASE + timedelta(seconds=1)
    with pytest.raises(RolloutBusy, match="rollout v2 of plan p stopped after ramp/0 without finishing"):
        runs.claim("p", "run-2", "v3", LEASE, now=later)
    claim = runs.claim("p", "run-2", "v2", LEASE, now=later)
    assert claim.resumed and claim.previous is not None
    assert claim.previous.committed == {"ramp/0"}
    record = runs.get("p")
    assert record is not None and (record.run_id, record.status) == ("run-2", "running")
    assert [s["key"] for s in record.steps] == ["ramp/0", "ramp/1"]
    with pytest.raises(LeaseLost, match="run run-1 no longer holds plan p"):
        runs.renew("p", "run-1", LEASE, now=later)


def test_a_finished_rollout_leaves_the_plan_free_for_the_next(runs: RunStateStore) -> None:
    runs.claim("p", "run-1", "v2", LEASE, now=T0)
    runs.keep_backup("p", "s3://b/backup-1/")
    runs.finish("p", "promoted")
    claim = runs.claim("p", "run-2", "v3", LEASE, now=T0 + timedelta(seconds=1))
    assert claim.kind == "fresh"
    record = runs.get("p")
    assert record is not None and record.backup is None and record.steps == ()


def test_a_rollback_fences_off_the_rollout_still_running(runs: RunStateStore) -> None:
    runs.claim("p", "run-1", "v2", LEASE, now=T0)
    runs.take_over("p", "rollback-1")
    with pytest.raises(LeaseLost, match="now rolling_back"):
        runs.renew("p", "run-1", LEASE, now=T0 + timedelta(seconds=10))


def test_pilot_stores_chosen_first_are_kept_for_a_resumed_run(runs: RunStateStore) -> None:
    runs.claim("p", "run-1", "v2", LEASE, now=T0)
    assert runs.remember_pilots("p", "pilot", ["s1", "s2"]) == ["s1", "s2"]
    assert runs.remember_pilots("p", "pilot", ["s3"]) == ["s1", "s2"]
