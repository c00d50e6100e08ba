"""Whether a start may begin a rollout at all: no replay, no silent downgrade. Decided from records alone."""

from datetime import UTC, datetime, timedelta

from rollout.lifecycle.admission import Finished, downgrade, replayed
from rollout.lifecycle.record import RunRecord
from rollout.lifecycle.statuses import Status

T0 = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def test_the_same_flow_run_again_is_a_replay_whatever_rollout_it_claims_to_be() -> None:
    done = Finished(run_id="run-1", rollout_id="v1", version="v1", status=Status.PROMOTED, at=T0)
    why = replayed([done], "run-1", "v1", explicit=False)
    assert (
        why is not None and "run run-1 already ran rollout v1 (release v1, run run-1) ended promoted" in why
    )
    assert "2026-11-21 12:00:00 UTC" in why and "start a new run" in why
    assert replayed([done], "run-2", "v1", explicit=False) is None  # a new run of the same release
    explicit = replayed([done], "run-2", "v1", explicit=True)
    assert explicit is not None and "a finished rollout is not run again" in explicit
    assert replayed([done], "run-2", "v1-again", explicit=True) is None


def test_a_record_lists_itself_once_finished_then_the_rollouts_before_it() -> None:
    earlier = Finished(run_id="run-0", rollout_id="v0", version="v0", status=Status.ROLLED_BACK, at=T0)
    running = RunRecord("p", "run-1", Status.OBSERVING, (), (), rollout_id="v1", earlier=(earlier,))
    assert running.ended() == (earlier,)
    promoted = RunRecord(
        "p",
        "run-1",
        Status.PROMOTED,
        (),
        (),
        rollout_id="v1",
        version="v1",
        earlier=(earlier,),
        finished_at=T0,
    )
    assert [f.run_id for f in promoted.ended()] == ["run-1", "run-0"]


def test_a_release_stable_now_or_superseded_is_a_downgrade_named_with_both_versions() -> None:
    history = [
        {"version": "v1", "event": "promoted", "at": T0},
        {"version": "v2", "event": "promoted", "at": T0 + timedelta(days=7)},
    ]
    assert "release v2 is already the stable release" in (downgrade("v2", "v2", history) or "")
    old = downgrade("v1", "v2", history)
    assert old is not None and "release v1 was superseded by v2 (promoted at 2026-11-28 12:00:00 UTC)" in old
    assert "would downgrade v2 to v1" in old and "force with a reason" in old
    assert downgrade("v3", "v2", history) is None  # never stable before: a new release


def test_a_release_put_back_by_a_rollback_supersedes_nothing() -> None:
    history = [
        {"version": "v1", "event": "promoted", "at": T0},
        {"version": "v2", "event": "promoted", "at": T0 + timedelta(days=1)},
        {"version": "v1", "event": "reinstated after the rollback of v2", "at": T0 + timedelta(days=2)},
    ]
    assert downgrade("v2", "v1", history) is None  # trying v2 again after its rollback
    assert "already the stable release" in (downgrade("v1", "v1", history) or "")


def test_a_first_step_below_what_a_promoted_rollout_left_is_a_cut_naming_who_loses() -> None:
    import yaml

    from rollout.audience.flag_state import FlagState
    from rollout.audience.steps import Audience
    from rollout.lifecycle.admission import first_audience, flag_cut
    from rollout.plan.loader import parse_plan

    doc = {
        "name": "orders",
        "release": {"version": "v3"},
        "flag": "USE_NEW",
        "backup": {"enabled": False, "waived_by": "test"},
        "phases": [
            {"name": "internal", "allowlist": {"users": ["alice", "bob"]}, "window": {"count": 1}},
            {"name": "ramp", "ramp": [10], "window": {"count": 1}},
        ],
    }
    first = first_audience(parse_plan(yaml.safe_dump(doc)))
    assert first is not None and first.users == ("alice", "bob") and first.percentage == 0
    full = FlagState("USE_NEW", enabled=True, percentage=100, users=("alice", "bob"), version=8)
    why = flag_cut(full, first, lost=998)
    assert why is not None and "would set USE_NEW to 2 users, 0% while it is at 2 users, 100%" in why
    assert "998 users of the plan's population would lose the new code path" in why
    assert "restart_ramp" in why
    assert flag_cut(FlagState("USE_NEW"), first) is None  # off: nobody to lose
    assert flag_cut(FlagState("USE_NEW", enabled=True, users=("alice",)), first) is None  # widened only
    everyone = Audience(percentage=100)
    assert flag_cut(FlagState("USE_NEW", enabled=True, percentage=100, users=("carol",)), everyone) is None
