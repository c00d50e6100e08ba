"""The plan's lease in MongoDB: one run at a time, resumption of a stopped rollout, fencing by a rollback."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import MongoClient

from rollout.adapters.run_state import RunStateStore
from rollout.errors import LeaseLost, RolloutBusy
from rollout.lifecycle.statuses import MoveRefused, Status
from rollout.sandbox.stack import SandboxInfo

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
LEASE = timedelta(minutes=5)


@pytest.fixture()
def runs(sandbox: SandboxInfo, mongo: MongoClient[dict[str, Any]], request: pytest.FixtureRequest) -> Any:
    collection = mongo[sandbox.database][f"lease_{abs(hash(request.node.nodeid)) % 10**8}"]
    yield RunStateStore(collection)
    collection.drop()


def test_a_second_run_is_refused_while_the_first_holds_the_plan(runs: RunStateStore) -> None:
    assert runs.claim("p", "run-1", "v2", LEASE, now=T0).kind == "fresh"
    with pytest.raises(
        RolloutBusy, match=r"plan p is being rolled out by run run-1 \(rollout v2\).*`rollout rollback`"
    ):
        runs.claim("p", "run-2", "v2", LEASE, now=T0 + timedelta(minutes=4))
    runs.renew("p", "run-1", LEASE, now=T0 + timedelta(minutes=4))
    with pytest.raises(RolloutBusy):
        runs.claim("p", "run-2", "v2", LEASE, now=T0 + timedelta(minutes=8))


def test_a_run_that_stopped_half_way_is_resumed_by_the_same_rollout_only(runs: RunStateStore) -> None:
    runs.claim("p", "run-1", "v2", LEASE, now=T0)
    runs.step("p", {"key": "ramp/0", "outcome": "successful"})
    runs.step("p", {"key": "ramp/1", "outcome": "inconclusive"})
    later = T0 + LEASE + timedelta(seconds=1)
    with pytest.raises(RolloutBusy, match="rollout v2 of plan p stopped after ramp/0 without finishing"):
        runs.claim("p", "run-2", "v3", LEASE, now=later)
    claim = runs.claim("p", "run-2", "v2", LEASE, now=later)
    assert claim.resumed and claim.previous is not None
    assert claim.previous.committed == {"ramp/0"}
    record = runs.get("p")
    assert record is not None and (record.run_id, record.status) == ("run-2", Status.CHECKING)
    assert [(m.source, m.target, m.by) for m in record.history] == [
        (None, Status.CHECKING, "run run-1"),
        (Status.CHECKING, Status.CHECKING, "run run-2"),
    ]
    assert [s["key"] for s in record.steps] == ["ramp/0", "ramp/1"]
    with pytest.raises(LeaseLost, match="run run-1 no longer holds plan p"):
        runs.renew("p", "run-1", LEASE, now=later)


def test_a_finished_rollout_leaves_the_plan_free_for_the_next(runs: RunStateStore) -> None:
    runs.claim("p", "run-1", "v2", LEASE, now=T0)
    runs.keep_backup("p", "s3://b/backup-1/")
    runs.move("p", Status.STEPPING, by="run run-1", why="ramp", run_id="run-1")
    runs.move("p", Status.PROMOTED, by="run run-1", why="done", run_id="run-1")
    claim = runs.claim("p", "run-2", "v3", LEASE, now=T0 + timedelta(seconds=1))
    assert claim.kind == "fresh"
    record = runs.get("p")
    assert record is not None and record.backup is None and record.steps == ()


def test_a_rollback_fences_off_the_rollout_still_running(runs: RunStateStore) -> None:
    runs.claim("p", "run-1", "v2", LEASE, now=T0)
    runs.take_over("p", "rollback-1")
    with pytest.raises(LeaseLost, match="now rolling-back by run rollback-1"):
        runs.renew("p", "run-1", LEASE, now=T0 + timedelta(seconds=10))
    with pytest.raises(LeaseLost, match="run run-1 no longer holds plan p"):
        runs.move("p", Status.STEPPING, by="run run-1", why="next step", run_id="run-1")


def test_pilot_stores_chosen_first_are_kept_for_a_resumed_run(runs: RunStateStore) -> None:
    runs.claim("p", "run-1", "v2", LEASE, now=T0)
    assert runs.remember_pilots("p", "pilot", ["s1", "s2"]) == ["s1", "s2"]
    assert runs.remember_pilots("p", "pilot", ["s3"]) == ["s1", "s2"]


def test_every_move_is_a_compare_and_set_kept_in_the_history(runs: RunStateStore) -> None:
    runs.claim("p", "run-1", "v2", LEASE, now=T0, version="v2", stable_before="v1")
    first = runs.get("p")
    assert first is not None and (first.status, first.revision, first.stable_before) == (
        Status.CHECKING,
        1,
        "v1",
    )
    runs.move("p", Status.STEPPING, by="run run-1", why="ramp 10%", run_id="run-1")
    # A retried move whose first answer was lost: already there, nothing recorded twice.
    runs.move("p", Status.STEPPING, by="run run-1", why="ramp 10%", run_id="run-1")
    with pytest.raises(MoveRefused, match="changed since it was read"):
        runs.take_over("p", "rollback-1", revision=first.revision)
    with pytest.raises(MoveRefused, match="from stepping to blocked"):
        runs.move("p", Status.BLOCKED, by="someone", why="no")
    taken = runs.take_over("p", "rollback-1", why="5xx", revision=first.revision + 1)
    assert (taken.status, taken.rollback_run_id, taken.revision) == (Status.ROLLING_BACK, "rollback-1", 3)
    assert [(m.target, m.by, m.why) for m in taken.history] == [
        (Status.CHECKING, "run run-1", "rollout v2 begins"),
        (Status.STEPPING, "run run-1", "ramp 10%"),
        (Status.ROLLING_BACK, "rollback run rollback-1", "5xx"),
    ]


def test_a_half_done_rollback_holds_the_plan_against_new_rollouts(runs: RunStateStore) -> None:
    runs.claim("p", "run-1", "v2", LEASE, now=T0)
    runs.take_over("p", "rollback-1")
    with pytest.raises(RolloutBusy, match="being rolled back by run rollback-1"):
        runs.claim("p", "run-2", "v3", LEASE, now=T0 + timedelta(hours=1))
    runs.move("p", Status.ROLLBACK_INCOMPLETE, by="rollback run rollback-1", why="restore failed")
    with pytest.raises(RolloutBusy, match="did not finish: run `rollout rollback` again"):
        runs.claim("p", "run-2", "v3", LEASE, now=T0 + timedelta(hours=1))


def test_a_held_rollout_is_carried_on_by_the_same_rollout_only(runs: RunStateStore) -> None:
    runs.claim("p", "run-1", "v2", LEASE, now=T0)
    runs.move("p", Status.AWAITING_APPROVAL, by="run run-1", why="pilot", run_id="run-1")
    runs.move("p", Status.HELD, by="run run-1", why="nobody approved", run_id="run-1")
    with pytest.raises(RolloutBusy, match="rollout v2 of plan p is held after its first step"):
        runs.claim("p", "run-2", "v3", LEASE, now=T0 + timedelta(seconds=1))
    assert runs.claim("p", "run-2", "v2", LEASE, now=T0 + timedelta(seconds=1)).resumed


def test_the_release_history_names_the_release_stable_before_a_promoted_one(
    sandbox: SandboxInfo, mongo: MongoClient[dict[str, Any]], request: pytest.FixtureRequest
) -> None:
    from rollout.adapters.run_state import ReleaseStore

    collection = mongo[sandbox.database][f"releases_{abs(hash(request.node.nodeid)) % 10**8}"]
    releases = ReleaseStore(collection)
    try:
        assert releases.stable_before("p", "v2") is None
        releases.mark_stable("p", "v1")
        assert releases.stable_before("p", "v2") == "v1"
        releases.mark_stable("p", "v2")
        # v2 is now the stable release: rolling v2 back must still go to v1, not "back" to v2.
        assert (releases.stable("p"), releases.stable_before("p", "v2")) == ("v2", "v1")
        releases.put_back("p", "v1", rolled_back="v2")
        assert releases.stable("p") == "v1"
        assert [h["event"] for h in releases.history("p")] == [
            "promoted",
            "promoted",
            "reinstated after the rollback of v2",
        ]
    finally:
        collection.drop()


def test_a_write_with_an_older_epoch_is_refused_once_a_rollback_took_over(
    runs: RunStateStore,
    sandbox: SandboxInfo,
    mongo: MongoClient[dict[str, Any]],
    request: pytest.FixtureRequest,
) -> None:
    from rollout.adapters.flags import FlagStore
    from rollout.audience.flag_state import Fence, FencedOff, FlagChange

    collection = mongo[sandbox.database][f"fence_{abs(hash(request.node.nodeid)) % 10**8}"]
    flags = FlagStore(collection)
    try:
        claim = runs.claim("p", "run-1", "v2", LEASE, now=T0)
        assert claim.epoch == 1
        flags.set("F", FlagChange(enabled=True, percentage=10), expected_version=0, fence=Fence("p", 1))
        taken = runs.take_over("p", "rollback-1")
        assert taken.epoch == 2
        flags.set("F", FlagChange(enabled=False, percentage=0), fence=Fence("p", taken.epoch))
        # The rollout's next step, read before the take-over and written after it, lands nowhere.
        current = flags.get("F")
        with pytest.raises(FencedOff, match="at epoch 2, after this run's epoch 1"):
            flags.set(
                "F",
                FlagChange(enabled=True, percentage=25),
                expected_version=current.version,
                fence=Fence("p", 1),
            )
        with pytest.raises(FencedOff):
            flags.set("F", FlagChange(enabled=True, percentage=25), fence=Fence("p", 1))
        assert flags.get("F") == current
        # A never-written flag takes any epoch; another plan's epochs and unfenced writes are their own.
        flags.set("G", FlagChange(enabled=True, percentage=5), fence=Fence("p", 1))
        flags.set("F", FlagChange(percentage=0), fence=Fence("other-plan", 1))
        assert flags.set("F", FlagChange(percentage=0)).version == current.version + 2
        # A record lost (deleted by hand) must not leave its plan fenced off by its own past:
        # the next claim starts above the highest epoch the plan wrote flags with.
        flags.set("H", FlagChange(enabled=True), fence=Fence("q", 7))
        assert flags.highest_fence("q") == 7 and flags.highest_fence("nobody") == 0
        fresh = runs.claim("q", "run-9", "v2", LEASE, now=T0, epoch_floor=flags.highest_fence("q"))
        assert fresh.epoch == 8
        flags.set("H", FlagChange(enabled=False), fence=Fence("q", fresh.epoch))
    finally:
        collection.drop()


def test_a_resumed_rollout_fences_off_the_run_it_replaces(runs: RunStateStore) -> None:
    first = runs.claim("p", "run-1", "v2", LEASE, now=T0)
    later = runs.claim("p", "run-2", "v2", LEASE, now=T0 + LEASE + timedelta(seconds=1))
    assert later.resumed and (first.epoch, later.epoch) == (1, 2)
    runs.move("p", Status.STEPPING, by="run run-2", why="ramp", run_id="run-2")
    runs.move("p", Status.OBSERVING, by="run run-2", why="window", run_id="run-2")
    runs.move("p", Status.PROMOTED, by="run run-2", why="done", run_id="run-2")
    assert runs.claim("p", "run-3", "v3", LEASE, now=T0 + 2 * LEASE).epoch == 3


def test_a_rollout_no_live_run_holds_is_fenced_and_measured_only_while_nobody_holds_it(
    runs: RunStateStore,
) -> None:
    from rollout.lifecycle.progression import Parked, Progress, WindowState

    now = datetime.now(UTC)
    runs.claim("p", "run-1", "v2", timedelta(minutes=1), now=now)
    runs.move("p", Status.OBSERVING, by="run run-1", why="window", run_id="run-1")
    held = runs.get("p")
    assert held is not None
    window = WindowState("ramp/0", now, ())
    # Its run renews its lease: the reconciler neither keeps rounds for it nor fences it.
    assert not runs.save_unheld_window(held, window) and runs.fence_unheld(held, "x") is None
    runs.renew("p", "run-1", timedelta(seconds=-1))  # the lease runs out: the process is gone
    orphan = runs.get("p")
    assert orphan is not None and runs.save_unheld_window(orphan, window)
    assert runs.fence_unheld(orphan, "window failed") == orphan.epoch + 1
    assert runs.fence_unheld(orphan, "again") is None  # read before the fence: it moved since
    # A run that has just parked keeps its heartbeat going; a suspension that fails takes it back.
    runs.claim("q", "run-2", "v2", timedelta(minutes=1))
    runs.move("q", Status.OBSERVING, by="run run-2", why="window", run_id="run-2")
    spot = Parked(now, now + timedelta(minutes=5), "round 2 of 5 of ramp/0", "ramp/0", "k", Status.OBSERVING)
    runs.park("q", "run-2", spot, Progress())
    runs.renew("q", "run-2", timedelta(minutes=1))
    runs.take_back_park("q", "run-2", spot, timedelta(minutes=1))
    back = runs.get("q")
    assert back is not None and back.status is Status.OBSERVING and back.parked is None
    assert "its suspension failed" in back.history[-1].why
    runs.take_back_park("q", "run-2", spot, timedelta(minutes=1))  # retried: recognised, no error
    with pytest.raises(LeaseLost):
        runs.take_back_park("q", "run-3", spot, timedelta(minutes=1))
