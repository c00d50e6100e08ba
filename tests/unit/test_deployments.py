from pathlib import Path

from flows.prefect_deployments import check_deployments

ROOT = Path(__file__).resolve().parents[2]


def broken_copy(tmp_path: Path, *replacements: tuple[str, str]) -> Path:
    text = (ROOT / "prefect.yaml").read_text()
    for old, new in replacements:
        assert old in text
        text = text.replace(old, new, 1)
    (tmp_path / "flows").symlink_to(ROOT / "flows")
    (tmp_path / "deployments").symlink_to(ROOT / "deployments")
    path = tmp_path / "prefect.yaml"
    path.write_text(text)
    return path


def test_the_shipped_prefect_yaml_is_clean() -> None:
    assert check_deployments(ROOT / "prefect.yaml") == []


def test_a_bad_cron_is_named_with_its_deployment(tmp_path: Path) -> None:
    config = broken_copy(tmp_path, ('cron: "0 2 * * *"', 'cron: "0 25 * * *"'))
    [problem] = check_deployments(config)
    assert str(problem).startswith(
        "deployments[data-checks-nightly].schedules[0].cron: '0 25 * * *' does not parse"
    )


def test_a_missing_plan_an_unknown_parameter_and_a_missing_flow_are_each_reported(tmp_path: Path) -> None:
    config = broken_copy(
        tmp_path,
        (
            "plan_path: deployments/plans/sandbox-demo.yaml",
            "plan_path: deployments/plans/nope.yaml\n      dryrun: true",
        ),
        ("entrypoint: flows/promote.py:promote_flow", "entrypoint: flows/promote.py:approve_flow"),
    )
    problems = [str(p) for p in check_deployments(config)]
    assert (
        "deployments[rollout-manual].parameters.plan_path: deployments/plans/nope.yaml does not exist"
        in problems
    )
    assert any(
        p.startswith("deployments[rollout-manual].parameters.dryrun: the flow takes no such parameter")
        for p in problems
    )
    assert (
        "deployments[pilot-promotion].entrypoint: flows/promote.py has no flow named 'approve_flow'"
        in problems
    )


def test_a_pasted_plan_in_a_deployment_is_validated_like_a_file(tmp_path: Path) -> None:
    config = broken_copy(
        tmp_path,
        (
            "    parameters: *demo_plan\n    work_pool: *local_pool\n\n  - name: rollout-scheduled",
            '    parameters: {plan_yaml: "name: x\\nflag: F\\n"}\n    work_pool: *local_pool\n\n'
            "  - name: rollout-scheduled",
        ),
    )
    problems = [str(p) for p in check_deployments(config)]
    assert problems and all(
        p.startswith("deployments[rollout-manual].parameters.plan_yaml: ") for p in problems
    )
    assert any("release" in p for p in problems)
