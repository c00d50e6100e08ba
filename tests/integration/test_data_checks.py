from typing import Any

import pytest
from bson import ObjectId

from rollout.data.check_runner import CheckInvalid, run_check, validate_checks
from rollout.data.checks import plan_checks
from rollout.plan.model import Preflight

pytestmark = pytest.mark.integration

PREFLIGHT = {
    "required_fields": [
        {
            "collection": "order_hub",
            "fields": {"source": "string", "source_id": "objectId", "total": "decimal"},
        }
    ],
    "duplicates": [{"collection": "order_hub", "key": ["source", "source_id"]}],
    "orphans": [{"collection": "product_returns", "field": "order_hub_id", "references": "order_hub"}],
    "backfill": [
        {
            "hub": "order_hub",
            "sources": {"web": "orders_web", "pos": "orders_pos", "marketplace": "orders_marketplace"},
        }
    ],
    "custom": [
        {
            "name": "no negative totals",
            "collection": "order_hub",
            "pipeline": [{"$match": {"total": {"$lt": 0}}}, {"$count": "count"}],
            "expect": {"equals": 0},
        }
    ],
}


def run(db: Any, **overrides: Any) -> dict[str, Any]:
    specs = plan_checks(Preflight.model_validate({**PREFLIGHT, **overrides}))
    validate_checks(db, specs)
    return {spec.name: run_check(db, spec) for spec in specs}


def test_the_seeded_shop_passes_every_check(shop_db: Any) -> None:
    results = run(shop_db)
    assert all(r.passed for r in results.values()), [r for r in results.values() if not r.passed]
    backfill = results["order_hub backfill from orders_web"]
    assert (backfill.checked, backfill.failing) == (150, 0)
    assert results["order_hub counts per source"].detail == "per source: marketplace 150, pos 150, web 150"
    assert results["no negative totals"].detail == "count = 0 (expected = 0)"


def test_a_missing_copy_is_counted_and_its_source_id_shown(shop_db: Any) -> None:
    lost = shop_db.orders_pos.find_one(sort=[("_id", 1)])
    shop_db.order_hub.delete_one({"source": "pos", "source_id": lost["_id"]})
    results = run(shop_db)
    pos = results["order_hub backfill from orders_pos"]
    assert not pos.passed
    assert (pos.failing, pos.checked) == (1, 150)
    assert pos.samples == (str(lost["_id"]),)
    assert results["order_hub backfill from orders_web"].passed
    assert results["order_hub counts per source"].detail == "per source: marketplace 150, pos 149, web 150"


def test_a_copy_under_the_wrong_source_does_not_count(shop_db: Any) -> None:
    shop_db.order_hub.update_one({"source": "web"}, {"$set": {"source": "webshop"}})
    results = run(shop_db)
    assert results["order_hub backfill from orders_web"].failing == 1
    sources = results["order_hub counts per source"]
    assert not sources.passed
    assert sources.samples == ("webshop",)


def test_orphans_duplicates_and_wrong_types_are_each_found(shop_db: Any) -> None:
    dangling = ObjectId()
    shop_db.product_returns.insert_one({"order_hub_id": dangling, "reason": "late"})
    shop_db.order_hub.drop_indexes()
    twin = shop_db.order_hub.find_one({"source": "web"}, {"_id": 0})
    shop_db.order_hub.insert_one(twin)
    shop_db.order_hub.update_one({"source": "pos"}, {"$set": {"total": "12.50"}})
    results = run(shop_db)

    orphans = results["product_returns.order_hub_id -> order_hub"]
    assert (orphans.passed, orphans.failing, orphans.checked) == (False, 1, 31)
    duplicates = results["order_hub unique (source, source_id)"]
    assert (duplicates.passed, duplicates.failing) == (False, 1)
    assert duplicates.samples == (f"source=web, source_id={twin['source_id']}",)
    types = results["order_hub required fields"]
    assert (types.passed, types.failing) == (False, 1)
    assert "total 1" in types.detail and "source 0" in types.detail


def test_a_custom_check_whose_pipeline_the_server_refuses_names_the_check(shop_db: Any) -> None:
    bad = [{"name": "broken", "collection": "order_hub", "pipeline": [{"$bogus": 1}], "expect": {"max": 0}}]
    with pytest.raises(
        CheckInvalid, match=r"preflight.custom\[0\].pipeline: check 'broken' was refused.*bogus"
    ):
        run(shop_db, custom=bad)


def test_a_check_on_a_collection_that_does_not_exist_is_an_error_not_a_pass(shop_db: Any) -> None:
    with pytest.raises(
        CheckInvalid, match=r"preflight.orphans\[0\].*reads product_return, which .* does not have"
    ):
        run(shop_db, orphans=[{"collection": "product_return", "field": "x", "references": "order_hub"}])


def test_a_custom_check_with_no_result_fails_unless_it_counts(shop_db: Any) -> None:
    no_row = [
        {
            "name": "max total",
            "collection": "order_hub",
            "pipeline": [
                {"$match": {"source": "none"}},
                {"$group": {"_id": None, "top": {"$max": "$total"}}},
            ],
            "expect": {"field": "top", "max": 100},
        }
    ]
    result = run(shop_db, custom=no_row)["max total"]
    assert not result.passed
    assert result.detail == "the pipeline returned no document, not a number"


def test_missing_and_mistyped_fields_are_counted_per_field_with_sample_ids(shop_db: Any) -> None:
    unset = shop_db.order_hub.find_one({"source": "web"}, sort=[("_id", 1)])
    retyped = shop_db.order_hub.find_one({"source": "pos"}, sort=[("_id", 1)])
    shop_db.order_hub.update_one({"_id": unset["_id"]}, {"$unset": {"total": ""}})
    shop_db.order_hub.update_one({"_id": retyped["_id"]}, {"$set": {"total": 12.5, "source_id": "x"}})
    check = run(shop_db)["order_hub required fields"]
    assert not check.passed
    assert (check.failing, check.checked) == (2, 450)
    expected = "2 document(s) missing a field or of the wrong type (source 0, source_id 1, total 2)"
    assert check.detail == expected
    assert set(check.samples) == {str(unset["_id"]), str(retyped["_id"])}
