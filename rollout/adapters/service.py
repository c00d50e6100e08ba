"""The service under rollout, over HTTP: health, the smoke scenario, cache purges."""

from __future__ import annotations

import httpx

from rollout.analysis.health_watch import Probe
from rollout.breaker import guarded
from rollout.errors import ServiceUnavailable
from rollout.plan.model import ServiceTarget, SmokeRequest

SERVICE = "service"


class ServiceClient:
    """Requests to the service's base URL with the plan's headers (secrets already resolved)."""

    def __init__(
        self,
        target: ServiceTarget,
        headers: dict[str, str],
        *,
        base_url: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        """``base_url`` is the target's with its secrets resolved (default: the target's as written)."""
        self.target = target
        url = (base_url or target.base_url).rstrip("/")
        self._http = httpx.Client(base_url=url, headers=headers, timeout=timeout)

    def close(self) -> None:
        """Release the connection pool."""
        self._http.close()

    def _send(self, method: str, path: str, json_body: object = None) -> httpx.Response:
        def send() -> httpx.Response:
            try:
                response = self._http.request(method, path, json=json_body)
            except httpx.TransportError as error:
                raise ServiceUnavailable(
                    SERVICE, f"{method} {path}: {type(error).__name__}: {error}"
                ) from error
            if response.status_code >= 500:
                raise ServiceUnavailable(SERVICE, f"{method} {path}: HTTP {response.status_code}")
            return response

        return guarded(SERVICE, self.target.base_url, send)

    def health(self) -> Probe:
        """``GET health_path``: healthy on a 2xx answer."""
        path = self.target.health_path
        try:
            response = self._send("GET", path)
        except ServiceUnavailable as error:
            return Probe("health", False, error.detail, transient=True)
        ok = response.is_success
        return Probe("health", ok, f"GET {path}: HTTP {response.status_code}")

    def running_version(self, field: str) -> str | None:
        """The version the health endpoint reports in its JSON ``field`` (None: no such answer)."""
        try:
            response = self._send("GET", self.target.health_path)
            found = response.json().get(field) if response.is_success else None
        except (ServiceUnavailable, ValueError, AttributeError):
            return None
        return None if found is None else str(found)

    def smoke(self, request: SmokeRequest) -> Probe:
        """One request of the smoke scenario, checked against its expected status."""
        try:
            response = self._send(request.method, request.path, request.json_body)
        except ServiceUnavailable as error:
            return Probe(request.name, False, error.detail, transient=True)
        ok = response.status_code == request.expect_status
        detail = f"{request.method} {request.path}: HTTP {response.status_code}"
        return Probe(request.name, ok, detail if ok else f"{detail}, expected {request.expect_status}")


def purge(url: str, headers: dict[str, str], *, timeout: float = 10.0) -> Probe:
    """``POST`` to a cache's purge URL; purged on a 2xx answer."""
    try:
        response = guarded(SERVICE, url, lambda: httpx.post(url, headers=headers, timeout=timeout))
    except httpx.TransportError as error:
        return Probe("cache purge", False, f"POST {url}: {type(error).__name__}: {error}")
    return Probe("cache purge", response.is_success, f"POST {url}: HTTP {response.status_code}")
