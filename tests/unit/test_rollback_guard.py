from dataclasses import replace
from datetime import UTC, datetime

import pytest

from rollout.lifecycle.record import RestoreRecord, RunRecord
from rollout.lifecycle.rollback_guard import RollbackAsk, as_judged, judge
from rollout.lifecycle.statuses import Move, Status

T = datetime(2026, 11, 30, 14, 5, tzinfo=UTC)


def record(status: Status, **extra: object) -> RunRecord:
    history = (
        Move(
            Status.STEPPING,
            status,
            T,
            "run run-1" if status != Status.ROLLED_BACK else "rollback run rb-1",
            "",
        ),
    )
    fields: dict[str, object] = {"version": "v2", "history": history, **extra}
    return RunRecord("orders", "run-1", status, (), (), rollout_id="v2", **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize("status", [Status.STEPPING, Status.OBSERVING, Status.HELD, Status.STOPPED])
def test_an_active_rollout_is_rolled_back_with_the_plans_restore(status: Status) -> None:
    verdict = judge(record(status), "orders", RollbackAsk(), "selective")
    assert (verdict.action, verdict.restore) == ("roll-back", "selective")


def test_no_rollout_on_record_is_refused_naming_the_plan() -> None:
    verdict = judge(None, "orders", RollbackAsk(), "none")
    assert verdict.action == "refused" and "plan orders has no rollout on record" in verdict.message


def test_a_rolled_back_rollout_needs_nothing_and_says_when_by_whom_from_which_backup() -> None:
    restored = RestoreRecord("s3://b/backup-1/", T, "rollback run rb-1", True)
    verdict = judge(record(Status.ROLLED_BACK, restores=(restored,)), "orders", RollbackAsk(), "full")
    assert verdict.action == "nothing-to-do"
    assert "rolled back at 2026-11-30 14:05:00 UTC by rollback run rb-1, from backup s3://b/backup-1/" in (
        verdict.message
    )
    bare = judge(record(Status.ROLLED_BACK), "orders", RollbackAsk(), "full")
    assert "with no data restored" in bare.message


def test_a_promoted_rollout_is_refused_unless_forced_and_forced_restores_only_when_asked() -> None:
    refused = judge(record(Status.PROMOTED), "orders", RollbackAsk(), "full")
    assert refused.action == "refused"
    assert "was promoted at 2026-11-30 14:05:00 UTC" in refused.message and "--force" in refused.message
    forced = judge(record(Status.PROMOTED), "orders", RollbackAsk(force=True), "full")
    assert (forced.action, forced.restore) == ("roll-back", "none")
    asked = judge(record(Status.PROMOTED), "orders", RollbackAsk(force=True, restore="selective"), "full")
    assert (asked.action, asked.restore) == ("roll-back", "selective")


def test_a_blocked_rollout_changed_nothing_even_when_forced() -> None:
    verdict = judge(record(Status.BLOCKED), "orders", RollbackAsk(force=True), "full")
    assert verdict.action == "nothing-to-do" and "before anything changed" in verdict.message


def test_on_behalf_of_a_run_acts_only_while_that_run_holds_an_unfinished_rollout() -> None:
    assert judge(record(Status.STOPPED), "orders", RollbackAsk(on_behalf_of="run-1"), "none").action == (
        "roll-back"
    )
    other = judge(record(Status.STOPPED), "orders", RollbackAsk(on_behalf_of="run-0"), "none")
    assert other.action == "nothing-to-do" and "run-0, which no longer holds plan orders" in other.message
    for finished in (Status.PROMOTED, Status.ROLLING_BACK, Status.ROLLED_BACK, Status.ROLLBACK_INCOMPLETE):
        late = judge(record(finished), "orders", RollbackAsk(on_behalf_of="run-1"), "none")
        assert late.action == "nothing-to-do", finished
        assert f"is {finished} already" in late.message


def test_a_take_over_retried_after_its_answer_was_lost_is_judged_as_the_rollout_was_before_it() -> None:
    taken = Move(Status.OBSERVING, Status.ROLLING_BACK, T, "rollback run rb-7", "errors over 5 %")
    mine = replace(
        record(Status.ROLLING_BACK), history=(taken,), rollback_run_id="rb-7"
    )  # the write landed, its answer did not
    before = as_judged(mine, "rb-7")
    assert before is not None and before.status is Status.OBSERVING
    verdict = judge(before, "orders", RollbackAsk(), "selective")
    assert (verdict.action, verdict.restore) == ("roll-back", "selective")
    # Another rollback's take-over is never taken for this one's.
    assert as_judged(mine, "rb-8") is None
    theirs = replace(mine, history=(replace(taken, by="rollback run rb-8"),))
    assert as_judged(theirs, "rb-7") is None
    # Nor is a rollout that is not rolling back.
    assert as_judged(record(Status.OBSERVING), "rb-7") is None
