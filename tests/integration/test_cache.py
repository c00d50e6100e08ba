"""Cache invalidation against a real Redis (Debian's redis-server)."""

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from rollout.adapters.cache import delete_matching
from rollout.errors import ServiceUnavailable
from rollout.sandbox.processes import free_port

pytestmark = pytest.mark.integration


@pytest.fixture()
def redis_url(tmp_path: Path) -> Iterator[str]:
    server = shutil.which("redis-server")
    assert server, "redis-server is missing: `make redis` installs it"
    port = free_port()
    process = subprocess.Popen(
        [server, "--port", str(port), "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + 20
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.1)
    yield url
    process.terminate()
    process.wait(10)


def test_only_keys_matching_the_patterns_are_deleted(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    client.mset({f"orders:{i}": "x" for i in range(1200)})
    client.mset({f"orders-summary:{i}": "x" for i in range(3)})
    client.mset({f"sessions:{i}": "x" for i in range(10)})

    deleted = delete_matching(redis_url, ["orders:*", "orders-summary:*"])

    assert deleted == {"orders:*": 1200, "orders-summary:*": 3}
    assert client.dbsize() == 10
    assert delete_matching(redis_url, ["orders:*"]) == {"orders:*": 0}


def test_a_redis_that_is_down_is_unavailable_not_empty() -> None:
    with pytest.raises(ServiceUnavailable, match="Redis unavailable"):
        delete_matching(f"redis://127.0.0.1:{free_port()}/0", ["orders:*"], timeout=1)
