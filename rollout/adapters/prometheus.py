"""Prometheus's HTTP API over httpx: instant and range queries, errors mapped onto ours."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from rollout.breaker import guarded
from rollout.errors import ServiceRejected, ServiceUnavailable

SERVICE = "Prometheus"


@dataclass(frozen=True)
class Sample:
    """One value of one series at one time."""

    labels: dict[str, str]
    timestamp: float
    value: float

    @property
    def is_number(self) -> bool:
        """False for NaN and infinities, which never count as a measurement."""
        return math.isfinite(self.value)


@dataclass(frozen=True)
class Series:
    """One series of a range query."""

    labels: dict[str, str]
    points: tuple[tuple[float, float], ...]


class PrometheusClient:
    """A small client for ``/api/v1/query`` and ``/api/v1/query_range``."""

    def __init__(
        self,
        url: str,
        *,
        bearer_token: str | None = None,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {bearer_token}"} if bearer_token else {}
        self.url = url.rstrip("/")
        self._http = httpx.Client(
            base_url=url.rstrip("/"), headers=headers, timeout=timeout, transport=transport
        )

    def close(self) -> None:
        """Release the connection pool."""
        self._http.close()

    def __enter__(self) -> PrometheusClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def query(self, promql: str, at: datetime | None = None) -> list[Sample]:
        """Evaluate ``promql`` at one instant (now by default) and return its vector."""
        params: dict[str, Any] = {"query": promql}
        if at is not None:
            params["time"] = at.timestamp()
        data = self._get("/api/v1/query", params)
        kind, result = data["resultType"], data["result"]
        if kind == "scalar":
            return [Sample({}, float(result[0]), float(result[1]))]
        if kind != "vector":
            raise ServiceRejected(SERVICE, f"expected a vector from {promql!r}, got a {kind}")
        return [Sample(r["metric"], float(r["value"][0]), float(r["value"][1])) for r in result]

    def query_range(self, promql: str, start: datetime, end: datetime, step: float) -> list[Series]:
        """Evaluate ``promql`` every ``step`` seconds from ``start`` to ``end``."""
        params = {"query": promql, "start": start.timestamp(), "end": end.timestamp(), "step": step}
        data = self._get("/api/v1/query_range", params)
        return [
            Series(r["metric"], tuple((float(t), float(v)) for t, v in r["values"])) for r in data["result"]
        ]

    def ready(self) -> bool:
        """Whether the server says it is ready to serve queries."""
        try:
            return self._http.get("/-/ready").status_code == 200
        except httpx.TransportError:
            return False

    def _get(self, path: str, params: dict[str, Any]) -> dict[str, Any]:
        return guarded(SERVICE, self.url, lambda: self._send(path, params))

    def _send(self, path: str, params: dict[str, Any]) -> dict[str, Any]:
        try:
            response = self._http.get(path, params=params)
        except httpx.TransportError as error:
            raise ServiceUnavailable(SERVICE, f"{type(error).__name__}: {error}") from error
        if response.status_code >= 500:
            raise ServiceUnavailable(SERVICE, f"HTTP {response.status_code}: {_error_text(response)}")
        if response.status_code >= 400:
            raise ServiceRejected(SERVICE, f"HTTP {response.status_code}: {_error_text(response)}")
        try:
            body = response.json()
        except ValueError as error:
            raise ServiceUnavailable(SERVICE, "answered with something that is not JSON") from error
        if body.get("status") != "success":
            raise ServiceRejected(SERVICE, str(body.get("error", body)))
        data: dict[str, Any] = body["data"]
        return data


def _error_text(response: httpx.Response) -> str:
    try:
        return str(response.json().get("error", response.text))
    except ValueError:
        return response.text[:200]
