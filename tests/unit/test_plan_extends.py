from pathlib import Path

import pytest
import yaml

from rollout.errors import PlanInvalid
from rollout.plan import load_plan
from rollout.plan.source import keep_inline_plan

ROOT = Path(__file__).resolve().parents[2]
FEATURES = ROOT / "deployments" / "plans" / "advanced-features"
BASE = """
release: {version: v2}
backup: {enabled: false, waived_by: 'ops: flags only'}
gates:
  errors: {sli: error_ratio, max: 0.01, failure_limit: 1}
phases:
  - {name: a, ramp: [10, 50, 100], window: {interval: 1m, count: 2}}
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(PlanInvalid) as caught:
        load_plan(path)
    return [str(p) for p in caught.value.problems]


def test_the_six_features_share_one_base_and_each_has_its_own_flag() -> None:
    plans = [load_plan(p) for p in sorted(FEATURES.glob("*.yaml")) if not p.name.startswith("_")]
    assert len(plans) == 6
    assert len({p.flag for p in plans}) == 6
    assert all(set(p.gates) == {"error-ratio", "latency-p99"} for p in plans)
    assert all(p.gates["error-ratio"].max == 0.01 for p in plans)
    ramps = {p.name: [s.percentage for s in p.phases[1].ramp or []] for p in plans}
    assert ramps["dark-mode"] == [10, 50, 100]
    assert ramps["notifications-v2"] == [30, 100]  # overridden in its own file


def test_mappings_merge_key_by_key_and_lists_replace(tmp_path: Path) -> None:
    write(tmp_path, "base.yaml", BASE)
    child = write(
        tmp_path,
        "child.yaml",
        "extends: base.yaml\nname: c\nflag: F\ngates: {errors: {max: 0.05}}\n"
        "phases: [{name: b, ramp: [20, 100], window: {interval: 1m, count: 1}}]\n",
    )
    plan = load_plan(child)
    assert (plan.gates["errors"].max, plan.gates["errors"].failure_limit) == (0.05, 1)
    assert [p.name for p in plan.phases] == ["b"]


def test_a_problem_in_the_base_names_the_base_file_and_one_in_the_plan_does_not(tmp_path: Path) -> None:
    base = write(tmp_path, "base.yaml", BASE.replace("max: 0.01", "max: high"))
    child = write(tmp_path, "child.yaml", "extends: base.yaml\nname: c\nflag: F\nphasess: []\n")
    found = problems(child)
    assert any(p.startswith("gates.errors.max: ") and p.endswith(f"(written in {base})") for p in found), (
        found
    )
    assert any(p.startswith("phasess: unknown key") and "written in" not in p for p in found), found


def test_a_chain_of_bases_merges_in_order(tmp_path: Path) -> None:
    write(tmp_path, "root.yaml", BASE)
    (tmp_path / "teams").mkdir()
    write(tmp_path / "teams", "payments.yaml", "extends: ../root.yaml\ngates: {errors: {max: 0.02}}\n")
    plan = load_plan(write(tmp_path / "teams", "refunds.yaml", "extends: payments.yaml\nname: r\nflag: R\n"))
    assert plan.gates["errors"].max == 0.02


def test_a_missing_base_and_a_circle_name_the_chain_of_files(tmp_path: Path) -> None:
    child = write(tmp_path, "child.yaml", "extends: nowhere.yaml\nname: c\nflag: F\n")
    assert problems(child) == [
        f"extends: nowhere.yaml does not exist ({child} -> {tmp_path / 'nowhere.yaml'}): check the path"
    ]
    a = write(tmp_path, "a.yaml", "extends: b.yaml\nname: a\nflag: A\n")
    write(tmp_path, "b.yaml", "extends: a.yaml\n")
    (found,) = problems(a)
    assert found.startswith(
        f"extends: the plans extend each other in a circle ({a} -> {tmp_path / 'b.yaml'} -> {a})"
    )


def test_a_changed_base_changes_the_plans_digest(tmp_path: Path) -> None:
    base = write(tmp_path, "base.yaml", BASE)
    child = write(tmp_path, "child.yaml", "extends: base.yaml\nname: c\nflag: F\n")
    before = load_plan(child).digest
    base.write_text(BASE.replace("max: 0.01", "max: 0.02"))
    assert load_plan(child).digest != before


def test_a_pasted_plan_extends_from_the_working_directory_and_is_kept_merged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ROLLOUT_PLANS_DIR", str(tmp_path / "kept"))
    write(tmp_path, "base.yaml", BASE)
    kept = keep_inline_plan("extends: base.yaml\nname: pasted\nflag: P\n")
    data = yaml.safe_load(kept.read_text())
    assert "extends" not in data and data["gates"]["errors"]["max"] == 0.01
    (tmp_path / "base.yaml").unlink()  # the run carries on with what was validated
    assert load_plan(kept).flag == "P"
