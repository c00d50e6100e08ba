"""What one reading of a data gate costs as the data grows: sampled, and over every document.

Starts its own SecantusDB and seeds the shop twice (``--small`` then ``--large`` hub orders,
a third per source), then times ``--rounds`` readings of the demo plan's ``hub-drift`` gate
(every source compared with its hub copies on ``shop_id`` and ``total``):

- sampled: as the plan has it, ``$sample`` of 200 documents per source;
- full: the same gate with ``sample`` emptied, reading every source document.

A sampled reading should cost about the same at both sizes (bounded by the sample), a full
one should grow with the data. Goal: sampled_large / sampled_small at most 1.5.

Usage: ``python bench/data_gates.py [--small 3000] [--large 30000] [--rounds 5]``. The last
line printed is ``sampled_small_s=A sampled_large_s=B full_small_s=C full_large_s=D growth=E``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rollout.adapters.mongo import connect  # noqa: E402
from rollout.data.data_gates import read_data_gate  # noqa: E402
from rollout.plan import load_plan  # noqa: E402
from rollout.sandbox.mongodb import start_mongodb  # noqa: E402
from rollout.sandbox.processes import free_port  # noqa: E402
from rollout.sandbox.seed import ShopSize, seed_shop  # noqa: E402

PLAN = ROOT / "deployments" / "plans" / "sandbox-demo.yaml"


def main() -> None:
    """Seed, time, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=3_000)
    parser.add_argument("--large", type=int, default=30_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    sampled = load_plan(PLAN).gates["hub-drift"].data
    assert sampled is not None
    full = sampled.model_copy(update={"sample": None})
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as workdir:
        record, uri = start_mongodb(free_port(), Path(workdir))
        client = connect(uri, timeout_ms=10_000)
        try:
            for label, orders in (("small", args.small), ("large", args.large)):
                db = client[f"shop_{label}"]
                seed_shop(db, ShopSize(shops=200, users=1000, orders_per_source=orders // 3, returns=100))
                hub = db["order_hub"].estimated_document_count()
                for kind, gate in (("sampled", sampled), ("full", full)):
                    times = []
                    for _ in range(args.rounds):
                        began = time.perf_counter()
                        value = read_data_gate(db, "hub-drift", gate, datetime.now(UTC))
                        times.append(time.perf_counter() - began)
                    median = figures[f"{kind}_{label}_s"] = statistics.median(times)
                    print(f"{hub:>7,} hub orders, {kind:>7}: median {median:.3f} s, drift {value}")
        finally:
            client.close()
            record.stop()
    growth = figures["sampled_large_s"] / figures["sampled_small_s"]
    print(" ".join(f"{k}={v:.3f}" for k, v in figures.items()) + f" growth={growth:.2f}")


if __name__ == "__main__":
    main()
