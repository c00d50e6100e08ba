"""Sticky flag decisions per second on one core: the service's check of a flag for each request.

Measures ``FlagState.admits`` (allowlist, then Unleash-compatible murmur3 bucket
against the percentage) over a million distinct users, and the bare bucket
function beside it, single-threaded. Goal: at least 1,000,000 decisions a second.

Usage: ``python bench/bucketing.py [--users 1000000]``. The last line printed is
``decisions_per_s=X bucket_per_s=Y admitted_share=Z``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rollout.audience.bucketing import bucket  # noqa: E402
from rollout.audience.flag_state import FlagState  # noqa: E402


def best_of(runs: int, action: object) -> float:
    """The fastest of ``runs`` timings of ``action()`` (the least disturbed by a noisy machine)."""
    assert callable(action)
    timings = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        timings.append(time.perf_counter() - start)
    return min(timings)


def main() -> None:
    """Time the decisions and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core, as the goal says
    users = [f"user-{i:07d}@example.com" for i in range(args.users)]
    flag = FlagState(
        name="USE_UNIFIED_ORDERS", enabled=True, percentage=25, users=("admin@example.com", "dev@example.com")
    )
    admitted = 0

    def decide() -> None:
        nonlocal admitted
        admitted = sum(1 for user in users if flag.admits(user, "shop-0001"))

    decide_s = best_of(3, decide)
    bucket_s = best_of(3, lambda: [bucket(flag.name, user) for user in users])
    decisions = args.users / decide_s
    buckets = args.users / bucket_s
    share = admitted / args.users
    print(f"users: {args.users:,} (distinct), one core, best of 3")
    print(f"FlagState.admits: {decisions:,.0f} decisions/s ({decide_s:.2f} s); admitted {share:.1%} at 25%")
    print(f"bucket():         {buckets:,.0f} buckets/s ({bucket_s:.2f} s)")
    print(f"goal >= 1,000,000 decisions/s: {'met' if decisions >= 1_000_000 else 'missed'}")
    print(f"decisions_per_s={decisions:.0f} bucket_per_s={buckets:.0f} admitted_share={share:.4f}")


if __name__ == "__main__":
    main()
