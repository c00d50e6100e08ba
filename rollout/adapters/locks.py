"""A lock held in MongoDB, so that work on one database from several processes goes one at a time.

One document per lock in the database concerned (``rollout_locks``): its holder
and when it expires. The holder renews it while it works; one that dies stops
renewing, and the lock is free once it has expired (taken over at once by the
next one to ask, and removed by MongoDB's TTL monitor if nobody does).
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from pymongo.collection import Collection

from rollout.adapters.mongo import Document, DuplicateKey, call
from rollout.beat import every
from rollout.errors import RolloutError, TransientError

LOCKS = "rollout_locks"
"""The collection holding the locks, in the database they protect."""


class LockTimeout(TransientError):
    """The lock stayed taken for longer than the caller would wait."""


def holder_name(what: str) -> str:
    """A holder id naming ``what`` and the process, unique per call."""
    return f"{what} on {socket.gethostname()} pid {os.getpid()} ({uuid.uuid4().hex[:8]})"


class MongoLock:
    """A named lock in ``collection``; ``clock`` and ``sleep`` are injected so waits test instantly."""

    def __init__(
        self,
        collection: Collection[Document],
        name: str,
        holder: str,
        *,
        ttl: timedelta = timedelta(minutes=2),
        poll: timedelta = timedelta(seconds=1),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._locks = collection
        self.name = name
        self.holder = holder
        self._ttl = ttl
        self._poll = poll
        self._clock = clock
        self._sleep = sleep
        call(
            f"index {collection.name}",
            lambda: collection.create_index("expires_at", expireAfterSeconds=0),
        )

    def try_acquire(self) -> bool:
        """Take the lock if it is free or expired; False when someone else holds it."""
        now = self._clock()
        mine = {"holder": self.holder, "since": now, "expires_at": now + self._ttl}
        try:
            call(f"take lock {self.name}", lambda: self._locks.insert_one({"_id": self.name, **mine}))
            return True
        except DuplicateKey:
            pass
        expired = {"_id": self.name, "expires_at": {"$lt": now}}
        taken = call(
            f"take expired lock {self.name}", lambda: self._locks.update_one(expired, {"$set": mine})
        )
        return taken.modified_count == 1

    def current(self) -> Document | None:
        """The lock's document: who holds it since when, until when."""
        return call(f"read lock {self.name}", lambda: self._locks.find_one({"_id": self.name}))

    def acquire(self, wait: timedelta) -> None:
        """Take the lock, waiting up to ``wait`` for its holder to let go; :class:`LockTimeout` otherwise."""
        deadline = self._clock() + wait
        while not self.try_acquire():
            if self._clock() >= deadline:
                held = self.current() or {}
                raise LockTimeout(
                    f"{self.name} is held by {held.get('holder', 'someone')} since {held.get('since')}: "
                    f"waited {wait}; try again once it is done"
                )
            self._sleep(self._poll.total_seconds())

    def renew(self) -> bool:
        """Push the expiry on; False when the lock is no longer ours (it expired and was taken)."""
        until = self._clock() + self._ttl
        renewed = call(
            f"renew lock {self.name}",
            lambda: self._locks.update_one(
                {"_id": self.name, "holder": self.holder}, {"$set": {"expires_at": until}}
            ),
        )
        return renewed.matched_count == 1

    def release(self) -> None:
        """Let go of the lock, if it is still ours."""
        call(
            f"release lock {self.name}",
            lambda: self._locks.delete_one({"_id": self.name, "holder": self.holder}),
        )

    @contextmanager
    def held(self, wait: timedelta) -> Iterator[None]:
        """Hold the lock for the block, renewing it from a thread every third of its TTL."""
        self.acquire(wait)

        def renew() -> bool:
            with contextlib.suppress(RolloutError):  # a missed renewal is retried at the next beat
                self.renew()
            return True

        try:
            with every(self._ttl.total_seconds() / 3, renew, f"lock {self.name}"):
                yield
        finally:
            self.release()
