"""The plan reference, generated from the models so it never drifts from the code."""

from __future__ import annotations

import types
import typing
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from rollout.durations import format_duration
from rollout.plan.model import Plan


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in get_args(annotation) for m in _models_in(arg)]


def _type_name(annotation: Any) -> str:
    origin = get_origin(annotation)
    args = get_args(annotation)
    if origin is typing.Annotated:
        return "duration" if "timedelta" in repr(args[0]) else _type_name(args[0])
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in args if a is not type(None))
    if origin is Literal:
        return " \\| ".join(f"`{a}`" for a in args)
    if origin is list:
        return f"list of {_type_name(args[0])}"
    if origin is dict:
        return f"map of {_type_name(args[0])} to {_type_name(args[1])}"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return f"[{annotation.__name__}](#{annotation.__name__.lower()})"
    name = getattr(annotation, "__name__", str(annotation))
    return {"timedelta": "duration", "str": "string", "float": "number", "int": "integer"}.get(name, name)


def _default(field: Any) -> str:
    if field.is_required():
        return "**required**"
    if field.default_factory is not None:
        value = field.default_factory()
        return "" if isinstance(value, BaseModel) else f"`{value!r}`" if value else ""
    value = field.default
    if value is None or value is PydanticUndefined:
        return ""
    if hasattr(value, "total_seconds"):
        return f"`{format_duration(value)}`"
    return f"`{value!r}`"


def plan_reference() -> str:
    """Markdown describing every model of the plan, starting with :class:`Plan`."""
    seen: list[type[BaseModel]] = []
    queue: list[type[BaseModel]] = [Plan]
    while queue:
        model = queue.pop(0)
        if model in seen:
            continue
        seen.append(model)
        for field in model.model_fields.values():
            queue.extend(_models_in(field.annotation))
    out = []
    for model in seen:
        doc = (model.__doc__ or "").strip().splitlines()[0]
        out.append(f"### {model.__name__}\n\n{doc}\n\n| key | type | default | meaning |\n|---|---|---|---|")
        for name, field in model.model_fields.items():
            key = field.alias or name
            out.append(
                f"| `{key}` | {_type_name(field.annotation)} | {_default(field)} | {field.description} |"
            )
        out.append("")
    return "\n".join(out)
