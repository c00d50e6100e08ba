from datetime import UTC, datetime, timedelta

import yaml

from rollout.analysis.gates import Measurement, Outcome
from rollout.lifecycle.progression import Ask, Decision, Progress, Round, WindowState, approval_key
from rollout.plan import parse_plan
from rollout.reporting.questions import question_markdown
from rollout.reporting.rollout_table import rollout_rows

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
PLAN = parse_plan(
    yaml.safe_dump(
        {
            "name": "orders",
            "release": {"version": "v2"},
            "flag": "USE_NEW",
            "backup": {"enabled": False, "waived_by": "test"},
            "gates": {
                "errors": {"query": "sum(e)", "max": 0.05},
                "success": {"query": "sum(s)", "min": 0.99},
            },
            "phases": [
                {
                    "name": "internal",
                    "ramp": [10],
                    "window": {"interval": "1m", "count": 2, "gates": ["errors"]},
                },
                {
                    "name": "pilot",
                    "approval": {
                        "timeout": "2h",
                        "on_timeout": "hold",
                        "checklist": ["Tests pass", "Support ready"],
                    },
                    "ramp": [50],
                    "window": {"interval": "1m", "count": 2, "gates": ["errors", "success"]},
                },
            ],
        }
    )
)
STEP = {
    "key": "internal/0",
    "phase": "internal",
    "step": "10% of users",
    "audience": "10%",
    "outcome": "successful",
    "reason": "errors: 2 measured",
    "values": {"errors": 0.012},
    "at": T0,
}


def test_each_step_shows_every_gate_against_its_limit_and_the_window_under_way() -> None:
    window = WindowState(
        "pilot/0",
        T0 + timedelta(minutes=5),
        (
            Round(
                T0 + timedelta(minutes=6),
                (
                    Measurement("errors", Outcome.FAILED, 0.2, T0),
                    Measurement("success", Outcome.SUCCESSFUL, 0.999, T0),
                ),
            ),
        ),
    )
    approved = Decision(True, "ana", T0 + timedelta(minutes=4), "go", ("Tests pass", "Support ready"))
    pilot = {
        **STEP,
        "key": "pilot/0",
        "phase": "pilot",
        "step": "50% of users",
        "audience": "50%",
        "outcome": "failed",
    }
    rows = rollout_rows(PLAN, [STEP, pilot], window, {approval_key("pilot"): approved}, "50%")
    assert rows[0] == {
        "step": "10% of users",
        "phase": "internal",
        "traffic": "10%",
        "errors": "0.012 (max 0.05) ok",
        "success": "",
        "outcome": "successful",
        "at": "2026-12-01 09:00:00 UTC",
        "why": "errors: 2 measured",
    }
    assert list(rows[0]) == ["step", "phase", "traffic", "errors", "success", "outcome", "at", "why"]
    assert rows[1]["why"].startswith(
        "approval: approved by ana at 2026-12-01 09:04 UTC (2 checks ticked): go; "
    )
    assert len(rows) == 2  # the window's step is recorded: no row for it under way
    under_way = rollout_rows(PLAN, [STEP], window, {}, "50%")[1]
    assert (under_way["traffic"], under_way["errors"], under_way["success"]) == (
        "50%",
        "0.2 (max 0.05) FAILED",
        "0.999 (min 0.99) ok",
    )
    assert (under_way["outcome"], under_way["why"]) == ("observing", "1 round(s) measured")


def test_a_rejected_approval_has_a_row_of_its_own() -> None:
    rejected = Decision(False, "omar", T0 + timedelta(minutes=3), "support not ready")
    rows = rollout_rows(PLAN, [STEP], None, {approval_key("pilot"): rejected})
    assert [(r["step"], r["phase"], r["outcome"]) for r in rows] == [
        ("10% of users", "internal", "successful"),
        ("approval", "pilot", "rejected"),
    ]
    assert rows[1]["why"] == "approval: rejected by omar at 2026-12-01 09:03 UTC: support not ready"


def test_the_approval_form_says_what_is_decided_and_what_happens_without_a_decision() -> None:
    window = WindowState(
        "internal/0",
        T0,
        (Round(T0 + timedelta(minutes=1), (Measurement("errors", Outcome.SUCCESSFUL, 0.012, T0),)),),
    )
    progress = Progress(outcomes={"internal/0": "successful"}, window=window, checked=True)
    ask = Ask(
        approval_key("pilot"),
        "starting phase pilot",
        T0 + timedelta(hours=2),
        True,
        phase=PLAN.phases[1],
        on_timeout="hold",
    )
    text = question_markdown(PLAN, progress, ask)
    assert text.startswith("### Approve phase `pilot` of `orders`?")
    for said in (
        "- **Release**: v2",
        "- **Traffic now**: 10%",
        "- **Approve**: phase pilot starts, 50% first",
        "- **Deadline**: 2026-12-01 11:00:00 UTC; with no decision by then traffic stays where it is (held)",
        "| errors | 0.012 | max 0.05 | successful |",
        "- Tests pass\n- Support ready",
    ):
        assert said in text, said
