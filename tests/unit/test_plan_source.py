from pathlib import Path

import pytest

from flows.rollout_flow import _approval_timeout
from rollout.errors import PlanInvalid
from rollout.plan.source import plan_source

PLAN = """
name: pasted
release: {version: v2}
flag: F
phases: [{name: all, ramp: [100], window: {count: 1}}]
backup: {enabled: false, waived_by: test}
"""


@pytest.fixture(autouse=True)
def plans_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ROLLOUT_PLANS_DIR", str(tmp_path))
    return tmp_path


def test_a_path_is_used_as_given() -> None:
    assert plan_source(" plans/p.yaml ", "") == "plans/p.yaml"


def test_a_pasted_plan_is_kept_once_under_its_name_and_digest(plans_dir: Path) -> None:
    first = plan_source("", PLAN)
    assert Path(first).parent == plans_dir
    assert Path(first).name.startswith("pasted-")
    assert Path(first).read_text() == PLAN
    assert plan_source("", PLAN) == first
    assert len(list(plans_dir.iterdir())) == 1


def test_a_pasted_plan_wins_over_a_prefilled_path(plans_dir: Path) -> None:
    kept = plan_source("deployments/plans/sandbox-demo.yaml", PLAN)
    assert Path(kept).parent == plans_dir
    assert Path(kept).read_text() == PLAN


def test_no_plan_at_all_is_refused_naming_the_parameter() -> None:
    with pytest.raises(PlanInvalid, match="plan_path: no plan given"):
        plan_source(" ", "\n")


def test_a_pasted_plan_that_does_not_validate_is_not_kept(plans_dir: Path) -> None:
    with pytest.raises(PlanInvalid, match="release"):
        plan_source("", "name: x\nflag: F\nphases: [{name: a, ramp: [100]}]\n")
    assert list(plans_dir.iterdir()) == []


def test_the_approval_timeout_override_parses_or_names_the_parameter() -> None:
    assert _approval_timeout("") is None
    assert _approval_timeout("  ") is None
    override = _approval_timeout("30m")
    assert override is not None and override.total_seconds() == 1800
    with pytest.raises(PlanInvalid, match="approval_timeout: expected a duration"):
        _approval_timeout("soon")
    with pytest.raises(PlanInvalid, match="approval_timeout: must be positive"):
        _approval_timeout("0s")
