"""The progression core, driven by hand: every branch in milliseconds, no server, no sleep."""

from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
import yaml

from rollout.analysis.gates import Outcome, classify
from rollout.lifecycle.progression import (
    Action,
    Ask,
    BackUp,
    CheckData,
    ChoosePilots,
    Conclude,
    Decision,
    Finish,
    Measure,
    Progress,
    Round,
    SetCompanions,
    SetStep,
    Wait,
    WindowState,
    approval_key,
    current_audience,
    due_at,
    inconclusive_key,
    next_action,
    observed_backup,
    observed_checks,
    observed_companions,
    observed_conclusion,
    observed_decision,
    observed_pilots,
    observed_question,
    observed_round,
    observed_step,
)
from rollout.lifecycle.statuses import Status
from rollout.plan import Plan
from rollout.plan.loader import parse_plan

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
Answer = Callable[[Ask, datetime], Decision | None]
"""A person: the decision to an Ask at a time, or None to let it run out."""


def plan(**changes: object) -> Plan:
    doc: dict[str, object] = {
        "name": "orders",
        "release": {"version": "v2"},
        "flag": "USE_NEW",
        "backup": {"enabled": False, "waived_by": "test"},
        # A custom query: no rate() range of ours to wait out, so rounds fall on the window's schedule.
        "gates": {"errors": {"query": "sum(errors)", "max": 0.05}},
        "phases": [
            {
                "name": "ramp",
                "ramp": [10, 50, 100],
                "window": {"interval": "5m", "count": 3, "gates": ["errors"]},
            }
        ],
    }
    doc.update(changes)
    return parse_plan(yaml.safe_dump(doc))


class Simulation:
    """Runs the core's loop as a run would, with readings and answers given up front."""

    def __init__(self, plan: Plan, readings: Iterator[float | None], answer: Answer | None = None) -> None:
        self.plan, self.readings, self.answer = plan, readings, answer
        self.now = T0
        self.actions: list[Action] = []

    def run(self, progress: Progress, until: type | None = None, limit: int = 500) -> tuple[Finish, Progress]:
        for _ in range(limit):
            action = next_action(self.plan, progress, self.now)
            self.actions.append(action)
            if isinstance(action, Finish):
                return action, progress
            progress = self.apply(progress, action)
        raise AssertionError(f"no end after {limit} actions: {self.actions[-5:]}")

    def apply(self, progress: Progress, action: Action) -> Progress:
        match action:
            case CheckData():
                return observed_checks(progress, ())
            case BackUp():
                return observed_backup(progress)
            case SetCompanions(phase=phase):
                return observed_companions(progress, phase.name)
            case ChoosePilots(phase=phase):
                return observed_pilots(progress, phase.name, ("s1", "s2"))
            case SetStep(step=step):
                return observed_step(progress, step, self.now)
            case Wait(until=until):
                assert until > self.now
                self.now = until
                return progress
            case Measure(step=step, gates=gates):
                readings = tuple(classify(n, g, next(self.readings), self.now) for n, g in gates.items())
                return observed_round(progress, step, Round(self.now, readings))
            case Conclude(step=step, verdict=verdict):
                return observed_conclusion(progress, step, verdict)
            case Ask():
                progress = observed_question(progress, action.about, self.now)
                decision = self.answer(action, self.now) if self.answer else None
                if decision is None:
                    self.now = action.deadline
                    return progress
                return observed_decision(progress, action.about, decision)
        raise AssertionError(action)

    def count(self, kind: type) -> int:
        return sum(isinstance(a, kind) for a in self.actions)


def healthy() -> Iterator[float | None]:
    while True:
        yield 0.01


