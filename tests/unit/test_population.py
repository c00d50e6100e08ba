from rollout.adapters.flagd import flagd_admits
from rollout.audience.bucketing import admitted
from rollout.audience.population import count_admitted
from rollout.audience.steps import Audience

USERS = [f"user-{i:05d}" for i in range(20_000)]
STEPS = [Audience(users=("vip",)), *(Audience(users=("vip",), percentage=p) for p in (10, 25, 50, 100))]


def test_counts_follow_the_providers_own_bucketing_and_grow_with_each_step() -> None:
    unleash, total = count_admitted("USE_UNIFIED_ORDERS", [*USERS, "vip", ""], STEPS)
    flagd, _ = count_admitted("USE_UNIFIED_ORDERS", [*USERS, "vip", ""], STEPS, flagd_admits)
    assert total == len(USERS) + 1  # the empty id is no user
    for counts in (unleash, flagd):
        assert counts[0] == 1 and counts[-1] == total and counts == sorted(counts)
        assert abs(counts[1] - 1 - 2_000) < 200  # about 10 % of 20,000
    # Same shares, different people: each count is exactly what its own rule admits.
    assert unleash[2] == 1 + sum(admitted("USE_UNIFIED_ORDERS", u, 25) for u in USERS)
    assert flagd[2] == 1 + sum(flagd_admits("USE_UNIFIED_ORDERS", u, 25) for u in USERS)
    assert unleash[2] != flagd[2]
