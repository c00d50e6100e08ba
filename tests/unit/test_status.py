from datetime import UTC, datetime, timedelta

from rollout.audience.flag_state import FlagState
from rollout.lifecycle.record import RunRecord
from rollout.lifecycle.statuses import Move, Status
from rollout.reporting.status import describe_run

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
STEP = {
    "key": "ramp/0",
    "phase": "ramp",
    "step": "25% of users",
    "audience": "25%",
    "outcome": "successful",
    "admitted": {"users": [], "stores": [], "percentage": 25},
}


def record(status: Status, lease: timedelta | None) -> RunRecord:
    return RunRecord(
        "orders",
        "run-7",
        status,
        (),
        (STEP,),
        started_at=NOW - timedelta(minutes=20),
        rollout_id="v2",
        lease_until=None if lease is None else NOW + lease,
        history=(
            Move(Status.STEPPING, status, NOW - timedelta(minutes=2), "run run-7", "window of ramp 25%"),
        ),
    )


def test_a_running_rollout_shows_who_holds_the_plan_until_when() -> None:
    text = describe_run(record(Status.OBSERVING, timedelta(minutes=3)), "orders", "v1", now=NOW)
    assert "run       run-7 (rollout v2)" in text
    assert "status    observing since 2026-11-22 08:58:00 UTC (run run-7: window of ramp 25%)" in text
    assert "lease     held until 2026-11-22 09:03:00 UTC (another run of the plan is refused)" in text


def test_a_rollout_whose_lease_ran_out_says_how_to_resume_it() -> None:
    text = describe_run(record(Status.STEPPING, -timedelta(minutes=1)), "orders", "v1", now=NOW)
    assert "lease     expired 2026-11-22 08:59:00 UTC: the run stopped half-way" in text
    assert "with rollout id v2 to resume it" in text


def test_a_finished_rollout_shows_no_lease() -> None:
    text = describe_run(record(Status.PROMOTED, None), "orders", "v1", now=NOW)
    assert "lease" not in text and "status    promoted" in text


def test_the_flag_as_stored_is_shown_beside_the_last_committed_step() -> None:
    flag = FlagState("USE_ORDERS", enabled=True, percentage=25, version=4)
    text = describe_run(record(Status.OBSERVING, timedelta(minutes=3)), "orders", "v1", now=NOW, flag=flag)
    assert "flag      USE_ORDERS: 25% (enabled, version 4)" in text
    assert "as the last committed step (ramp/0: 25%) says" in text
    assert "DIFFERS" not in text


def test_a_flag_that_differs_from_the_last_committed_step_is_called_out() -> None:
    flag = FlagState("USE_ORDERS", enabled=True, percentage=50, version=5)
    text = describe_run(record(Status.STEPPING, timedelta(minutes=3)), "orders", "v1", now=NOW, flag=flag)
    assert "flag      USE_ORDERS: 50% (enabled, version 5)" in text
    assert "DIFFERS from the last committed step (ramp/0: 25%)" in text


def test_a_rolled_back_rollout_expects_the_flag_off() -> None:
    off = FlagState("USE_ORDERS", enabled=False, percentage=0, version=6)
    text = describe_run(record(Status.ROLLED_BACK, None), "orders", "v1", now=NOW, flag=off)
    assert "disabled, admits no one" in text and "as the rollback (traffic off) says" in text
    on = FlagState("USE_ORDERS", enabled=True, percentage=10, version=7)
    text = describe_run(record(Status.ROLLED_BACK, None), "orders", "v1", now=NOW, flag=on)
    assert "DIFFERS from the rollback (traffic off)" in text


def test_a_parked_rollout_says_until_when_what_comes_next_and_how_far_its_window_got() -> None:
    from dataclasses import replace

    from rollout.lifecycle.progression import Parked, Round, WindowState

    window = WindowState("ramp/1", NOW, (Round(NOW, ()), Round(NOW + timedelta(minutes=5), ())))
    spot = Parked(
        NOW, NOW + timedelta(minutes=10), "round 3 of 2016 of ramp/1", "ramp/1", "k", Status.OBSERVING
    )
    parked = replace(record(Status.PARKED, None), parked=spot, window=window)
    text = describe_run(parked, "orders", "v1", now=NOW)
    assert "parked    until 2026-11-22 09:10:00 UTC" in text
    assert "next      round 3 of 2016 of ramp/1 (its run holds no process while parked)" in text
    assert "window    ramp/1: 2 round(s) measured" in text
    assert "lease" not in text


def test_each_decision_shows_who_when_the_note_and_the_boxes_ticked() -> None:
    from dataclasses import replace

    from rollout.lifecycle.progression import Decision

    ana = Decision(True, "ana", NOW, "pilot clean", ("tests pass", "support team ready"))
    text = describe_run(
        replace(record(Status.OBSERVING, None), decisions={"approval:ramp": ana}), "orders", None
    )
    assert (
        "decision  approval:ramp: approved by ana at 2026-11-22 09:00 UTC (2 checks ticked): pilot clean"
        in text
    )
    assert "          ticked: tests pass; support team ready" in text


def test_status_says_what_prefect_and_the_record_each_say_when_they_disagree() -> None:
    from dataclasses import replace

    from rollout.lifecycle.progression import Parked

    spot = Parked(NOW, NOW + timedelta(hours=1), "round 2 of 12 of ramp/0", "ramp/0", "k", Status.OBSERVING)
    parked = replace(record(Status.PARKED, None), parked=spot)
    text = describe_run(parked, "orders", "v1", now=NOW, run_state="Running")
    assert "prefect   run run-7 is Running, while the record says parked: they disagree" in text
    agreed = describe_run(parked, "orders", "v1", now=NOW, run_state="Suspended")
    assert "prefect   run run-7 is Suspended" in agreed and "disagree" not in agreed
    gone = describe_run(
        record(Status.OBSERVING, -timedelta(minutes=1)), "orders", "v1", now=NOW, run_state="Running"
    )
    assert "while its lease ran out at 2026-11-22 08:59:00 UTC: they disagree" in gone
    assert "prefect" not in describe_run(parked, "orders", "v1", now=NOW)  # no server asked
