"""A preflight data check's outcome: passed or not, how many documents failed it, and examples."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CheckResult:
    """One check's outcome."""

    name: str
    kind: str
    collection: str
    passed: bool
    failing: int
    checked: int | None
    detail: str
    samples: tuple[str, ...]
