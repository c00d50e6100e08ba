"""Something done every so often from a thread while a block of code runs: a lease or a lock kept alive."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def every(seconds: float, beat: Callable[[], bool], name: str) -> Iterator[None]:
    """Call ``beat`` every ``seconds`` from a daemon thread until the block ends or ``beat`` returns False."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(seconds):
            if not beat():
                return

    thread = threading.Thread(target=loop, name=name, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
