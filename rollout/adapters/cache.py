"""Cache invalidation in Redis: keys matching the plan's patterns, deleted without blocking the server."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import redis

from rollout.breaker import guarded
from rollout.errors import ServiceRejected, ServiceUnavailable

SERVICE = "Redis"
BATCH = 500


@contextmanager
def redis_errors(action: str) -> Iterator[None]:
    """Translate redis-py exceptions raised inside the block into ours."""
    try:
        yield
    except (redis.ConnectionError, redis.TimeoutError) as error:
        raise ServiceUnavailable(SERVICE, f"{action}: {error}") from error
    except redis.RedisError as error:
        raise ServiceRejected(SERVICE, f"{action}: {error}") from error


def delete_matching(url: str, patterns: Sequence[str], *, timeout: float = 10.0) -> dict[str, int]:
    """Delete every key matching each pattern (``SCAN`` + ``UNLINK``); returns the count per pattern."""
    client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        return guarded(SERVICE, _endpoint(url), lambda: _delete(client, patterns))
    finally:
        client.close()


def _delete(client: redis.Redis, patterns: Sequence[str]) -> dict[str, int]:
    deleted: dict[str, int] = {}
    for pattern in patterns:
        count = 0
        with redis_errors(f"delete keys matching {pattern!r}"):
            batch: list[bytes] = []
            # SCAN walks the keyspace in steps, so a large cache never blocks the server as KEYS would.
            for key in client.scan_iter(match=pattern, count=1000):
                batch.append(key)
                if len(batch) >= BATCH:
                    count += int(client.unlink(*batch))
                    batch.clear()
            if batch:
                count += int(client.unlink(*batch))
        deleted[pattern] = count
    return deleted


def _endpoint(url: str) -> str:
    """The URL without credentials, to name the breaker."""
    rest = url.split("://", 1)[-1]
    return url.split("://", 1)[0] + "://" + rest.rsplit("@", 1)[-1]
