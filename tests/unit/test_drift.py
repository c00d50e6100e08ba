"""A person's change between two steps is found by who the flag admits, not by its version."""

from datetime import UTC, datetime

from rollout.audience.drift import Written, drifted, killed
from rollout.audience.flag_state import FlagState

WROTE = FlagState("USE_NEW", enabled=True, percentage=25, users=("alice",), version=7)


def test_the_flag_as_the_rollout_wrote_it_is_no_drift_whatever_its_version() -> None:
    written = Written.of(WROTE)
    assert drifted(written, WROTE) is None
    # Unleash counts an edit in another environment as a new version of the flag: not ours.
    assert (
        drifted(written, FlagState("USE_NEW", enabled=True, percentage=25, users=("alice",), version=9))
        is None
    )
    assert drifted(None, WROTE) is None  # never written by this rollout: nothing to compare


def test_each_hand_edit_between_two_steps_is_named() -> None:
    written = Written.of(WROTE)
    at = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)
    wider = FlagState("USE_NEW", enabled=True, percentage=60, users=("alice",), version=8, updated_at=at)
    why = drifted(written, wider)
    assert why is not None and "was changed by someone else since this rollout wrote it" in why
    assert (
        "it was on: 1 users, 0 stores, 25% (version 7), it is on: 1 users, 0 stores, 60% (version 8 at" in why
    )
    assert "run the plan again to carry on from their change, or roll it back" in why
    off = FlagState("USE_NEW", enabled=False, percentage=25, users=("alice",), version=8)
    assert "turned off (a kill switch)" in (drifted(written, off) or "")
    other_users = FlagState("USE_NEW", enabled=True, percentage=25, users=("bob",), version=8)
    assert drifted(written, other_users) is not None


def test_a_flag_turned_off_by_hand_is_never_turned_back_on() -> None:
    written = Written.of(WROTE)
    off = FlagState("USE_NEW", enabled=False, percentage=25, users=("alice",), version=8)
    assert "never turns a kill switch back on" in (killed(written, off) or "")
    assert killed(written, WROTE) is None
    assert killed(Written.of(FlagState("USE_NEW")), off) is None  # it was off when the rollout left it
