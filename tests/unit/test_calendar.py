"""Deploy windows, change freezes and not_before: when a step may start, and that a rollout waits for it."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import yaml

from rollout.errors import PlanInvalid
from rollout.lifecycle.calendar import effective, opening, step_schedule
from rollout.lifecycle.progression import NotYet, Progress, SetStep, next_action
from rollout.plan import Plan
from rollout.plan.loader import parse_plan

RIYADH = ZoneInfo("Asia/Riyadh")
WORKWEEK = {
    "timezone": "Asia/Riyadh",
    "windows": [{"days": ["sun", "mon", "tue", "wed", "thu"], "start": "09:00", "end": "17:00"}],
}


def plan(schedule: dict[str, object] | None = None, **phase: object) -> Plan:
    doc: dict[str, object] = {
        "name": "orders",
        "release": {"version": "v2"},
        "flag": "USE_NEW",
        "backup": {"enabled": False, "waived_by": "test"},
        "gates": {"errors": {"query": "sum(errors)", "max": 0.05}},
        "phases": [
            {"name": "ramp", "ramp": [10, 50, 100], "window": {"interval": "5m", "count": 1}, **phase}
        ],
    }
    if schedule is not None:
        doc["schedule"] = schedule
    return parse_plan(yaml.safe_dump(doc, sort_keys=False))


def riyadh(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=RIYADH)  # type: ignore[misc]


def test_outside_the_deploy_windows_a_step_waits_for_the_next_one() -> None:
    rules = effective(plan(WORKWEEK), plan(WORKWEEK).phases[0])
    friday = riyadh(2026, 12, 4, 10, 0)  # Friday: not a working day in Riyadh
    found = opening(rules, None, friday)
    assert found.at == riyadh(2026, 12, 6, 9, 0)  # Sunday 09:00
    assert "outside the deploy windows (sun,mon,tue,wed,thu 09:00-17:00 Asia/Riyadh)" in found.why
    assert opening(rules, None, riyadh(2026, 12, 6, 16, 59)).at == riyadh(2026, 12, 6, 16, 59)
    assert opening(rules, None, riyadh(2026, 12, 6, 17, 0)).at == riyadh(2026, 12, 7, 9, 0)


def test_a_freeze_holds_steps_until_it_ends_and_then_the_next_window() -> None:
    schedule = {
        **WORKWEEK,
        "freezes": [{"start": "2026-12-20T00:00", "end": "2027-01-03T12:00", "reason": "year end"}],
    }
    rules = effective(plan(schedule), plan(schedule).phases[0])
    found = opening(rules, None, riyadh(2026, 12, 22, 10, 0))
    assert found.at == riyadh(2027, 1, 3, 12, 0)  # a Sunday, inside the window when the freeze ends
    assert found.why == "change freeze: year end"
    after = opening(rules, None, riyadh(2027, 1, 3, 11, 0))
    assert after.at == riyadh(2027, 1, 3, 12, 0)


def test_not_before_counts_from_the_rollouts_start_or_is_a_date_in_the_schedules_zone() -> None:
    began = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    relative = plan(None, ramp=[10, {"percentage": 25, "schedule": {"not_before": "2d"}}, 50])
    phase = relative.phases[0]
    assert opening(step_schedule(relative, phase, 0), began, began).at == began
    later = opening(step_schedule(relative, phase, 1), began, began + timedelta(hours=1))
    assert later.at == began + timedelta(days=2) and "after the rollout began" in later.why
    assert opening(step_schedule(relative, phase, 2), began, began).at == began  # its own schedule only
    dated = plan({"timezone": "Asia/Riyadh", "not_before": "2026-12-07T09:00"})
    assert opening(effective(dated, dated.phases[0]), began, began).at == riyadh(2026, 12, 7, 9, 0)


def test_a_step_schedule_fills_in_from_the_phase_and_the_plan_and_freezes_add_up() -> None:
    schedule = {**WORKWEEK, "freezes": [{"start": "2026-12-24T00:00", "end": "2026-12-26T00:00"}]}
    step = {
        "percentage": 100,
        "schedule": {"freezes": [{"start": "2026-12-28T00:00", "end": "2026-12-29T00:00"}]},
    }
    layered = plan(schedule, ramp=[10, step])
    rules = step_schedule(layered, layered.phases[0], 1)
    assert rules.zone == RIYADH and len(rules.windows) == 1 and len(rules.freezes) == 2


def test_the_progression_waits_for_the_schedule_before_the_next_step() -> None:
    began = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    gated = plan(None, ramp=[10, {"percentage": 25, "schedule": {"not_before": "2d"}}])
    first = Progress(checked=True, began_at=began)
    action = next_action(gated, first, began)
    assert isinstance(action, SetStep) and action.step.label == "10% of users"
    done = Progress(checked=True, began_at=began, outcomes={"ramp/0": "successful"})
    waiting = next_action(gated, done, began + timedelta(hours=5))
    assert isinstance(waiting, NotYet)
    assert waiting.until == began + timedelta(days=2) and waiting.what.startswith("ramp ")
    assert isinstance(next_action(gated, done, began + timedelta(days=2)), SetStep)


@pytest.mark.parametrize(
    ("schedule", "said"),
    [
        ({"timezone": "Mars/Olympus"}, "schedule.timezone: 'Mars/Olympus' is not a time zone"),
        (
            {"windows": [{"start": "09:00", "end": "09:00"}]},
            "schedule.windows.0: the window 09:00-09:00 is empty",
        ),
        (
            {"windows": [{"start": "9am", "end": "17:00"}]},
            "schedule.windows.0.start: '9am' has the wrong form",
        ),
        ({"windows": []}, "schedule.windows: "),
        (
            {"freezes": [{"start": "2026-12-02T00:00", "end": "2026-12-01T00:00"}]},
            "schedule.freezes.0: the freeze ends",
        ),
    ],
)
def test_a_schedule_that_cannot_be_kept_is_refused_naming_the_field(
    schedule: dict[str, object], said: str
) -> None:
    with pytest.raises(PlanInvalid) as caught:
        plan(schedule)
    assert any(str(p).startswith(said) for p in caught.value.problems), caught.value.problems
