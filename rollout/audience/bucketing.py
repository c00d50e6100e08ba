"""Sticky percentage bucketing, bit-compatible with Unleash's ``normalizedHash``.

A user's bucket is ``murmur3_x86_32(f"{group}:{user}", seed=0) % 100 + 1``
(the hash taken unsigned), a number from 1 to 100 that never changes for the
same group and user. A user is admitted at ``percentage`` when the bucket is at
most ``percentage``, so anyone admitted at 10 % stays admitted at 25 %.

The hash is taken over the UTF-8 bytes, as every Unleash SDK but Node's does. An empty
user id is no user (as in Unleash): it has no bucket and is admitted by no percentage.
An id that is not valid Unicode (a lone surrogate, which a JSON ``\ud800`` escape can
carry) has no UTF-8 form and is refused with :class:`InvalidUserId`.
"""

from __future__ import annotations

import mmh3

from rollout.errors import InputRejected

BUCKETS = 100


class InvalidUserId(InputRejected):
    """A user id with no UTF-8 form (a lone surrogate), so no bucket either."""


def bucket(group: str, user: str) -> int:
    """Return the user's stable bucket, 1..100, within ``group`` (usually the flag name)."""
    try:
        key = f"{group}:{user}".encode()
    except UnicodeEncodeError as error:
        raise InvalidUserId(
            f"user id {user!r} is not valid Unicode ({error.reason}): it has no UTF-8 form to hash; "
            "send the id as a valid string"
        ) from None
    return int(mmh3.hash(key, 0, signed=False)) % BUCKETS + 1


def admitted(group: str, user: str, percentage: float) -> bool:
    """Tell whether ``user`` falls inside the first ``percentage`` percent of ``group``; no one when empty."""
    if percentage <= 0 or not user:
        return False
    return bucket(group, user) <= percentage
