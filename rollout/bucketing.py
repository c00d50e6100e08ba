"""Sticky percentage bucketing, bit-compatible with Unleash's ``normalizedHash``.

A user's bucket is ``murmur3_x86_32(f"{group}:{user}", seed=0) % 100 + 1``
(the hash taken unsigned), a number from 1 to 100 that never changes for the
same group and user. A user is admitted at ``percentage`` when the bucket is at
most ``percentage``, so anyone admitted at 10 % stays admitted at 25 %.
"""

from __future__ import annotations

import mmh3

BUCKETS = 100


def bucket(group: str, user: str) -> int:
    """Return the user's stable bucket, 1..100, within ``group`` (usually the flag name)."""
    return int(mmh3.hash(f"{group}:{user}", 0, signed=False)) % BUCKETS + 1


def admitted(group: str, user: str, percentage: float) -> bool:
    """Tell whether ``user`` falls inside the first ``percentage`` percent of ``group``."""
    if percentage <= 0:
        return False
    return bucket(group, user) <= percentage
