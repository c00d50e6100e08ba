"""Reading ahead in a background thread, so the server works while we compress and upload."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar, cast

T = TypeVar("T")
_DONE = object()
_POLL_SECONDS = 0.1


def read_ahead(source: Iterable[T], depth: int = 2) -> Iterator[T]:
    """Yield ``source``'s items, fetched by a background thread at most ``depth`` items ahead.

    An exception in ``source`` is raised here, in the consumer, at the point it
    occurred; if the consumer stops early, the thread stops too.
    """
    items: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                items.put(item, timeout=_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in source:
                if not put(item):
                    return
        except BaseException as error:  # handed to the consumer, which raises it
            put(error)
            return
        put(_DONE)

    worker = threading.Thread(target=produce, name="read-ahead", daemon=True)
    worker.start()
    try:
        while True:
            item = items.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield cast(T, item)
    finally:
        stop.set()
        worker.join()
