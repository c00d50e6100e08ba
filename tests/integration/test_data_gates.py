"""Data gates read on the MongoDB stand-in, and judged by a rollout like any other gate."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from bson import ObjectId
from prefect.client.schemas.objects import StateType

from flows.outcomes import result_of
from flows.rollout_flow import rollout_flow
from flows.rollout_result import RolloutResult
from rollout.adapters.flags import FlagStore
from rollout.data.data_gates import DataGateInvalid, check_data_gate, read_data_gate
from rollout.plan.model import DataGate
from rollout.sandbox.stack import SandboxInfo

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
DRIFTING_PLAN = """
name: flow-test
release: {version: v2}
flag: USE_UNIFIED_ORDERS
gates:
  hub-drift:
    data: {drift: {hub: drift_hub, sources: {web: drift_web}, fields: [total]}, sample: null}
    max: 0.01
phases:
  - name: internal
    flags: {ENABLE_DUAL_WRITE: true}
    allowlist: {users: [dev@example.com]}
    window: {interval: 1s, count: 2, gates: [hub-drift]}
rollback:
  watch: {interval: 1s, duration: 2s}
"""
DRIFT = {"hub": "gate_hub", "sources": {"web": "gate_web"}, "fields": ["total", "shop"]}


@pytest.fixture()
def dual_written(shop_db: Any) -> Iterator[Any]:
    """Ten source orders, each copied into the hub by the dual write."""
    orders = [
        {"_id": ObjectId(), "total": 10 + i, "shop": f"s{i % 3}", "updated_at": NOW - timedelta(hours=i)}
        for i in range(10)
    ]
    shop_db.gate_web.insert_many(orders)
    shop_db.gate_hub.insert_many(
        [{"source": "web", "source_id": o["_id"], "total": o["total"], "shop": o["shop"]} for o in orders]
    )
    yield shop_db


def gate(**fields: Any) -> DataGate:
    return DataGate.model_validate(fields)


def test_drift_is_the_share_of_copies_that_differ_or_are_missing(dual_written: Any) -> None:
    db = dual_written
    assert check_data_gate(db, "drift", gate(drift=DRIFT, sample=None), NOW) == 0.0
    first, second = db.gate_web.find().sort("_id", 1).limit(2)
    db.gate_hub.update_one({"source_id": first["_id"]}, {"$set": {"total": 999}})  # a write that diverged
    db.gate_hub.delete_one({"source_id": second["_id"]})  # a write that never reached the hub
    assert read_data_gate(db, "drift", gate(drift=DRIFT, sample=None), NOW) == pytest.approx(0.2)
    assert read_data_gate(db, "drift", gate(drift=DRIFT, sample=4), NOW) in {0.0, 0.25, 0.5}  # 4 sampled
    recent = gate(drift=DRIFT, sample=None, recent="90m")  # only the two written last: both bad
    assert read_data_gate(db, "drift", recent, NOW) == pytest.approx(1.0)


def test_accuracy_and_a_pipeline_of_your_own(dual_written: Any) -> None:
    db = dual_written
    db.gate_web.update_one({"total": 10}, {"$set": {"total": -5}})
    accuracy = gate(accuracy={"collection": "gate_web", "valid": {"total": {"$gte": 0}}}, sample=None)
    assert read_data_gate(db, "accuracy", accuracy, NOW) == pytest.approx(0.9)
    scoped = gate(
        accuracy={"collection": "gate_web", "valid": {"total": {"$gte": 0}}, "scope": {"shop": "s0"}},
        sample=None,
    )
    assert read_data_gate(db, "accuracy", scoped, NOW) == pytest.approx(3 / 4)
    negative = [{"$match": {"total": {"$lt": 0}}}, {"$count": "n"}]
    counting = gate(pipeline={"collection": "gate_web", "pipeline": negative, "field": "n"})
    assert read_data_gate(db, "negative", counting, NOW) == 1.0
    db.gate_web.delete_many({"total": {"$lt": 0}})
    assert read_data_gate(db, "negative", counting, NOW) == 0.0  # $count of nothing is 0, not no data


def test_nothing_to_judge_is_no_data_and_a_missing_collection_names_the_gate(dual_written: Any) -> None:
    db = dual_written
    nothing = gate(accuracy={"collection": "gate_web", "valid": {"total": 1}, "scope": {"shop": "none"}})
    assert read_data_gate(db, "accuracy", nothing, NOW) is None
    typo = gate(drift={**DRIFT, "hub": "gate_hbu"})
    with pytest.raises(
        DataGateInvalid, match=r"gates\.drift\.data reads gate_hbu, which t_\w+ does not have"
    ):
        check_data_gate(db, "drift", typo, NOW)


def test_a_rollout_whose_data_drifts_is_rolled_back_naming_the_data_gate(
    prefect_api: None, sandbox: SandboxInfo, flag_store: FlagStore, tmp_path: Path, sandbox_mongo: Any
) -> None:
    db = sandbox_mongo[sandbox.database]
    db.drop_collection("drift_web")
    db.drop_collection("drift_hub")
    ids = [ObjectId() for _ in range(4)]
    db.drift_web.insert_many([{"_id": i, "total": 5} for i in ids])
    db.drift_hub.insert_many(
        [{"source": "web", "source_id": i, "total": 5 if n else 6} for n, i in enumerate(ids)]
    )
    try:
        plan = tmp_path / "plan.yaml"
        plan.write_text(DRIFTING_PLAN)
        state = rollout_flow(plan_path=str(plan), targets=sandbox.targets(), return_state=True)
        result = result_of(state, RolloutResult)
    finally:
        db.drop_collection("drift_web")
        db.drop_collection("drift_hub")
    assert state.type == StateType.FAILED and state.name == "RolledBack"
    assert result.status == "rolled_back"
    assert "hub-drift" in result.reason and "0.25 > max 0.01" in result.reason
    assert result.steps[0].values["hub-drift"] == pytest.approx(0.25)
    assert (
        flag_store.get("USE_UNIFIED_ORDERS").enabled is False
        or flag_store.get("USE_UNIFIED_ORDERS").users == ()
    )
