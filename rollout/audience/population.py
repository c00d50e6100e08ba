"""How many users each audience admits, counted over the real population with the provider's bucketing."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from rollout.audience.bucketing import admitted
from rollout.audience.steps import Audience

Bucketing = Callable[[str, str, float], bool]
"""A flag provider's rule: whether (flag, user, percentage) admits the user."""


def count_admitted(
    flag: str,
    user_ids: Iterable[str],
    audiences: Sequence[Audience],
    admits: Bucketing = admitted,
) -> tuple[list[int], int]:
    """Per audience, how many of ``user_ids`` it admits by allowlist or percentage; and the total.

    ``admits`` is the flag provider's bucketing (Unleash's, which MongoDB flags use too, by
    default). An empty id is no user (the service admits it nowhere), so it is not counted at all.
    """
    counts = [0] * len(audiences)
    total = 0
    for user in user_ids:
        if not user:
            continue
        total += 1
        for i, audience in enumerate(audiences):
            if user in audience.users or admits(flag, user, audience.percentage):
                counts[i] += 1
    return counts, total
