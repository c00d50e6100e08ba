from rollout.adapters.flags import set_document
from rollout.audience.steps import Audience, phase_steps
from rollout.plan import parse_plan

PLAN = """
name: p
release: {version: v2}
flag: F
phases:
  - name: internal
    allowlist: {users: [a@x, b@x]}
    window: {interval: 1s, count: 1}
  - name: pilot
    pilot_stores: {limit: 3}
    window: {interval: 1s, count: 1}
  - name: ramp
    ramp: [10, 50, 100]
    window: {interval: 1s, count: 1}
"""


def test_audiences_accumulate_across_phases() -> None:
    plan = parse_plan(PLAN)
    audience = Audience()
    seen = []
    for phase, pilot in zip(plan.phases, [[], ["s1", "s2"], []], strict=True):
        for step in phase_steps(phase, audience, pilot):
            seen.append(step)
            audience = step.audience
    assert [s.key for s in seen] == ["internal/0", "pilot/0", "ramp/0", "ramp/1", "ramp/2"]
    assert seen[0].audience == Audience(users=("a@x", "b@x"))
    assert seen[1].audience == Audience(users=("a@x", "b@x"), stores=("s1", "s2"))
    assert [s.audience.percentage for s in seen[2:]] == [10, 50, 100]
    assert seen[-1].audience.users == ("a@x", "b@x")
    assert seen[-1].audience.stores == ("s1", "s2")


def test_flag_change_of_an_empty_audience_disables_the_flag() -> None:
    change = Audience().flag_change()
    assert change.enabled is False
    assert set_document(change) == {"enabled": False, "percentage": 0.0, "users": [], "stores": []}


def test_widening_never_lowers_the_percentage() -> None:
    assert Audience(percentage=50).widened(percentage=25).percentage == 50
