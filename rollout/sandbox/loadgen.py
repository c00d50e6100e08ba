"""A steady stream of requests from many synthetic users, so Prometheus has traffic to judge."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import signal

import httpx

from rollout.sandbox.seed import INTERNAL_USERS, shop_id, user_id


async def generate(
    url: str,
    *,
    users: int,
    shops: int,
    rate: float,
    stop: asyncio.Event,
    rng: random.Random | None = None,
) -> int:
    """Send about ``rate`` requests a second to ``url``/orders until ``stop`` is set.

    Returns how many requests were sent. Failures are the service's business
    (it counts them); the generator only keeps the pace.
    """
    rng = rng or random.Random()
    sent = 0
    pending: set[asyncio.Task[None]] = set()
    limits = httpx.Limits(max_connections=32)
    async with httpx.AsyncClient(base_url=url, timeout=10.0, limits=limits) as client:

        async def one() -> None:
            # A few requests come from internal staff, as in production.
            who = rng.choice(INTERNAL_USERS) if rng.random() < 0.1 else user_id(rng.randrange(users))
            params = {"user": who, "store": shop_id(rng.randrange(shops))}
            with contextlib.suppress(httpx.HTTPError):
                await client.get("/orders", params=params)

        loop = asyncio.get_running_loop()
        start = loop.time()
        while not stop.is_set():
            due = start + sent / rate
            delay = due - loop.time()
            if delay > 0:
                try:
                    await asyncio.wait_for(stop.wait(), timeout=delay)
                    break
                except TimeoutError:
                    pass
            task = asyncio.create_task(one())
            pending.add(task)
            task.add_done_callback(pending.discard)
            sent += 1
        if pending:
            await asyncio.wait(pending, timeout=5)
    return sent


def main(argv: list[str] | None = None) -> None:
    """Generate load until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--shops", type=int, default=60)
    parser.add_argument("--rate", type=float, default=40.0, help="requests per second")
    parser.add_argument("--state-dir", help="sandbox directory (identifies the process)")
    args = parser.parse_args(argv)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await generate(args.url, users=args.users, shops=args.shops, rate=args.rate, stop=stop)

    asyncio.run(run())


if __name__ == "__main__":
    main()
