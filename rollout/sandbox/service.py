"""The sandbox's orders service: a real HTTP app whose code path follows the feature flag.

Each request names a user (and optionally a store); the flag decides whether it
takes the ``candidate`` or the ``stable`` path: read from the MongoDB flag store the
orchestrator writes and evaluated with the same bucketing code, or asked of Unleash's
or OpenFeature's SDK when the flags live there (:mod:`rollout.sandbox.sdk_flags`).
The app exports ``http_requests_total{status,variant}`` and the
``http_request_duration_seconds{variant}`` histogram on ``/metrics``, answers ``/health``,
and takes faults on ``/fault`` so a candidate can be made to fail or slow down.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import uvicorn
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from rollout.adapters.fences import COLLECTION as FENCES
from rollout.adapters.fences import FenceStore
from rollout.adapters.flagd import FlagdFile
from rollout.adapters.flags import FlagProvider, FlagStore
from rollout.adapters.mongo import connect
from rollout.adapters.unleash import UnleashFlags
from rollout.audience.bucketing import InvalidUserId
from rollout.audience.flag_state import FlagState
from rollout.errors import RolloutError
from rollout.sandbox.release import deployed
from rollout.sandbox.sdk_flags import Decider, FlagdDecider, UnleashDecider
from rollout.sandbox.unleash import ADMIN_TOKEN_ENV, BACKEND_TOKEN_ENV

VARIANTS = ("stable", "candidate")
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0)


@dataclass(frozen=True)
class Fault:
    """Injected misbehaviour of one variant."""

    error_rate: float = 0.0
    latency_seconds: float = 0.0


class FlagCache:
    """Keeps a recent copy of one flag, refreshed by a background thread."""

    def __init__(self, store: FlagProvider, name: str, refresh_seconds: float) -> None:
        self.state = FlagState(name=name)
        self.healthy = False
        self._store, self._name, self._refresh = store, name, refresh_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="flag-refresh", daemon=True)

    def start(self) -> None:
        """Read the flag once, then keep it fresh in the background."""
        self.refresh()
        self._thread.start()

    def stop(self) -> None:
        """Stop refreshing."""
        self._stop.set()

    def refresh(self) -> None:
        """Read the flag now."""
        try:
            self.state = self._store.get(self._name)
            self.healthy = True
        except RolloutError:
            # Keep serving with the last known flag; /health reports the outage.
            self.healthy = False

    def _run(self) -> None:
        while not self._stop.wait(self._refresh):
            self.refresh()


class OrdersService:
    """The app's state: flag cache, faults and metrics."""

    def __init__(
        self,
        flags: FlagCache,
        rng: random.Random | None = None,
        state_dir: str | None = None,
        decider: Decider | None = None,
    ) -> None:
        self.flags = flags
        self.decider = decider
        self.state_dir = state_dir
        self.faults = {variant: Fault() for variant in VARIANTS}
        self.purges = 0
        self.rng = rng or random.Random()
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "http_requests_total", "Requests served.", ["status", "variant"], registry=self.registry
        )
        self.duration = Histogram(
            "http_request_duration_seconds",
            "Request duration.",
            ["variant"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.flag_percentage = Gauge(
            "feature_flag_percentage",
            "Percentage the service sees.",
            ["flag"],
            registry=self.registry,
        )
        # Series exist from the start, so a ratio reads 0 rather than "no data" before any error.
        for variant in VARIANTS:
            self.duration.labels(variant)
            for status in ("200", "500"):
                self.requests.labels(status, variant)

    async def orders(self, request: Request) -> Response:
        """Serve an order listing through the variant the flag picks for this user."""
        user = request.query_params.get("user")
        store = request.query_params.get("store")
        state = self.flags.state
        try:
            admitted = self.decider.admits(user, store) if self.decider else state.admits(user, store)
            variant = "candidate" if admitted else "stable"
        except InvalidUserId as error:
            return JSONResponse({"error": str(error)}, status_code=400)
        fault = self.faults[variant]
        delay = self.rng.uniform(0.004, 0.03) + fault.latency_seconds
        await asyncio.sleep(delay)
        failed = self.rng.random() < fault.error_rate
        status = 500 if failed else 200
        self.requests.labels(str(status), variant).inc()
        self.duration.labels(variant).observe(delay)
        body = {"variant": variant, "user": user, "store": store, "flag_version": state.version}
        return JSONResponse(body if not failed else {"error": "injected fault"}, status_code=status)

    async def health(self, request: Request) -> Response:
        """Report whether the flag store is reachable, and which release runs."""
        ok = self.flags.healthy
        body = {"status": "ok" if ok else "degraded", "version": deployed(self.state_dir)}
        return JSONResponse(body, status_code=200 if ok else 503)

    async def metrics(self, request: Request) -> Response:
        """Prometheus exposition of the service's metrics."""
        state = self.flags.state
        self.flag_percentage.labels(state.name).set(state.percentage if state.enabled else 0)
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)

    async def cache(self, request: Request) -> Response:
        """``POST /cache/purge`` reads the flag again at once; ``GET /cache`` counts purges."""
        if request.method == "POST":
            self.purges += 1
            await asyncio.to_thread(self.flags.refresh)
        return JSONResponse({"purges": self.purges})

    async def fault(self, request: Request) -> Response:
        """GET shows faults; PUT ``{variant, error_rate, latency_seconds}`` sets one; DELETE clears."""
        if request.method == "DELETE":
            self.faults = {variant: Fault() for variant in VARIANTS}
        elif request.method == "PUT":
            body: dict[str, Any] = await request.json()
            variant = body.get("variant", "candidate")
            if variant not in VARIANTS:
                return JSONResponse({"error": f"variant must be one of {VARIANTS}"}, 400)
            try:
                self.faults[variant] = replace(
                    self.faults[variant],
                    error_rate=float(body.get("error_rate", 0.0)),
                    latency_seconds=float(body.get("latency_seconds", 0.0)),
                )
            except (TypeError, ValueError):
                return JSONResponse({"error": "error_rate and latency_seconds are numbers"}, 400)
        return JSONResponse({v: vars(f) for v, f in self.faults.items()})


def build_app(service: OrdersService) -> Starlette:
    """Wire the service's handlers into an ASGI app."""
    return Starlette(
        routes=[
            Route("/orders", service.orders),
            Route("/health", service.health),
            Route("/metrics", service.metrics),
            Route("/fault", service.fault, methods=["GET", "PUT", "DELETE"]),
            Route("/cache", service.cache, methods=["GET"]),
            Route("/cache/purge", service.cache, methods=["POST"]),
        ]
    )


def main(argv: list[str] | None = None) -> None:
    """Run the service until it is stopped."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mongodb-uri", required=True)
    parser.add_argument("--database", required=True)
    parser.add_argument("--flag", required=True)
    parser.add_argument("--flag-collection", default="feature_flags")
    parser.add_argument("--flags", choices=("mongodb", "unleash", "flagd"), default="mongodb")
    parser.add_argument(
        "--unleash-url", help=f"with --flags unleash; tokens in ${ADMIN_TOKEN_ENV}, ${BACKEND_TOKEN_ENV}"
    )
    parser.add_argument("--flagd-path", help="with --flags flagd: the flag file")
    parser.add_argument("--refresh-seconds", type=float, default=0.5)
    parser.add_argument("--state-dir", help="sandbox directory (identifies the process)")
    args = parser.parse_args(argv)
    client = connect(args.mongodb_uri)
    store: FlagProvider
    decider: Decider | None = None
    if args.flags == "unleash":
        fences = FenceStore(client[args.database][FENCES], "unleash")
        store = UnleashFlags(args.unleash_url, os.environ[ADMIN_TOKEN_ENV], "default", "development", fences)
        cache_dir = Path(args.state_dir or ".") / "unleash-sdk-cache"
        decider = UnleashDecider(args.unleash_url, os.environ[BACKEND_TOKEN_ENV], args.flag, cache_dir)
    elif args.flags == "flagd":
        store = FlagdFile(args.flagd_path)
        decider = FlagdDecider(Path(args.flagd_path), args.flag)
    else:
        store = FlagStore(client[args.database][args.flag_collection])
    cache = FlagCache(store, args.flag, args.refresh_seconds)
    cache.start()
    app = build_app(OrdersService(cache, state_dir=args.state_dir, decider=decider))
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
