"""How the sandbox's orders service decides a request's variant: as a real application would.

With MongoDB flags the service applies :meth:`FlagState.admits` (the code the orchestrator
counts with). With Unleash or flagd it asks the provider's own SDK, as the teams' services
do: Unleash's Python SDK against the server, or OpenFeature's flagd provider reading the
file in process. Either way a user id that is not valid Unicode is refused first.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Protocol

from openfeature import api
from openfeature.contrib.provider.flagd import FlagdProvider
from openfeature.contrib.provider.flagd.config import ResolverType
from openfeature.evaluation_context import EvaluationContext
from openfeature.provider import ProviderStatus
from UnleashClient.clients.unleash_client import UnleashClient

from rollout.audience.bucketing import InvalidUserId
from rollout.errors import SandboxError


class Decider(Protocol):
    """Whether a request from ``user`` at ``store`` takes the new code path."""

    def admits(self, user: str | None, store: str | None) -> bool:
        """Ask the flag's SDK."""
        ...

    def close(self) -> None:
        """Stop the SDK's background work."""
        ...


def check_user(user: str | None) -> None:
    """Refuse a user id with no UTF-8 form, which no SDK can hash alike."""
    if user:
        try:
            user.encode()
        except UnicodeEncodeError as error:
            raise InvalidUserId(f"user id {user!r} is not valid Unicode ({error.reason})") from None


class UnleashDecider:
    """Unleash's Python SDK, polling the server's client API every second with a backend token."""

    def __init__(
        self, url: str, backend_token: str, flag: str, cache_dir: Path, store_field: str = "storeId"
    ):
        self._flag, self._store_field = flag, store_field
        self._client = UnleashClient(
            url=f"{url.rstrip('/')}/api",
            app_name="orders",
            refresh_interval=1,
            custom_headers={"Authorization": backend_token},
            disable_metrics=True,
            disable_registration=True,
            cache_directory=str(cache_dir),
        )
        self._client.initialize_client()

    def admits(self, user: str | None, store: str | None) -> bool:
        """``is_enabled`` with the user's id and the store as a context property."""
        check_user(user)
        context: dict[str, object] = {"properties": {self._store_field: store} if store else {}}
        if user:
            context["userId"] = user
        return bool(self._client.is_enabled(self._flag, context))

    def close(self) -> None:
        """Stop the SDK's poller."""
        self._client.destroy()


class FlagdDecider:
    """OpenFeature's flagd provider, in process, reading the flag file (polled every half second)."""

    def __init__(self, path: Path, flag: str, store_field: str = "storeId") -> None:
        self._flag, self._store_field = flag, store_field
        # The provider polls the file every FLAGD_OFFLINE_POLL_MS (5 s by default): half a second here.
        os.environ.setdefault("FLAGD_OFFLINE_POLL_MS", "500")
        self._provider = FlagdProvider(resolver_type=ResolverType.FILE, offline_flag_source_path=str(path))
        domain = f"orders-{flag}"
        api.set_provider(self._provider, domain)
        self._client = api.get_client(domain)
        deadline = time.monotonic() + 30
        # The file is loaded on the provider's thread; until then every evaluation is an error.
        while self._client.get_provider_status() != ProviderStatus.READY:
            if time.monotonic() > deadline:
                raise SandboxError(
                    f"the flagd provider did not load {path}: {self._client.get_provider_status()}"
                )
            time.sleep(0.05)

    def admits(self, user: str | None, store: str | None) -> bool:
        """``get_boolean_value`` with the user as targeting key and the store as an attribute."""
        check_user(user)
        context = EvaluationContext(
            targeting_key=user or None, attributes={self._store_field: store} if store else {}
        )
        return self._client.get_boolean_value(self._flag, False, context)

    def close(self) -> None:
        """Stop the provider's file watcher."""
        self._provider.shutdown()
