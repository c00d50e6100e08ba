from pathlib import Path

from pydantic import BaseModel

from rollout.plan.reference import plan_reference

README = Path(__file__).resolve().parents[2] / "README.md"


def _models() -> list[type[BaseModel]]:
    import rollout.plan.model as module

    return [
        m
        for m in vars(module).values()
        if isinstance(m, type) and issubclass(m, BaseModel) and m.__module__.startswith(module.__name__)
    ]


def test_every_plan_field_is_documented() -> None:
    undocumented = [
        f"{m.__name__}.{name}"
        for m in _models()
        for name, field in m.model_fields.items()
        if not (field.description or "").strip()
    ]
    assert undocumented == []


def test_readme_carries_the_current_plan_reference() -> None:
    assert plan_reference() in README.read_text(), "README's plan reference is stale: run `make reference`"