def test_a_healthy_plan_checks_then_steps_measures_and_promotes_on_schedule() -> None:
    sim = Simulation(plan(), healthy())
    end, progress = sim.run(Progress())
    assert end == Finish(Status.PROMOTED, "")
    assert isinstance(sim.actions[0], CheckData)
    assert sim.count(SetStep) == 3 and sim.count(Measure) == 9 and sim.count(Conclude) == 3
    assert sim.now == T0 + timedelta(minutes=5) * 2 * 3  # rounds at 0, 5, 10 min of each window
    assert progress.committed == {"ramp/0", "ramp/1", "ramp/2"}
    assert current_audience(sim.plan, progress).percentage == 100


def test_a_failing_gate_rolls_back_at_the_first_decisive_round_with_when_it_first_went_bad() -> None:
    readings = iter([0.01, 0.01, 0.01, 0.01, 0.2])  # 10 %: three good; 50 %: good, then bad
    sim = Simulation(plan(), readings)
    end, progress = sim.run(Progress())
    assert end.status is Status.ROLLED_BACK and end.judged
    assert end.reason.startswith("ramp 50%: errors: 1 failed (limit 0)")
    assert end.first_bad_at == T0 + timedelta(minutes=15)
    assert progress.outcomes == {"ramp/0": "successful", "ramp/1": "failed"}


def test_automatic_off_stops_where_traffic_is_and_says_it_was_judged() -> None:
    sim = Simulation(plan(rollback={"automatic": False}), iter([0.2]))
    end, _ = sim.run(Progress())
    assert end.status is Status.STOPPED and end.judged


def test_no_data_is_never_a_pass() -> None:
    sim = Simulation(plan(), iter([None, None, None]))
    end, progress = sim.run(Progress())
    assert end.status is Status.ROLLED_BACK and "window ended without data: no data" in end.reason
    assert progress.outcomes["ramp/0"] == "inconclusive" and not end.judged  # nobody answered


def test_failed_data_checks_block_a_fresh_rollout_and_stop_one_that_moved_traffic() -> None:
    p = plan()
    blocked = next_action(p, observed_checks(Progress(), ("orphans",)), T0)
    assert blocked == Finish(Status.BLOCKED, "data checks failed (orphans): nothing was changed")
    moved = replace(Progress(outcomes={"ramp/0": "successful"}), moved=True)
    stopped = next_action(p, observed_checks(moved, ("orphans",)), T0)
    assert isinstance(stopped, Finish) and stopped.status is Status.STOPPED
    assert "traffic stays where it was" in stopped.reason


def test_a_backup_comes_before_any_step_when_the_plan_takes_one() -> None:
    p = plan(backup={"enabled": True, "collections": []})
    checked = observed_checks(Progress(), ())
    assert isinstance(next_action(p, checked, T0), BackUp)
    assert isinstance(next_action(p, observed_backup(checked), T0), SetStep)


def approval_plan(on_timeout: str = "rollback") -> Plan:
    return plan(
        phases=[
            {"name": "internal", "ramp": [5], "window": {"interval": "1m", "count": 1, "gates": ["errors"]}},
            {
                "name": "pilot",
                "approval": {"timeout": "24h", "on_timeout": on_timeout},
                "flags": {"ENABLE_DUAL_WRITE": True},
                "pilot_stores": {"collection": "stores", "filter": {"region": "north"}},
                "ramp": [50],
                "window": {"interval": "1m", "count": 2, "gates": ["errors"]},
            },
        ]
    )


def test_an_approved_phase_sets_its_companions_and_pilots_then_carries_on() -> None:
    def maria(ask: Ask, at: datetime) -> Decision:
        assert ask.about == approval_key("pilot") and ask.deadline == at + timedelta(hours=24)
        return Decision(True, "maria", at, "clean")

    sim = Simulation(approval_plan(), healthy(), maria)
    end, progress = sim.run(Progress())
    assert end.status is Status.PROMOTED
    kinds = [type(a) for a in sim.actions]
    assert kinds.index(Ask) < kinds.index(SetCompanions) < kinds.index(ChoosePilots)
    assert progress.decisions["approval:pilot"].describe("pilot") == (
        "pilot: approved by maria at 2026-12-01 09:00 UTC: clean"
    )
    assert current_audience(sim.plan, progress).stores == ("s1", "s2")


