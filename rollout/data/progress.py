"""Progress of long data work, reported as documents done out of a total."""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[int, int], None]
"""Called with (documents done, documents in all) as work advances."""


def no_progress(done: int, total: int) -> None:
    """A :data:`Progress` that reports nothing."""


class Counter:
    """Adds up batch sizes and reports the running total to a :data:`Progress`."""

    def __init__(self, total: int, report: Progress) -> None:
        self.total = total
        self.done = 0
        self._report = report
        report(0, total)

    def add(self, documents: int) -> None:
        """Count ``documents`` more and report."""
        self.done += documents
        # Estimates can be low while writes go on; never report more than 100 %.
        self.total = max(self.total, self.done)
        self._report(self.done, self.total)
