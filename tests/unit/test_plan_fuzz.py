"""The plan loader fuzzed: whatever it is given, a Plan or PlanInvalid with `path: message` problems."""

import copy
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rollout.errors import PlanInvalid
from rollout.plan import parse_plan, plan_from_data
from rollout.plan.model import Plan

ROOT = Path(__file__).resolve().parents[2]
VALID = yaml.safe_load((ROOT / "deployments" / "plans" / "unified-orders.yaml").read_text())

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["30s", "5m", "-1s", "0", "100", "${env:X}", "${secret:y}", "hunter2", "$out", "SEV1"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)


def paths(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(data, dict):
        for key, value in data.items():
            found += paths(value, (*prefix, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            found += paths(value, (*prefix, index))
    return found


PATHS = paths(VALID)[1:]


def check(outcome: Any) -> None:
    assert isinstance(outcome, Plan)


def refused_properly(error: PlanInvalid) -> None:
    assert error.problems
    for problem in error.problems:
        assert problem.path and problem.message
        assert str(problem) == f"{problem.path}: {problem.message}"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(path=st.sampled_from(PATHS), value=values, delete=st.booleans())
def test_a_valid_plan_with_any_one_part_changed_loads_or_is_refused_by_field(
    path: tuple[Any, ...], value: Any, delete: bool
) -> None:
    data = copy.deepcopy(VALID)
    parent = data
    for part in path[:-1]:
        parent = parent[part]
    if delete:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    try:
        check(plan_from_data(data))
    except PlanInvalid as error:
        refused_properly(error)


@settings(max_examples=300, deadline=None)
@given(data=values)
def test_any_data_at_all_loads_or_is_refused_by_field(data: Any) -> None:
    try:
        check(plan_from_data(data))
    except PlanInvalid as error:
        refused_properly(error)


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=200))
def test_any_text_at_all_is_refused_with_a_reason_not_a_crash(text: str) -> None:
    try:
        check(parse_plan(text))
    except PlanInvalid as error:
        refused_properly(error)
