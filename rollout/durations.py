"""Durations as users write them in plans: ``30s``, ``5m``, ``1h30m``, ``2d`` or seconds."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer

_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")


def parse_duration(value: Any) -> timedelta:
    """Turn ``value`` into a :class:`timedelta`.

    Accepts a timedelta, a number of seconds, or a string of number-unit pairs
    (``ms``, ``s``, ``m``, ``h``, ``d``) such as ``"1h30m"``.
    """
    try:
        return _parsed(value)
    except OverflowError:
        raise ValueError(f"{value!r} is beyond any duration a rollout can use") from None


def _parsed(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError("expected a duration such as '30s', '5m' or '1h', not a boolean")
    if isinstance(value, int | float):
        return timedelta(seconds=value)
    if isinstance(value, str):
        text = value.strip().replace(" ", "")
        if re.fullmatch(r"\d+(\.\d+)?", text):
            return timedelta(seconds=float(text))
        if text and _PART.sub("", text) == "":
            seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in _PART.findall(text))
            return timedelta(seconds=seconds)
    raise ValueError(f"expected a duration such as '30s', '5m' or '1h', got {value!r}")


def format_duration(value: timedelta) -> str:
    """Write ``value`` back in the short form plans use (``90s`` -> ``1m30s``)."""
    total = value.total_seconds()
    if total != int(total):
        return f"{total:g}s"
    seconds = int(total)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
]
"""A pydantic field type for durations written as ``30s``, ``5m``, ``1h`` or seconds."""
