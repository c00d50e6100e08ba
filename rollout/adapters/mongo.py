"""MongoDB access through pymongo, with its errors mapped onto ours."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from pymongo import MongoClient
from pymongo.errors import (
    ConnectionFailure,
    DuplicateKeyError,
    OperationFailure,
    PyMongoError,
    WriteConcernError,
)

from rollout.errors import ServiceRejected, ServiceUnavailable

T = TypeVar("T")
SERVICE = "MongoDB"
Document = dict[str, Any]


class DuplicateKey(ServiceRejected):
    """A write would have created a second document with a unique key."""


def connect(uri: str, *, timeout_ms: int = 5000) -> MongoClient[Document]:
    """Open a client; the connection itself is made lazily by pymongo."""
    return MongoClient(
        uri,
        serverSelectionTimeoutMS=timeout_ms,
        connectTimeoutMS=timeout_ms,
        socketTimeoutMS=max(timeout_ms * 6, 30000),
        retryWrites=True,
        retryReads=True,
        tz_aware=True,
    )


@contextmanager
def mongo_errors(action: str) -> Iterator[None]:
    """Translate pymongo exceptions raised inside the block into ours."""
    try:
        yield
    except (ConnectionFailure, WriteConcernError) as error:
        # AutoReconnect, NetworkTimeout and ServerSelectionTimeoutError are ConnectionFailures.
        raise ServiceUnavailable(SERVICE, f"{action}: {error}") from error
    except DuplicateKeyError as error:
        raise DuplicateKey(SERVICE, f"{action}: duplicate key {error.details}") from error
    except OperationFailure as error:
        raise ServiceRejected(SERVICE, f"{action}: {error}") from error
    except PyMongoError as error:
        raise ServiceUnavailable(SERVICE, f"{action}: {error}") from error


def call(action: str, fn: Callable[[], T]) -> T:
    """Run ``fn`` with pymongo errors translated; ``action`` names it in messages."""
    with mongo_errors(action):
        return fn()


def ping(client: MongoClient[Document]) -> None:
    """Fail with :class:`ServiceUnavailable` unless the server answers."""
    call("ping", lambda: client.admin.command("ping"))
