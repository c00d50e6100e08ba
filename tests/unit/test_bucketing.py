import subprocess
import sys

import mmh3
from hypothesis import given
from hypothesis import strategies as st

from rollout.audience.bucketing import admitted, bucket
from rollout.audience.flag_state import FlagState


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


def test_an_empty_user_is_no_user_whatever_the_percentage() -> None:
    assert bucket("USE_UNIFIED_ORDERS", "") == 2  # hashed, "" would be admitted from 2 % on
    flag = FlagState("USE_UNIFIED_ORDERS", enabled=True, percentage=100, users=("",), stores=("shop-1",))
    assert not flag.admits("")
    assert not flag.admits(None)
    assert not flag.admits("", "")
    assert flag.admits("", "shop-1")  # the store still counts
    assert not admitted("USE_UNIFIED_ORDERS", "", 100)


def test_a_user_id_with_a_lone_surrogate_is_refused_clearly_and_the_process_lives() -> None:
    # In a child process: hashing such an id inside mmh3 used to kill the process outright.
    script = (
        "import json\n"
        "from rollout.adapters.flags import FlagState\n"
        "from rollout.audience.bucketing import InvalidUserId\n"
        "user = json.loads('\"u\\\\ud800\"')\n"
        "try:\n"
        "    FlagState('F', enabled=True, percentage=50).admits(user)\n"
        "except InvalidUserId as error:\n"
        "    print('refused:', error)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "refused: user id 'u\\ud800' is not valid Unicode (surrogates not allowed)" in done.stdout


@given(st.text(min_size=1), st.text(min_size=1))
def test_the_hash_is_over_the_utf8_bytes(group: str, user: str) -> None:
    assert bucket(group, user) == mmh3.hash(f"{group}:{user}".encode(), 0, signed=False) % 100 + 1
