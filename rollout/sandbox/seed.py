"""A small, deterministic shop in MongoDB, shaped like the Unified Orders runbook's data.

Source collections ``orders_web``, ``orders_pos`` and ``orders_marketplace`` are
backfilled into ``order_hub`` (each copy naming its ``source`` and
``source_id``); ``product_returns`` point at hub orders; ``shops`` and
``users`` complete the picture, and ``feature_flags`` holds the runbook's flags
in their phase-1 state.
"""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bson import Decimal128, ObjectId
from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.database import Database

SOURCES = {"web": "orders_web", "pos": "orders_pos", "marketplace": "orders_marketplace"}
INTERNAL_USERS = ("admin@example.com", "dev@example.com")
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
INITIAL_FLAGS = {
    "USE_UNIFIED_ORDERS": False,
    "SHOW_MIGRATION_TOOLS": True,
    "ENABLE_DATA_VALIDATION": True,
    "SHOW_UNIFIED_DASHBOARD": False,
    "ENABLE_DUAL_WRITE": False,
    "SHOW_SOURCE_INDICATOR": False,
}
_SOURCE_PREFIX = {"web": 1, "pos": 2, "marketplace": 3}
_BATCH = 1000


def money(cents: int) -> Decimal128:
    """``cents`` / 100 as a BSON decimal, built from its IEEE 754 BID encoding.

    ``Decimal128(Decimal(...))`` enters a ``decimal.localcontext`` per value; seeding ten thousand
    of them in a process whose threads run Prefect's event loops crashed CPython's ``_decimal``
    (SIGSEGV) in four full test runs. A coefficient below 2**64 needs no context. Trailing zeros go
    as ``Decimal`` division drops them (``150 / 100`` is ``1.5``), so the values are the same bits.
    """
    coefficient, exponent = cents, -2
    while exponent < 0 and coefficient % 10 == 0:
        coefficient, exponent = coefficient // 10, exponent + 1
    high = (6176 + exponent) << 49  # the biased exponent; the coefficient fits in the low 64 bits
    return Decimal128.from_bid(struct.pack("<QQ", coefficient, high))


@dataclass(frozen=True)
class ShopSize:
    """How much data to seed."""

    shops: int = 60
    users: int = 300
    orders_per_source: int = 400
    returns: int = 60


@dataclass(frozen=True)
class SeedSummary:
    """What was written, per collection."""

    counts: dict[str, int]


def user_id(i: int) -> str:
    """The id of synthetic user number ``i``."""
    return f"user-{i:05d}"


def shop_id(i: int) -> str:
    """The id of shop number ``i``."""
    return f"shop-{i:04d}"


def _oid(kind: int, i: int) -> ObjectId:
    return ObjectId(f"{kind:02x}{i:022x}")


def seed_shop(db: Database[dict[str, Any]], size: ShopSize = ShopSize(), seed: int = 7) -> SeedSummary:
    """Drop and rewrite the shop's collections in ``db``."""
    rng = random.Random(seed)
    for name in [
        *SOURCES.values(),
        "order_hub",
        "product_returns",
        "shops",
        "users",
        "feature_flags",
    ]:
        db.drop_collection(name)

    shops = [
        {
            "_id": shop_id(i),
            "display_name": f"Shop {i}",
            "is_active": rng.random() < 0.8,
            "total_orders": rng.randint(0, 300),
            "created_at": EPOCH + timedelta(days=i),
        }
        for i in range(size.shops)
    ]
    users = [{"_id": email, "email": email, "internal": True} for email in INTERNAL_USERS]
    users += [
        {"_id": user_id(i), "email": f"{user_id(i)}@example.com", "internal": False}
        for i in range(size.users)
    ]
    _insert(db, "shops", shops)
    _insert(db, "users", users)

    hub: list[dict[str, Any]] = []
    for source, collection in SOURCES.items():
        orders = []
        for i in range(size.orders_per_source):
            cents = rng.randint(100, 50000)
            orders.append(
                {
                    "_id": _oid(_SOURCE_PREFIX[source], i),
                    "shop_id": shop_id(rng.randrange(size.shops)),
                    "user_id": user_id(rng.randrange(size.users)),
                    "total": money(cents),
                    "currency": "USD",
                    "items": [
                        {"sku": f"sku-{rng.randrange(500)}", "qty": rng.randint(1, 3)}
                        for _ in range(rng.randint(1, 3))
                    ],
                    "created_at": EPOCH + timedelta(minutes=rng.randrange(500_000)),
                }
            )
        _insert(db, collection, orders)
        hub += [
            {
                "_id": _oid(0x10 + _SOURCE_PREFIX[source], i),
                "source": source,
                "source_id": order["_id"],
                "shop_id": order["shop_id"],
                "user_id": order["user_id"],
                "total": order["total"],
                "created_at": order["created_at"],
            }
            for i, order in enumerate(orders)
        ]
    _insert(db, "order_hub", hub)
    returns = [
        {
            "_id": _oid(0x20, i),
            "order_hub_id": hub[rng.randrange(len(hub))]["_id"],
            "reason": rng.choice(["damaged", "wrong item", "late"]),
            "created_at": EPOCH + timedelta(days=30, minutes=i),
        }
        for i in range(size.returns)
    ]
    _insert(db, "product_returns", returns)
    now = datetime.now(UTC)
    flags: list[dict[str, Any]] = [
        {
            "_id": name,
            "enabled": on,
            "percentage": 100 if on else 0,
            "users": [],
            "stores": [],
            "version": 1,
            "updated_at": now,
        }
        for name, on in INITIAL_FLAGS.items()
    ]
    _insert(db, "feature_flags", flags)

    db.order_hub.create_indexes([IndexModel([("source", ASCENDING), ("source_id", ASCENDING)], unique=True)])
    db.product_returns.create_indexes([IndexModel([("order_hub_id", ASCENDING)])])
    db.shops.create_indexes([IndexModel([("is_active", ASCENDING), ("created_at", DESCENDING)])])
    counts = {name: db[name].estimated_document_count() for name in db.list_collection_names()}
    return SeedSummary(counts=counts)


def _insert(db: Database[dict[str, Any]], name: str, docs: list[dict[str, Any]]) -> None:
    for start in range(0, len(docs), _BATCH):
        db[name].insert_many(docs[start : start + _BATCH], ordered=False)
