"""What the reconciler does for each rollout, decided from the record, the run's state and the time."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from rollout.lifecycle.progression import Parked
from rollout.lifecycle.reconciliation import chore_for, holder, watch_chore
from rollout.lifecycle.record import RunRecord
from rollout.lifecycle.statuses import Status

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def record(status: Status, **fields: object) -> RunRecord:
    base = RunRecord(
        "orders", "run-1", status, (), (), rollout_id="v2", deployment_id="dep-1", plan_path="p.yaml"
    )
    return replace(base, **fields)  # type: ignore[arg-type]


def parked(for_decision: bool = False, until: datetime | None = None) -> RunRecord:
    status = Status.AWAITING_APPROVAL if for_decision else Status.OBSERVING
    spot = Parked(NOW, until, "next", "approval:pilot" if for_decision else "ramp/0", "key", status)
    return record(Status.PARKED, parked=spot)


@pytest.mark.parametrize(
    ("rollout", "run_state", "kind"),
    [
        (parked(), "PAUSED", "measure"),
        (parked(True, NOW + timedelta(hours=1)), "PAUSED", "none"),
        (parked(True, NOW - timedelta(seconds=1)), "PAUSED", "wake"),
        (parked(), "CANCELLED", "hold"),
        (parked(), "SCHEDULED", "none"),  # being woken
        (parked(), "CRASHED", "adopt"),
        (parked(), None, "adopt"),
        (record(Status.OBSERVING, lease_until=NOW + timedelta(seconds=30)), "RUNNING", "none"),
        (record(Status.OBSERVING, lease_until=NOW + timedelta(seconds=30)), "CANCELLING", "hold"),
        (record(Status.OBSERVING, lease_until=NOW - timedelta(minutes=1)), "RUNNING", "adopt"),
        (
            record(Status.OBSERVING, lease_until=NOW - timedelta(minutes=1), deployment_id=None),
            "CRASHED",
            "report",
        ),
        (record(Status.ROLLING_BACK, rollback_run_id="rb-1"), "CRASHED", "report"),  # no lease: older
        (record(Status.ROLLING_BACK, rollback_run_id="rb-1"), "RUNNING", "none"),
        (
            record(Status.ROLLING_BACK, rollback_run_id="rb-1", lease_until=NOW + timedelta(seconds=9)),
            "RUNNING",
            "none",
        ),
        (
            record(Status.ROLLING_BACK, rollback_run_id="rb-1", lease_until=NOW - timedelta(minutes=1)),
            "RUNNING",
            "finish-rollback",
        ),
        (record(Status.PROMOTED), "COMPLETED", "none"),
        (record(Status.HELD), "FAILED", "none"),
    ],
)
def test_each_rollout_gets_the_chore_its_state_calls_for(
    rollout: RunRecord, run_state: str | None, kind: str
) -> None:
    assert chore_for(rollout, run_state, NOW).kind == kind


@pytest.mark.parametrize(
    "run_state", ["PAUSED", "SCHEDULED", "PENDING", "RUNNING", "CANCELLING", "CRASHED", None]
)
def test_a_parked_window_is_measured_whatever_prefect_says_about_its_run(run_state: str | None) -> None:
    long_after = NOW + timedelta(hours=1)
    assert chore_for(parked(), run_state, NOW).measure
    assert chore_for(parked(), run_state, long_after, run_since=NOW).measure
    # A decision has no rounds to take.
    assert not chore_for(parked(True, NOW + timedelta(days=1)), run_state, NOW).measure


def test_a_park_or_a_wake_that_did_not_take_effect_is_adopted_after_the_grace() -> None:
    rollout = parked()  # parked at NOW
    grace = timedelta(minutes=2)
    for state in ("SCHEDULED", "PENDING", "RUNNING"):
        # Woken a minute after it parked: on its way for the grace, then gone.
        woke = NOW + timedelta(minutes=1)
        assert chore_for(rollout, state, woke + grace / 2, run_since=woke, wake_grace=grace).kind == "none"
        late = chore_for(rollout, state, woke + grace * 2, run_since=woke, wake_grace=grace)
        assert (late.kind, late.measure) == ("adopt", True), state
        assert "did not take effect" in late.why
    # A suspend call that failed leaves the run Running since before the park: counted from the park.
    stuck = chore_for(rollout, "RUNNING", NOW + grace * 2, run_since=NOW - timedelta(hours=1))
    assert stuck.kind == "adopt"
    assert chore_for(rollout, "RUNNING", NOW + grace / 2, run_since=NOW - timedelta(hours=1)).kind == "none"


def test_an_adoption_that_never_took_the_rollout_is_started_again_after_the_grace() -> None:
    rollout = replace(parked(), adopted_by="run-2")
    since = NOW + timedelta(minutes=1)
    on_its_way = chore_for(
        rollout, "CRASHED", since + timedelta(seconds=30), adoption="PENDING", adoption_since=since
    )
    assert on_its_way.kind == "none" and on_its_way.measure
    stuck = chore_for(
        rollout, "CRASHED", since + timedelta(minutes=5), adoption="PENDING", adoption_since=since
    )
    assert stuck.kind == "adopt"


def test_a_cancelled_parked_run_is_held_after_its_window_is_measured() -> None:
    chore = chore_for(parked(), "CANCELLED", NOW)
    assert (chore.kind, chore.measure) == ("hold", True)


def test_a_lease_just_run_out_is_given_a_grace_before_its_run_counts_as_gone() -> None:
    expired = record(Status.STEPPING, lease_until=NOW - timedelta(seconds=2))
    assert chore_for(expired, "RUNNING", NOW).kind == "none"
    assert chore_for(expired, "RUNNING", NOW + timedelta(seconds=10)).kind == "adopt"


def test_an_adoption_under_way_is_not_started_again() -> None:
    expired = record(Status.OBSERVING, lease_until=NOW - timedelta(minutes=1), adopted_by="run-2")
    assert chore_for(expired, "CRASHED", NOW, adoption="SCHEDULED").kind == "none"
    assert chore_for(expired, "CRASHED", NOW, adoption="CRASHED").kind == "adopt"


def test_a_cli_run_gone_is_listed_with_the_command_that_carries_it_on() -> None:
    gone = record(Status.OBSERVING, lease_until=NOW - timedelta(minutes=1), deployment_id=None)
    chore = chore_for(gone, None, NOW)
    assert "`rollout run p.yaml --rollout-id v2`" in chore.why


def test_the_holder_of_a_rollback_under_way_is_the_rollback_run() -> None:
    assert holder(record(Status.ROLLING_BACK, rollback_run_id="rb-1")) == "rb-1"
    assert holder(record(Status.OBSERVING)) == "run-1"


def test_a_plan_whose_targets_cannot_be_had_is_skipped_and_named_not_fatal() -> None:
    from pathlib import Path

    from rollout.errors import PermanentError
    from rollout.plan import Plan
    from rollout.plan.model import Targets
    from tasks.reconcile import databases

    plans = sorted(str(p) for p in (Path(__file__).parents[2] / "deployments" / "plans").glob("*.yaml"))

    def resolve(plan: Plan, targets: Targets | None) -> Targets:
        if plan.targets is None:
            raise PermanentError(f"plan {plan.name} names no targets and no sandbox is running")
        return plan.targets

    with_targets = [p for p in plans if "\ntargets:" in Path(p).read_text()]
    found, skipped = databases(plans, None, resolve)
    assert [s.split(": ")[0] for s in skipped] == [p for p in plans if p not in with_targets]
    assert all("no sandbox is running" in s for s in skipped) and len(found) <= len(with_targets)


def test_a_rollout_whose_adopted_runs_keep_stopping_is_handed_to_a_person() -> None:
    gone = record(Status.OBSERVING, lease_until=NOW - timedelta(minutes=1), adopted_by="run-4", adoptions=3)
    chore = chore_for(gone, "CRASHED", NOW, adoption="FAILED")
    assert chore.kind == "report" and "3 runs started to carry it on stopped" in chore.why
    assert chore_for(replace(gone, adoptions=2), "CRASHED", NOW, adoption="FAILED").kind == "adopt"


def test_without_prefect_a_rollout_no_live_run_holds_is_measured_and_nothing_else_done() -> None:
    assert (watch_chore(parked(), NOW).kind, watch_chore(parked(), NOW).measure) == ("none", True)
    orphan = record(Status.OBSERVING, lease_until=NOW - timedelta(minutes=1))
    chore = watch_chore(orphan, NOW)
    assert chore.measure and chore.kind == "report" and "Prefect cannot be asked" in chore.why
    held = record(Status.OBSERVING, lease_until=NOW + timedelta(seconds=30))
    assert not watch_chore(held, NOW).measure  # its own run measures it
    assert not watch_chore(parked(True, NOW + timedelta(hours=1)), NOW).measure
    assert not watch_chore(record(Status.PROMOTED), NOW).measure


def test_a_driven_rollout_whose_lease_ran_out_is_measured_until_its_adopter_takes_it() -> None:
    orphan = record(Status.OBSERVING, lease_until=NOW - timedelta(minutes=1))
    assert chore_for(orphan, "RUNNING", NOW).measure
    assert chore_for(replace(orphan, adopted_by="run-2"), "CRASHED", NOW, adoption="PENDING").measure
    assert not chore_for(
        record(Status.OBSERVING, lease_until=NOW + timedelta(seconds=30)), "RUNNING", NOW
    ).measure