def test_a_rejected_phase_rolls_back_as_judged() -> None:
    sim = Simulation(
        approval_plan(), healthy(), lambda ask, at: Decision(False, "omar", at, "support not ready")
    )
    end, _ = sim.run(Progress())
    assert (end.status, end.judged) == (Status.ROLLED_BACK, True)
    assert end.reason == "omar rejected pilot: support not ready"


@pytest.mark.parametrize(("on_timeout", "status"), [("hold", Status.HELD), ("rollback", Status.ROLLED_BACK)])
def test_an_approval_nobody_gives_in_time_holds_or_rolls_back_as_the_plan_says(
    on_timeout: str, status: Status
) -> None:
    sim = Simulation(approval_plan(on_timeout), healthy())
    end, _ = sim.run(Progress())
    assert end.status is status and not end.judged
    assert sim.now == T0 + timedelta(hours=24)  # the internal window's one round is taken at once
    if status is Status.HELD:
        assert end.reason == "nobody approved pilot within 1d: traffic stays at 5%"


def test_the_deadline_counts_from_the_first_ask_not_from_a_run_that_picks_it_up() -> None:
    p = approval_plan()
    progress = replace(
        observed_question(
            Progress(outcomes={"internal/0": "successful"}, checked=True), "approval:pilot", T0
        ),
        window=None,
    )
    later = next_action(p, progress, T0 + timedelta(hours=23))
    assert isinstance(later, Ask) and not later.first_asked and later.deadline == T0 + timedelta(hours=24)
    gone = next_action(p, progress, T0 + timedelta(hours=24))
    assert gone == Finish(Status.ROLLED_BACK, "approval for pilot timed out")


def inconclusive_plan(on_inconclusive: str = "pause") -> Plan:
    window = {
        "interval": "1m",
        "count": 3,
        "gates": ["slow"],
        "on_inconclusive": on_inconclusive,
        "decision_timeout": "1h",
    }
    return plan(
        gates={"slow": {"query": "max(p95)", "max": 0.5}},
        phases=[{"name": "ramp", "ramp": [10, 100], "window": window}],
    )


def no_data_at_the_end() -> Iterator[float | None]:
    yield from (0.1, 0.1, None)  # 10 %: the window ends without data: inconclusive
    yield from healthy()


def test_an_inconclusive_window_asks_and_an_approval_carries_on_to_the_next_step() -> None:
    asked: list[Ask] = []

    def ana(ask: Ask, at: datetime) -> Decision:
        asked.append(ask)
        return Decision(True, "ana", at)

    sim = Simulation(inconclusive_plan(), no_data_at_the_end(), ana)
    end, progress = sim.run(Progress())
    assert end.status is Status.PROMOTED
    assert [a.about for a in asked] == [inconclusive_key("ramp/0")] and asked[0].step is not None
    assert progress.outcomes["ramp/0"] == "continued"


def test_an_inconclusive_window_rejected_is_judged_and_one_left_unanswered_is_not() -> None:
    rejected = Simulation(inconclusive_plan(), no_data_at_the_end(), lambda a, at: Decision(False, "ana", at))
    end, _ = rejected.run(Progress())
    assert end.status is Status.ROLLED_BACK and end.judged and "inconclusive" in end.reason
    silent = Simulation(inconclusive_plan(), no_data_at_the_end())
    end, _ = silent.run(Progress())
    assert end.status is Status.ROLLED_BACK and not end.judged
    assert silent.now == T0 + timedelta(minutes=2) + timedelta(hours=1)


def test_on_inconclusive_rollback_does_not_ask() -> None:
    sim = Simulation(inconclusive_plan("rollback"), no_data_at_the_end())
    end, _ = sim.run(Progress())
    assert end.status is Status.ROLLED_BACK and sim.count(Ask) == 0


