import io
import zipfile
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import bson
import pytest
from bson import Binary, Decimal128, ObjectId
from bson.raw_bson import RawBSONDocument
from pymongo import ASCENDING, IndexModel, MongoClient

from rollout.adapters.bucket import Bucket
from rollout.data.backup import BackupRequest, BackupResult, prune_backups, take_backup
from rollout.data.manifest import MANIFEST
from rollout.data.mongo_io import digest_collection
from rollout.data.restore import BackupUnusable, parse_backup_uri, restore_backup
from rollout.data.restore_check import verify_by_restore

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 22, 9, 30, tzinfo=UTC)
AWKWARD = [
    {
        "_id": ObjectId("65a1b2c3d4e5f60718293a4b"),
        "total": Decimal128(Decimal("1234.5600")),
        "at": datetime(2026, 2, 28, 23, 59, 59, 999000, tzinfo=UTC),
        "blob": Binary(bytes(range(256)), 0),
        "uuid": Binary(b"\x12" * 16, 4),
        "nested": [[1, 2, [3, {"deep": ["x", None, True]}]], {"a": [{"b": [{"c": 1.5}]}]}],
        "text": "طلب موحّد — 統一注文 — 🧾",
        "big": 2**62,
        "empty": {},
    },
    {"_id": "string-id", "order": {"z": 1, "a": 2}, "neg_zero": -0.0, "tiny": 5e-324},
    {"_id": 7, "list": list(range(100)), "none": None},
]


def request(db: Any, **overrides: Any) -> BackupRequest:
    fields: dict[str, Any] = {
        "plan": "unified-orders",
        "release": "backend-v2026.11.22-0900",
        "kind": "pre-rollout",
        "database": db.name,
        "prefix": "orders/",
        "hosts": ("mongo-0:27017",),
    }
    return BackupRequest(**{**fields, **overrides})


def backup(db: Any, bucket: Bucket, **overrides: Any) -> BackupResult:
    return take_backup(db.client, bucket, request(db, **overrides), now=lambda: NOW)


def raw_documents(collection: Any) -> list[bytes]:
    raw = collection.with_options(
        codec_options=collection.codec_options.with_options(document_class=RawBSONDocument)
    )
    return [doc.raw for doc in raw.find({}, sort=[("_id", 1)])]


def test_awkward_documents_come_back_byte_identical_with_indexes_and_options(
    shop_db: Any, bucket: Bucket
) -> None:
    shop_db.create_collection(
        "wallets", validator={"$jsonSchema": {"bsonType": "object", "required": ["_id"]}}
    )
    shop_db.wallets.insert_many(AWKWARD)
    shop_db.wallets.create_indexes(
        [IndexModel([("total", ASCENDING), ("at", -1)], name="total_at", sparse=True)]
    )
    before = raw_documents(shop_db.wallets)

    result = backup(shop_db, bucket)
    assert result.uri == f"s3://{bucket.name}/orders/backup-2026-11-22-0930/"
    entry = result.manifest.collections["wallets"]
    assert (entry.count, entry.indexes) == (3, 1)
    assert entry.sha256 == digest_collection(shop_db.wallets).sha256

    shop_db.wallets.delete_many({})
    shop_db.wallets.insert_one({"_id": "intruder"})
    restored = restore_backup(shop_db.client, bucket, result.location, collections=["wallets"])

    assert restored.ok
    assert raw_documents(shop_db.wallets) == before
    indexes = {i["name"]: i for i in shop_db.wallets.list_indexes()}
    assert list(indexes["total_at"]["key"].items()) == [("total", 1), ("at", -1)]
    assert indexes["total_at"]["sparse"] is True
    options = shop_db.command("listCollections", filter={"name": "wallets"})["cursor"]["firstBatch"][0][
        "options"
    ]
    assert options["validator"] == {"$jsonSchema": {"bsonType": "object", "required": ["_id"]}}


def test_the_manifest_describes_every_collection_and_is_written_last(shop_db: Any, bucket: Bucket) -> None:
    result = backup(shop_db, bucket)
    manifest = result.manifest
    assert manifest.kind == "pre-rollout" and manifest.release == "backend-v2026.11.22-0900"
    assert manifest.source.hosts == ["mongo-0:27017"]
    assert manifest.collections["order_hub"].count == 450
    assert "rollout_runs" not in manifest.collections
    assert manifest.retain_until == NOW + timedelta(days=30)
    assert manifest.encryption == "AES256"
    head = bucket.client.head_object(Bucket=bucket.name, Key=manifest.archive.key)
    assert head["ServerSideEncryption"] == "AES256"
    stored = bucket.get_json(f"orders/{manifest.name}/{MANIFEST}")
    assert stored["archive"]["sha256"] == manifest.archive.sha256


