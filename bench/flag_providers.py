"""How long a flag write takes in each provider, and how long until the service acts on it.

For each provider (MongoDB documents, a flagd file, a real Unleash server on PostgreSQL) it
starts a sandbox with its flags there (no Prometheus, no load), then ``--rounds`` times flips
the main flag between 100 % and 0 % through the provider interface, as a rollout step does
(read the version, write with it, read back), and polls the sandbox's orders service, which
decides through that provider's SDK, until one user's requests take the new path.

- write: the provider's ``set``, read-back included;
- seen: from the write's return to the service answering with the new variant (the SDK's
  polling: MongoDB every 0.5 s, the flagd file every 0.5 s, Unleash every 1 s behind the
  server's own cache of its client API).

Goal: every provider's p95 ``seen`` under 5 s, half the SLIs' 10 s rate window that a step's
first measurement waits out, so a gate never judges a step on readings from before it.

Usage: ``python bench/flag_providers.py [--rounds 20] [--providers mongodb,flagd,unleash]``. The
last line is ``<provider>_write_ms=A <provider>_seen_p50_s=B <provider>_seen_p95_s=C ...``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rollout.adapters.clients import Clients  # noqa: E402
from rollout.audience.flag_state import FlagChange  # noqa: E402
from rollout.sandbox.stack import FlagsMode, Sandbox, SandboxOptions  # noqa: E402

PROBE_USER = "probe-user@example.com"


def measure(mode: FlagsMode, rounds: int) -> tuple[list[float], list[float]]:
    """Write and seen times, in seconds, of ``rounds`` flips of the main flag."""
    writes, seen = [], []
    sandbox = Sandbox(SandboxOptions(flags=mode, prometheus="off", load_rate=0))
    with (
        sandbox as info,
        Clients(info.targets()) as clients,
        httpx.Client(base_url=info.service_url) as service,
    ):
        flags = clients.flags
        for i in range(rounds):
            percentage = 100 if i % 2 == 0 else 0
            version = flags.get(info.flag).version
            change = FlagChange(enabled=percentage > 0, percentage=percentage)
            started = time.perf_counter()
            flags.set(info.flag, change, expected_version=version)
            written = time.perf_counter()
            wanted = "candidate" if percentage else "stable"
            deadline = written + 30
            while service.get("/orders", params={"user": PROBE_USER}).json()["variant"] != wanted:
                if time.perf_counter() > deadline:
                    raise SystemExit(f"{mode}: the service never took {percentage}%")
                time.sleep(0.01)
            writes.append(written - started)
            seen.append(time.perf_counter() - written)
    return writes, seen


def p95(values: list[float]) -> float:
    """The 95th percentile (inclusive method)."""
    return statistics.quantiles(values, n=20, method="inclusive")[-1]


def main() -> None:
    """Measure each provider named, print a line each, then the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--providers", default="mongodb,flagd,unleash")
    args = parser.parse_args()
    figures: dict[str, float] = {}
    for mode in args.providers.split(","):
        writes, seen = measure(mode, args.rounds)  # type: ignore[arg-type]
        figures[f"{mode}_write_ms"] = statistics.median(writes) * 1000
        figures[f"{mode}_seen_p50_s"] = statistics.median(seen)
        figures[f"{mode}_seen_p95_s"] = p95(seen)
        print(
            f"{mode:>8}: write median {figures[f'{mode}_write_ms']:.1f} ms, seen by the service "
            f"median {figures[f'{mode}_seen_p50_s']:.2f} s, p95 {figures[f'{mode}_seen_p95_s']:.2f} s",
            flush=True,
        )
    met = all(v < 5 for k, v in figures.items() if k.endswith("_seen_p95_s"))
    print(" ".join(f"{k}={v:.3f}" for k, v in figures.items()) + f" goal_met={met}")


if __name__ == "__main__":
    main()