def test_a_window_picked_up_after_k_rounds_carries_on_at_k_plus_1_of_n() -> None:
    p = plan(
        phases=[
            {"name": "ramp", "ramp": [10], "window": {"interval": "5m", "count": 60, "gates": ["errors"]}}
        ]
    )
    sim = Simulation(p, healthy())
    progress = Progress(checked=True)
    while len(progress.window.rounds if progress.window else ()) < 17:
        action = next_action(p, progress, sim.now)
        progress = sim.apply(progress, action)
    # The run died here; the next one reads the same record (its own checks run again).
    picked_up = replace(progress, checked=False, restarted=True)
    end, done = sim.run(picked_up)
    measured = [a.number for a in sim.actions if isinstance(a, Measure)]
    assert measured[0] == 18 and measured[-1] == 60 and len(measured) == 60 - 17
    assert end.status is Status.PROMOTED and done.window is not None and len(done.window.rounds) == 60


def test_on_restart_rollback_rolls_back_a_rollout_whose_run_died() -> None:
    p = plan(rollback={"on_restart": "rollback"})
    progress = Progress(
        outcomes={"ramp/0": "successful", "ramp/1": "successful"}, checked=True, restarted=True
    )
    end = next_action(p, progress, T0)
    assert end == Finish(
        Status.ROLLED_BACK, "the rollout stopped after ramp/1; the plan rolls back on restart"
    )
    woken = replace(progress, restarted=False)  # a parked run woken is no restart
    assert isinstance(next_action(p, woken, T0), SetStep)


def test_late_rounds_stretch_the_window_instead_of_bursting() -> None:
    window = plan().phases[0].window
    assert window is not None
    state = WindowState("ramp/0", T0)
    assert due_at(window, state) == T0
    late = Round(T0 + timedelta(minutes=12), ())  # the first round was taken 12 minutes late
    assert due_at(window, replace(state, rounds=(late,))) == T0 + timedelta(minutes=17)


def test_a_steps_first_round_waits_until_the_slis_rate_window_covers_the_new_audience_alone() -> None:
    gates = {
        "errors": {"sli": "error_ratio", "max": 0.05, "rate_window": "2m"},
        "p95": {"sli": "latency_p95", "max": 0.5, "rate_window": "5m"},
        "custom": {"query": "sum(x)", "max": 1},
    }
    window = {"interval": "1m", "count": 3, "initial_delay": "30s", "gates": ["errors", "p95", "custom"]}
    p = plan(gates=gates, phases=[{"name": "ramp", "ramp": [10, 100], "window": window}])
    sim = Simulation(p, iter([0.0] * 30))
    end, _ = sim.run(Progress())
    assert end.status is Status.PROMOTED
    # Each step's first round 5 minutes after it was set (the longest rate window), then every minute.
    assert [(a.then.number, a.until - T0) for a in sim.actions if isinstance(a, Wait)] == [
        (1, timedelta(minutes=5)),
        (2, timedelta(minutes=6)),
        (3, timedelta(minutes=7)),
        (1, timedelta(minutes=12)),
        (2, timedelta(minutes=13)),
        (3, timedelta(minutes=14)),
    ]
    # A longer initial_delay is kept.
    window["initial_delay"] = "8m"
    one_step = plan(gates=gates, phases=[{"name": "ramp", "ramp": [100], "window": window}])
    later = Simulation(one_step, iter([0.0] * 9))
    later.run(Progress())
    first = next(a for a in later.actions if isinstance(a, Wait))
    assert first.until == T0 + timedelta(minutes=8)


def test_a_long_wait_is_a_wait_with_the_round_that_follows() -> None:
    p = plan()
    progress = observed_step(Progress(checked=True), _first_step(p), T0)
    progress = observed_round(
        progress, _first_step(p), Round(T0, (classify("errors", p.gates["errors"], 0.0, T0),))
    )
    action = next_action(p, progress, T0 + timedelta(seconds=1))
    assert isinstance(action, Wait) and action.until == T0 + timedelta(minutes=5)
    assert (action.then.number, action.then.total) == (2, 3)


