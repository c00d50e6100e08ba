from hypothesis import given
from hypothesis import strategies as st

from rollout.adapters.flags import FlagState
from rollout.bucketing import admitted, bucket


def test_unleash_reference_vectors() -> None:
    assert bucket("gr1", "123") == 73
    assert bucket("groupX", "999") == 25


@given(st.text(min_size=1), st.text(min_size=1), st.floats(0, 100), st.floats(0, 100))
def test_admission_is_sticky_as_the_percentage_grows(group: str, user: str, a: float, b: float) -> None:
    low, high = sorted((a, b))
    if admitted(group, user, low):
        assert admitted(group, user, high)


@given(st.text(min_size=1), st.text(min_size=1))
def test_buckets_span_one_to_a_hundred(group: str, user: str) -> None:
    assert 1 <= bucket(group, user) <= 100


def test_shares_follow_the_percentage() -> None:
    users = [f"user-{i}" for i in range(20000)]
    for percentage in (10, 25, 50, 75):
        share = sum(admitted("USE_UNIFIED_ORDERS", u, percentage) for u in users) / len(users)
        assert abs(share - percentage / 100) < 0.02


def test_zero_and_hundred_percent() -> None:
    assert not any(admitted("f", f"u{i}", 0) for i in range(1000))
    assert all(admitted("f", f"u{i}", 100) for i in range(1000))


def test_flag_state_allowlists_and_switch() -> None:
    flag = FlagState("F", enabled=True, percentage=0, users=("dev@example.com",), stores=("shop-1",))
    assert flag.admits("dev@example.com")
    assert flag.admits("someone", "shop-1")
    assert not flag.admits("someone", "shop-2")
    off = FlagState("F", enabled=False, percentage=100, users=("dev@example.com",))
    assert not off.admits("dev@example.com")
