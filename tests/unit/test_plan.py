from pathlib import Path

import pytest

from rollout.errors import PlanInvalid
from rollout.plan import load_plan, parse_plan
from rollout.plan.model import Plan

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "deployments" / "plans").glob("*.yaml"))
BAD = sorted((ROOT / "tests" / "data" / "bad_plans").glob("*.yaml"))


def expectation(path: Path) -> str:
    first = path.read_text().splitlines()[0] if path.read_text() else ""
    assert first.startswith("# expect: "), f"{path.name} must start with '# expect: path: message'"
    return first.removeprefix("# expect: ")


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_plans_are_valid(path: Path) -> None:
    assert isinstance(load_plan(path), Plan)


def test_there_are_example_plans_including_unified_orders() -> None:
    names = {p.stem for p in EXAMPLES}
    assert {"unified-orders", "sandbox-demo"} <= names
    plan = load_plan(ROOT / "deployments" / "plans" / "unified-orders.yaml")
    assert [p.name for p in plan.phases] == ["internal-users", "pilot-stores", "full-launch"]
    assert [s.percentage for s in plan.phases[2].ramp or []] == [10, 25, 50, 75, 100]
    pilot = plan.phases[1].pilot_stores
    assert pilot is not None
    assert pilot.filter == {"is_active": True, "total_orders": {"$gt": 10, "$lt": 100}}
    assert pilot.limit == 10
    assert plan.gates["error-ratio"].max == 0.05


@pytest.mark.parametrize("path", BAD, ids=lambda p: p.name)
def test_bad_plans_are_refused_with_the_field_and_a_fix(path: Path) -> None:
    expected = expectation(path)
    with pytest.raises(PlanInvalid) as caught:
        load_plan(path)
    lines = [str(p) for p in caught.value.problems]
    assert any(line.startswith(expected) for line in lines), lines


def test_the_bad_plan_corpus_has_at_least_thirty_cases() -> None:
    assert len(BAD) >= 30


def test_every_problem_is_reported_at_once() -> None:
    text = """
name: p
release: {version: v2}
flag: F
phases:
  - name: a
    ramp: [50, 10]
    window: {interval: 0s, count: 1}
    extra: 1
"""
    with pytest.raises(PlanInvalid) as caught:
        parse_plan(text)
    paths = {p.path for p in caught.value.problems}
    assert {"phases.0.ramp", "phases.0.window.interval", "phases.0.extra"} <= paths


def test_secret_references_are_accepted_and_plans_are_frozen() -> None:
    plan = load_plan(ROOT / "deployments" / "plans" / "unified-orders.yaml")
    assert plan.targets is not None
    assert "${env:ORDERS_DB_PASSWORD}" in plan.targets.mongodb.uri
    with pytest.raises(Exception, match="frozen"):
        plan.name = "other"  # type: ignore[misc]


def test_windows_count_measurements() -> None:
    plan = load_plan(ROOT / "deployments" / "plans" / "unified-orders.yaml")
    window = plan.phases[0].window
    assert window is not None
    assert window.measurements == 24  # 2h every 5m


@pytest.mark.parametrize("path", BAD, ids=lambda p: p.name)
def test_running_a_bad_plan_exits_2_with_path_message_lines_before_touching_anything(
    path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from cli import main, rollouts

    # Nothing may be reached: any attempt to run a flow would fail this test loudly.
    monkeypatch.setattr(rollouts, "prefect_defaults", lambda: None)
    monkeypatch.setattr("flows.rollout_flow.rollout_flow", None)
    assert main.main(["run", str(path)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines and all(": " in line for line in lines), lines
    assert any(line.startswith(expectation(path)) for line in lines), lines


def test_a_mapping_used_as_a_key_is_refused_not_a_crash() -> None:
    with pytest.raises(PlanInvalid, match="a key is a mapping or a list; write a plain name"):
        parse_plan("{{}: 1}")


def test_a_key_that_looks_like_a_number_but_is_not_one_is_reported_by_its_path() -> None:
    with pytest.raises(PlanInvalid) as caught:
        parse_plan("name: p\n'²': 1\n")
    assert any(str(p).startswith("²: unknown key") for p in caught.value.problems)


UNLEASH_PLAN = """
name: orders
release: {version: v2, stable_version: v1}
flag: USE_UNIFIED_ORDERS
targets:
  mongodb: {uri: "mongodb://localhost:27017", database: shop}
  prometheus: {url: "http://localhost:9090"}
  service: {base_url: "http://localhost:8080"}
  unleash: {url: "https://unleash.internal", api_token: "${env:UNLEASH_TOKEN}", environment: production}
  {flagd}
backup: {enabled: false, waived_by: ops}
rollback: {restore: {mode: none}}
gates: {errors: {sli: error_ratio, max: 0.05}}
phases:
  - name: ramp
    window: {duration: 1m, interval: 10s, gates: [errors]}
    ramp: [12.5, 20]
"""


def test_unleash_takes_whole_percentages_and_flags_live_in_one_provider() -> None:
    with pytest.raises(PlanInvalid) as refused:
        parse_plan(UNLEASH_PLAN.replace("{flagd}", ""))
    assert [str(p) for p in refused.value.problems] == [
        "phases.0.ramp.0.percentage: 12.5 is not a whole percentage, which is all Unleash's flexibleRollout "
        "takes: use 12 or 13"
    ]
    with pytest.raises(PlanInvalid, match="targets: flags live in one place: set unleash or flagd, not both"):
        parse_plan(
            UNLEASH_PLAN.replace("{flagd}", "flagd: {path: /etc/flagd/flags.json}").replace("12.5", "12")
        )
    assert (
        parse_plan(UNLEASH_PLAN.replace("{flagd}", "").replace("12.5", "12")).targets.flag_provider
        == "unleash"
    )