def _first_step(p: Plan):  # type: ignore[no-untyped-def]
    action = next_action(p, Progress(checked=True), T0)
    assert isinstance(action, SetStep)
    return action.step


def test_a_window_with_no_gates_passes_after_its_rounds() -> None:
    p = plan(gates={}, phases=[{"name": "ramp", "ramp": [100], "window": {"interval": "1m", "count": 2}}])
    sim = Simulation(p, healthy())
    end, progress = sim.run(Progress())
    assert end.status is Status.PROMOTED and sim.count(Measure) == 2
    assert progress.outcomes == {"ramp/0": "successful"}
    assert Outcome.SUCCESSFUL.value == "successful"


def test_a_steps_first_round_also_waits_for_the_services_sdks_to_fetch_the_flag() -> None:
    gates = {"errors": {"sli": "error_ratio", "max": 0.05, "rate_window": "1m"}}
    window = {"interval": "1m", "count": 2, "gates": ["errors"]}
    targets = {
        "mongodb": {"uri": "mongodb://db:27017", "database": "shop"},
        "prometheus": {"url": "http://p:9090"},
        "service": {"base_url": "http://s"},
        "unleash": {"url": "http://u", "api_token": "${env:T}", "environment": "production"},
    }
    p = plan(gates=gates, targets=targets, phases=[{"name": "ramp", "ramp": [100], "window": window}])
    sim = Simulation(p, iter([0.0] * 9))
    sim.run(Progress())
    first = next(a for a in sim.actions if isinstance(a, Wait))
    # Unleash's SDKs fetch every 15 s by default; then the 1 m rate window covers the new audience.
    assert first.until == T0 + timedelta(minutes=1, seconds=15)


def test_the_targets_a_run_acts_on_say_how_long_the_sdks_take_to_fetch_not_only_the_plans() -> None:
    gates = {"errors": {"sli": "error_ratio", "max": 0.05, "rate_window": "1m"}}
    window = {"interval": "1m", "count": 2, "gates": ["errors"]}
    p = plan(gates=gates, phases=[{"name": "ramp", "ramp": [100], "window": window}])
    assert p.targets is None  # targets given to the run (the sandbox's, or an operator's), not in the plan
    step = _first_step(p)
    progress = observed_step(Progress(checked=True), step, T0)
    unleash = next_action(p, progress, T0, flag_refresh=timedelta(seconds=15))
    assert isinstance(unleash, Wait) and unleash.until == T0 + timedelta(minutes=1, seconds=15)
    documents = next_action(p, progress, T0, flag_refresh=timedelta(0))
    assert isinstance(documents, Wait) and documents.until == T0 + timedelta(minutes=1)


def test_a_window_parks_only_when_the_reconciler_can_take_its_rounds() -> None:
    default = plan()  # the reconciler every minute
    assert default.parks_window(timedelta(minutes=5))
    assert default.parks_window(timedelta(seconds=75))
    assert not default.parks_window(timedelta(seconds=25))  # 4 x 25 s would take 4 passes
    assert plan(reconcile_interval="10s").parks_window(timedelta(seconds=25))


def test_a_held_rollout_carried_on_keeps_the_rounds_of_its_window_under_way() -> None:
    from rollout.lifecycle.record import RunRecord

    rounds = tuple(Round(T0 + timedelta(minutes=i), ()) for i in range(5))
    window = WindowState("ramp/0", T0, rounds)
    held = RunRecord("orders", "run-1", Status.HELD, (), (), window=window)
    assert held.progress(restarted=True, observe_again=True).window == window
    # A window judged bad before is watched afresh.
    judged = replace(held, steps=({"key": "ramp/0", "outcome": "failed"},))
    assert judged.progress(restarted=True, observe_again=True).window is None
