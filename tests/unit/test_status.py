from datetime import UTC, datetime, timedelta

from rollout.adapters.run_state import RunRecord
from rollout.status import describe_run

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
STEP = {"key": "ramp/0", "phase": "ramp", "step": "25% of users", "audience": "25%", "outcome": "successful"}


def record(status: str, lease: timedelta | None) -> RunRecord:
    return RunRecord(
        "orders",
        "run-7",
        status,
        (),
        (STEP,),
        started_at=NOW - timedelta(minutes=20),
        rollout_id="v2",
        lease_until=None if lease is None else NOW + lease,
    )


def test_a_running_rollout_shows_who_holds_the_plan_until_when() -> None:
    text = describe_run(record("running", timedelta(minutes=3)), "orders", "v1", now=NOW)
    assert "run       run-7 (rollout v2)" in text
    assert "lease     held until 2026-11-22 09:03:00 UTC (another run of the plan is refused)" in text


def test_a_rollout_whose_lease_ran_out_says_how_to_resume_it() -> None:
    text = describe_run(record("running", -timedelta(minutes=1)), "orders", "v1", now=NOW)
    assert "lease     expired 2026-11-22 08:59:00 UTC: the run stopped half-way" in text
    assert "with rollout id v2 to resume it" in text


def test_a_finished_rollout_shows_no_lease() -> None:
    text = describe_run(record("promoted", None), "orders", "v1", now=NOW)
    assert "lease" not in text and "status    promoted" in text
