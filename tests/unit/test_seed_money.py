from decimal import Decimal

from bson import Decimal128
from hypothesis import given
from hypothesis import strategies as st

from rollout.sandbox.seed import money


@given(st.integers(min_value=0, max_value=2**63))
def test_money_is_the_same_bson_decimal_as_dividing_the_cents_by_100(cents: int) -> None:
    expected = Decimal128(Decimal(cents) / 100)
    assert money(cents).bid == expected.bid
    assert money(cents).to_decimal() == Decimal(cents) / 100
