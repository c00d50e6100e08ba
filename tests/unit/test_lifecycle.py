import itertools

import pytest

from rollout.lifecycle.statuses import (
    DRIVEN,
    REPLACEABLE,
    RESUMABLE,
    SOURCES,
    UNDOABLE,
    MoveRefused,
    Status,
    allowed,
    check_move,
    parse_status,
)


def test_every_status_has_its_sources_and_only_a_claim_starts_a_record() -> None:
    assert set(SOURCES) == set(Status)
    assert allowed(None, Status.CHECKING)
    assert [s for s in Status if allowed(None, s)] == [Status.CHECKING]


def test_a_run_moves_through_a_rollout_in_order() -> None:
    path = [
        Status.CHECKING,
        Status.BACKING_UP,
        Status.STEPPING,
        Status.OBSERVING,
        Status.AWAITING_APPROVAL,
        Status.STEPPING,
        Status.OBSERVING,
        Status.PROMOTED,
    ]
    for source, target in itertools.pairwise(path):
        check_move(source, target)


@pytest.mark.parametrize(
    ("source", "target"),
    [
        (Status.PROMOTED, Status.STEPPING),  # a promoted rollout never moves traffic again
        (Status.ROLLED_BACK, Status.ROLLED_BACK),
        (Status.ROLLING_BACK, Status.OBSERVING),  # a rollout taken over by a rollback cannot carry on
        (Status.BLOCKED, Status.ROLLING_BACK),  # blocked changed nothing: nothing to roll back
        (Status.CHECKING, Status.PROMOTED),
        (Status.HELD, Status.STEPPING),  # a held rollout carries on only through a new claim
    ],
)
def test_moves_the_lifecycle_does_not_have_are_refused(source: Status, target: Status) -> None:
    with pytest.raises(MoveRefused, match=f"from {source} to {target}"):
        check_move(source, target)


def test_the_groups_say_who_may_act() -> None:
    assert DRIVEN <= RESUMABLE <= UNDOABLE
    assert not REPLACEABLE & UNDOABLE
    # Forced only: promoted and rolled-back rollouts are rolled back, never by default.
    assert {Status.PROMOTED, Status.ROLLED_BACK} <= SOURCES[Status.ROLLING_BACK]
    assert Status.PROMOTED not in UNDOABLE and Status.ROLLED_BACK not in UNDOABLE


def test_records_written_with_the_old_names_are_read_with_the_new() -> None:
    assert parse_status("running") is Status.STEPPING
    assert parse_status("rolled_back") is Status.ROLLED_BACK
    assert parse_status("rollback-incomplete") is Status.ROLLBACK_INCOMPLETE
    with pytest.raises(ValueError):
        parse_status("exploded")