def test_the_archive_unzips_into_a_mongodump_directory(shop_db: Any, bucket: Bucket) -> None:
    result = backup(shop_db, bucket, collections=("shops",))
    body = bucket.client.get_object(Bucket=bucket.name, Key=result.manifest.archive.key)["Body"].read()
    archive = zipfile.ZipFile(io.BytesIO(body))
    assert sorted(archive.namelist()) == [f"{shop_db.name}/shops.bson", f"{shop_db.name}/shops.metadata.json"]
    documents = bson.decode_all(archive.read(f"{shop_db.name}/shops.bson"))
    assert len(documents) == 20
    metadata = bson.json_util.loads(archive.read(f"{shop_db.name}/shops.metadata.json"))
    assert {i["name"] for i in metadata["indexes"]} == {"_id_", "is_active_1_created_at_-1"}


def test_two_backups_in_one_minute_get_distinct_names(shop_db: Any, bucket: Bucket) -> None:
    first, second = backup(shop_db, bucket), backup(shop_db, bucket)
    assert first.manifest.name == "backup-2026-11-22-0930"
    assert second.manifest.name == "backup-2026-11-22-0930-2"


def test_a_tampered_archive_is_refused_before_any_data_is_touched(shop_db: Any, bucket: Bucket) -> None:
    result = backup(shop_db, bucket)
    key = result.manifest.archive.key
    body = bytearray(bucket.client.get_object(Bucket=bucket.name, Key=key)["Body"].read())
    body[len(body) // 2] ^= 0x01
    bucket.client.put_object(Bucket=bucket.name, Key=key, Body=bytes(body))
    shop_db.order_hub.delete_many({"source": "web"})

    with pytest.raises(BackupUnusable, match="does not match the SHA-256 in its manifest"):
        restore_backup(shop_db.client, bucket, result.location)
    assert shop_db.order_hub.count_documents({}) == 300


def test_a_backup_without_a_manifest_is_never_used(shop_db: Any, bucket: Bucket) -> None:
    result = backup(shop_db, bucket)
    bucket.client.delete_object(Bucket=bucket.name, Key=f"{result.location.key}/{MANIFEST}")
    with pytest.raises(
        BackupUnusable, match=r"has no manifest\.json: the backup does not exist or never completed"
    ):
        restore_backup(shop_db.client, bucket, result.location)
    with pytest.raises(BackupUnusable, match=r"has no manifest\.json"):
        restore_backup(
            shop_db.client, bucket, parse_backup_uri(f"s3://{bucket.name}/orders/backup-1999-01-01-0000/")
        )


def test_a_selective_restore_with_a_filter_puts_back_only_matching_documents(
    shop_db: Any, bucket: Bucket
) -> None:
    result = backup(shop_db, bucket)
    shop_db.order_hub.delete_many({"source": "web"})
    shop_db.order_hub.update_many({"source": "pos"}, {"$set": {"changed": True}})

    restored = restore_backup(
        shop_db.client, bucket, result.location, collections=["order_hub"], document_filter={"source": "web"}
    )
    assert [(c.name, c.restored, c.how) for c in restored.collections] == [("order_hub", 150, "merged")]
    assert shop_db.order_hub.count_documents({"source": "web"}) == 150
    assert shop_db.order_hub.count_documents({"changed": True}) == 150  # outside the filter: left as it was
    assert "order_hub__rollout_restore" not in shop_db.list_collection_names()


def test_a_full_restore_into_another_database_leaves_the_source_alone(
    shop_db: Any, bucket: Bucket, mongo: MongoClient[dict[str, Any]]
) -> None:
    result = backup(shop_db, bucket)
    shop_db.shops.insert_one({"_id": "after-the-backup"})
    target = shop_db.name + "_copy"
    try:
        restored = restore_backup(mongo, bucket, result.location, into=target)
        assert restored.database == target and restored.ok
        assert {c.name for c in restored.collections} == set(result.manifest.collections)
        assert mongo[target].shops.count_documents({}) == 20
        assert shop_db.shops.count_documents({}) == 21
    finally:
        mongo.drop_database(target)


def test_verification_restores_into_scratch_and_compares_digests(shop_db: Any, bucket: Bucket) -> None:
    result = backup(shop_db, bucket)
    shop_db.users.insert_one({"_id": "late-signup"})
    scratch = shop_db.name + "_verify"
    verified = verify_by_restore(shop_db.client, bucket, result.location, scratch=scratch)
    assert verified.ok
    by_name = {c.name: c for c in verified.collections}
    assert by_name["users"].matches_manifest and not by_name["users"].source_unchanged
    assert by_name["shops"].source_unchanged
    assert scratch not in shop_db.client.list_database_names()


def test_restoring_a_collection_the_backup_lacks_is_refused(shop_db: Any, bucket: Bucket) -> None:
    result = backup(shop_db, bucket, collections=("shops",))
    with pytest.raises(BackupUnusable, match="holds no wallets; it has shops"):
        restore_backup(shop_db.client, bucket, result.location, collections=["wallets"])


def test_retention_deletes_expired_and_stale_incomplete_backups_only(shop_db: Any, bucket: Bucket) -> None:
    old = take_backup(
        shop_db.client, bucket, request(shop_db, retention_days=1, collections=("shops",)), now=lambda: NOW
    )
    kept = backup(shop_db, bucket, collections=("shops",))
    bucket.client.put_object(
        Bucket=bucket.name, Key="orders/backup-2026-11-01-0000/dump.zip", Body=b"partial"
    )
    bucket.client.put_object(
        Bucket=bucket.name, Key="orders/backup-2026-11-24-0830/dump.zip", Body=b"partial"
    )
    deleted = prune_backups(bucket, "orders/", now=NOW + timedelta(days=2), keep=kept.manifest.name)
    assert sorted(deleted) == ["orders/backup-2026-11-01-0000/", f"orders/{old.manifest.name}/"]
    assert bucket.exists(f"orders/{kept.manifest.name}/{MANIFEST}")
    assert bucket.exists("orders/backup-2026-11-24-0830/dump.zip")


def with_a_view_and_a_time_series(db: Any) -> None:
    db.create_collection("readings", timeseries={"timeField": "at", "metaField": "pond"})
    db.readings.insert_many(
        [{"at": NOW + timedelta(minutes=i), "pond": f"p{i % 3}", "oxygen": 6.5 + i / 10} for i in range(30)]
    )
    db.create_collection("active_shops", viewOn="shops", pipeline=[{"$match": {"is_active": True}}])
    db.create_collection("active_shop_names", viewOn="active_shops", pipeline=[{"$project": {"name": 1}}])


def test_views_and_time_series_collections_are_backed_up_as_mongodump_keeps_them(
    shop_db: Any, bucket: Bucket
) -> None:
    with_a_view_and_a_time_series(shop_db)
    result = backup(shop_db, bucket)
    entries = result.manifest.collections
    assert (entries["readings"].type, entries["readings"].count) == ("timeseries", 30)
    assert (entries["active_shops"].type, entries["active_shops"].count) == ("view", 0)
    assert list(entries)[-2:] == ["active_shops", "active_shop_names"]  # each view after what it shows
    body = bucket.client.get_object(Bucket=bucket.name, Key=result.manifest.archive.key)["Body"].read()
    archive = zipfile.ZipFile(io.BytesIO(body))
    names = set(archive.namelist())
    assert f"{shop_db.name}/active_shops.metadata.json" in names
    assert f"{shop_db.name}/active_shops.bson" not in names  # a view is its definition only
    view = bson.json_util.loads(archive.read(f"{shop_db.name}/active_shops.metadata.json"))
    assert (view["type"], view["options"]["viewOn"]) == ("view", "shops")
    series = bson.json_util.loads(archive.read(f"{shop_db.name}/readings.metadata.json"))
    assert series["type"] == "timeseries"
    assert series["options"]["timeseries"]["timeField"] == "at"
    listed = {c["name"]: c for c in shop_db.list_collections()}
    shops = bson.json_util.loads(archive.read(f"{shop_db.name}/shops.metadata.json"))
    assert shops["uuid"] == listed["shops"]["info"]["uuid"].as_uuid().hex  # for mongorestore --preserveUUID
    assert len(shops["uuid"]) == 32


def test_a_full_restore_brings_views_and_time_series_back_and_verification_checks_them(
    shop_db: Any, bucket: Bucket
) -> None:
    with_a_view_and_a_time_series(shop_db)
    result = backup(shop_db, bucket)
    copy = shop_db.name + "_copy"
    restored = restore_backup(shop_db.client, bucket, result.location, into=copy)
    assert restored.ok
    listed = {c["name"]: c for c in shop_db.client[copy].list_collections()}
    assert listed["active_shop_names"]["type"] == "view"
    assert listed["active_shop_names"]["options"]["viewOn"] == "active_shops"
    assert "timeseries" in listed["readings"]["options"]
    assert shop_db.client[copy].readings.count_documents({}) == 30
    active = shop_db.shops.count_documents({"is_active": True})
    assert shop_db.client[copy].active_shop_names.count_documents({}) == active
    shop_db.client.drop_database(copy)

    verified = verify_by_restore(shop_db.client, bucket, result.location, scratch=shop_db.name + "_verify")
    assert verified.ok
    by_name = {c.name: c for c in verified.collections}
    assert by_name["active_shops"].matches_manifest and by_name["active_shops"].source_unchanged
    assert by_name["readings"].matches_manifest


def test_a_filtered_restore_of_a_view_or_a_time_series_is_refused_saying_why(
    shop_db: Any, bucket: Bucket
) -> None:
    with_a_view_and_a_time_series(shop_db)
    result = backup(shop_db, bucket)
    with pytest.raises(BackupUnusable, match=r"active_shops \(view\), readings \(timeseries\) cannot be"):
        restore_backup(
            shop_db.client,
            bucket,
            result.location,
            collections=["active_shops", "readings"],
            document_filter={"pond": "p1"},
        )
