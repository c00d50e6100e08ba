"""All preflight checks of the Unified Orders plan against one full scan of the orders, on the same server.

Starts its own SecantusDB, seeds the shop (``--orders`` orders in the hub, a third
per source collection, returns and shops), then alternates, ``--rounds`` times:

- scan: one full scan of ``order_hub`` run on the server (a ``$group`` counting every
  document, so every document is read and nothing is sent back);
- checks: every check of ``deployments/plans/unified-orders.yaml``'s ``preflight``
  (required fields, duplicates, orphans, backfill per source), validated and run the
  way a rollout runs them.

``checks_vs_scan`` is the median of checks / scan. Goal: at most 3.

Usage: ``python bench/preflight.py [--orders 100000] [--rounds 3]``. The last line
printed is ``checks_vs_scan=X checks_s=Y scan_s=Z orders=N``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rollout.adapters.mongo import connect  # noqa: E402
from rollout.data.check_runner import run_check, validate_checks  # noqa: E402
from rollout.data.checks import plan_checks  # noqa: E402
from rollout.plan import load_plan  # noqa: E402
from rollout.sandbox.mongodb import start_mongodb  # noqa: E402
from rollout.sandbox.processes import free_port  # noqa: E402
from rollout.sandbox.seed import ShopSize, seed_shop  # noqa: E402

PLAN = ROOT / "deployments" / "plans" / "unified-orders.yaml"


def main() -> None:
    """Seed, time, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    specs = plan_checks(load_plan(PLAN).preflight)
    with tempfile.TemporaryDirectory() as workdir:
        record, uri = start_mongodb(free_port(), Path(workdir))
        client = connect(uri, timeout_ms=10_000)
        try:
            db = client["shop"]
            start = time.perf_counter()
            per_source = args.orders // 3
            seed_shop(db, ShopSize(shops=500, users=2000, orders_per_source=per_source, returns=2000))
            hub = db["order_hub"].estimated_document_count()
            seeded_s = time.perf_counter() - start
            print(f"seeded {hub:,} hub orders (+ sources, returns, shops) in {seeded_s:.1f} s")

            def scan() -> float:
                began = time.perf_counter()
                list(db["order_hub"].aggregate([{"$group": {"_id": None, "n": {"$sum": 1}}}]))
                return time.perf_counter() - began

            def checks() -> tuple[float, dict[str, float]]:
                began = time.perf_counter()
                validate_checks(db, specs)
                each = {}
                for spec in specs:
                    one = time.perf_counter()
                    result = run_check(db, spec)
                    each[spec.name] = time.perf_counter() - one
                    assert result.passed, result
                return time.perf_counter() - began, each

            ratios, scans, totals = [], [], []
            for round_ in range(1, args.rounds + 1):
                scan_s = scan()
                checks_s, each = checks()
                scans.append(scan_s)
                totals.append(checks_s)
                ratios.append(checks_s / scan_s)
                print(f"round {round_}: scan {scan_s:.2f} s, checks {checks_s:.2f} s, ratio {ratios[-1]:.2f}")
            print("per check (last round): " + ", ".join(f"{k} {v:.2f} s" for k, v in each.items()))
        finally:
            client.close()
            record.stop()
    ratio = statistics.median(ratios)
    print(f"goal checks <= 3x one scan: {'met' if ratio <= 3 else 'missed'}")
    print(
        f"checks_vs_scan={ratio:.2f} checks_s={statistics.median(totals):.2f} "
        f"scan_s={statistics.median(scans):.2f} orders={hub}"
    )


if __name__ == "__main__":
    main()
