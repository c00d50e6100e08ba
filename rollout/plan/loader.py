"""Reading a plan: YAML text -> validated :class:`Plan`, or every problem at once.

Each problem is a :class:`~rollout.errors.Problem` whose path is the dotted
location in the YAML (``phases.2.ramp.1.percentage``) and whose message says
what to change. Nothing is started before a plan loads cleanly.
"""

from __future__ import annotations

import math
import re
from collections.abc import Hashable, Iterator
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from rollout.durations import format_duration
from rollout.errors import PlanInvalid, Problem
from rollout.plan.extends import Layered, layered
from rollout.plan.model import NAME_PATTERN, Plan

MIN_LEASE = timedelta(seconds=3)
"""The shortest lease a heartbeat can keep: it renews the lease every third of it."""

ROOT = "(plan)"


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe loader that refuses a key written twice in one mapping."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if not isinstance(key, Hashable):
            raise yaml.constructor.ConstructorError(
                None, None, "a key is a mapping or a list; write a plain name", key_node.start_mark
            )
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} appears twice; keep one", key_node.start_mark
            )
        seen.add(key)
    return dict(loader.construct_pairs(node))


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_mapping,
)


def parse_yaml(text: str) -> Any:
    """Parse YAML text, raising :class:`PlanInvalid` with line and column on a syntax error."""
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        what = error.problem or error.context or "invalid YAML"
        raise PlanInvalid([Problem(ROOT, f"not valid YAML: {where}{what}")]) from None
    except yaml.YAMLError as error:
        raise PlanInvalid([Problem(ROOT, f"not valid YAML: {error}")]) from None


def load_plan(path: str | Path) -> Plan:
    """Read and validate the plan at ``path`` (with the base files it extends)."""
    file = Path(path)
    return plan_from_data(read_plan_file(file), here=file)


def read_plan_file(file: Path, named: bool = False) -> Any:
    """The parsed YAML of ``file``; a missing or unreadable file is a problem naming it.

    ``named``: syntax errors name the file too (a base file, not the one the user gave).
    """
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PlanInvalid([Problem(ROOT, f"{file} does not exist; check the path")]) from None
    except (OSError, UnicodeDecodeError) as error:
        raise PlanInvalid([Problem(ROOT, f"cannot read {file}: {error}")]) from None
    if not named:
        return parse_yaml(text)
    try:
        return parse_yaml(text)
    except PlanInvalid as error:
        raise PlanInvalid([Problem(p.path, f"{file}: {p.message}") for p in error.problems]) from None


def parse_plan(text: str, base_dir: Path | None = None) -> Plan:
    """Validate a plan given as YAML text; a relative ``extends`` is found from ``base_dir`` (or here)."""
    return plan_from_data(parse_yaml(text), base_dir=base_dir)


def merged_plan_data(data: Any, here: Path | None = None, base_dir: Path | None = None) -> Any:
    """``data`` with the bases it extends merged in (unchanged when it extends nothing)."""
    return _layers(data, here, base_dir).data if isinstance(data, dict) else data


def _layers(data: dict[str, Any], here: Path | None, base_dir: Path | None) -> Layered:
    folder = base_dir or (here.parent if here is not None else Path.cwd())
    where = (here or folder / "(pasted plan)").resolve()
    return layered(data, where, folder, partial(read_plan_file, named=True))


def plan_from_data(data: Any, here: Path | None = None, base_dir: Path | None = None) -> Plan:
    """Validate a plan already parsed into Python data (``here``: the file it was read from)."""
    if not isinstance(data, dict):
        kind = "empty" if data is None else f"a {type(data).__name__}"
        raise PlanInvalid([Problem(ROOT, f"a plan is a YAML mapping (name:, phases:, ...), not {kind}")])
    layers = _layers(data, here, base_dir)
    try:
        plan = Plan.model_validate(layers.data)
    except ValidationError as error:
        raise PlanInvalid([_located(_problem(e), layers) for e in error.errors()]) from None
    problems = [_located(p, layers) for p in cross_field_problems(plan)]
    if problems:
        raise PlanInvalid(problems)
    return plan


def _located(problem: Problem, layers: Layered) -> Problem:
    """``problem``, naming the base file it must be fixed in when the part came from one."""
    keys = problem.path.split(".") if problem.path != ROOT else []
    parts = tuple(int(k) if k.isascii() and k.isdigit() else k for k in keys)
    origin = layers.origin(parts)
    if origin is None or origin == layers.top:
        return problem
    return Problem(problem.path, f"{problem.message} (written in {origin})")


def cross_field_problems(plan: Plan) -> Iterator[Problem]:
    """Find problems that involve more than one part of the plan."""
    defined = sorted(plan.gates)
    for name in plan.gates:
        if not re.match(NAME_PATTERN, name):
            yield Problem(f"gates.{name}", "gate names are lowercase letters, digits and dashes")
    seen_phases: dict[str, int] = {}
    last_percentage: tuple[float, str] | None = None
    for p, phase in enumerate(plan.phases):
        if phase.name in seen_phases:
            yield Problem(
                f"phases.{p}.name",
                f"'{phase.name}' is already the name of phases.{seen_phases[phase.name]}; "
                "names must be unique",
            )
        seen_phases.setdefault(phase.name, p)
        windows = [(f"phases.{p}.window", phase.window)]
        windows += [(f"phases.{p}.ramp.{s}.window", step.window) for s, step in enumerate(phase.ramp or [])]
        for where, window in windows:
            for g, gate in enumerate(window.gates if window else []):
                if gate not in plan.gates:
                    known = ", ".join(defined) or "none yet"
                    yield Problem(
                        f"{where}.gates.{g}",
                        f"gate '{gate}' is not defined; define it under gates (defined: {known})",
                    )
        if phase.ramp:
            first = phase.ramp[0].percentage
            if last_percentage is not None and first <= last_percentage[0]:
                yield Problem(
                    f"phases.{p}.ramp.0.percentage",
                    f"{first:g} does not go beyond {last_percentage[0]:g} reached in "
                    f"{last_percentage[1]}; ramps must keep increasing",
                )
            last_percentage = (phase.ramp[-1].percentage, f"phases.{seen_phases[phase.name]}")
    if plan.targets is not None and plan.targets.unleash is not None:
        for p, phase in enumerate(plan.phases):
            for s, step in enumerate(phase.ramp or []):
                if not step.percentage.is_integer():
                    yield Problem(
                        f"phases.{p}.ramp.{s}.percentage",
                        f"{step.percentage:g} is not a whole percentage, which is all Unleash's "
                        f"flexibleRollout takes: use {math.floor(step.percentage)} "
                        f"or {math.ceil(step.percentage)}",
                    )
        yield from _unleash_limits(plan)
    for p, phase in enumerate(plan.phases):
        for kind in ("users", "stores"):
            for i, value in enumerate(getattr(phase.allowlist, kind) if phase.allowlist else []):
                if value != value.strip() or not value:
                    yield Problem(
                        f"phases.{p}.allowlist.{kind}.{i}",
                        f"{value!r} has spaces around it (or is empty): Unleash's Node SDK trims the id it "
                        f"is asked about, so {value.strip()!r} would not match it; write {value.strip()!r}",
                    )
    targets = plan.targets
    flagd = targets.flagd if targets is not None else None
    if (
        targets is not None
        and flagd is not None
        and flagd.configmap is not None
        and targets.kubernetes is None
    ):
        yield Problem(
            "targets.flagd.configmap",
            "a ConfigMap lives in a cluster: add targets.kubernetes (its namespace holds the ConfigMap), "
            "or keep the definitions in a file with targets.flagd.path",
        )
    if plan.targets is not None and plan.backup.enabled and plan.targets.s3 is None:
        yield Problem(
            "targets.s3",
            "the backup needs a bucket: add targets.s3, or waive the backup with "
            "backup.enabled: false and backup.waived_by",
        )
    if plan.lease_ttl is not None and plan.lease_ttl < MIN_LEASE:
        yield Problem(
            "lease_ttl",
            f"{format_duration(plan.lease_ttl)} is too short: the run renews its lease every third of it, "
            f"so give at least {format_duration(MIN_LEASE)} (or leave it out for 1m)",
        )
    restore = plan.rollback.restore
    if restore.mode != "none" and not plan.backup.enabled:
        yield Problem(
            "rollback.restore.mode",
            f"a {restore.mode} restore needs the pre-rollout backup, which is waived: "
            "enable the backup or set mode: none",
        )
    backed_up = plan.backup.collections
    if backed_up is not None:
        for c, name in enumerate(restore.collections):
            if name not in backed_up:
                yield Problem(
                    f"rollback.restore.collections.{c}",
                    f"'{name}' is not in backup.collections, so there is nothing to restore it from: "
                    "add it there",
                )


def _problem(error: ErrorDetails) -> Problem:
    loc = tuple(error["loc"])
    path = ".".join(str(part) for part in loc) or ROOT
    kind = error["type"]
    if kind == "extra_forbidden":
        allowed = _allowed_keys(loc[:-1])
        hint = f" (allowed: {', '.join(allowed)})" if allowed else ""
        return Problem(path, f"unknown key; remove it or fix its spelling{hint}")
    if kind == "missing":
        return Problem(path, "required; add it")
    message = error["msg"]
    if kind == "value_error":
        message = message.removeprefix("Value error, ")
    elif kind == "literal_error":
        message = message.replace("Input should be", "must be one of:")
    elif kind == "string_pattern_mismatch":
        message = f"{error['input']!r} has the wrong form; use lowercase letters, digits and dashes"
    elif "input" in error and kind.endswith("_type"):
        message = f"{message}, got {type(error['input']).__name__} {error['input']!r}"
    return Problem(path, message)


def _allowed_keys(loc: tuple[Any, ...]) -> list[str]:
    """Walk the model along ``loc`` and list the keys allowed there."""
    model: type[BaseModel] | None = Plan
    for part in loc:
        if model is None:
            return []
        if isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        if field is None:
            # A key of a dict of models (gates.<name>): the model stays the value type.
            continue
        model = _model_of(field.annotation)
    return sorted(model.model_fields) if model else []


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_of(arg)
        if found is not None:
            return found
    return None


UNLEASH_MAX_VALUES = 250
"""Values one Unleash constraint takes (Unleash 7 refuses more: "the established limit of 250")."""
UNLEASH_MAX_VALUE_LENGTH = 100
"""UTF-16 units one Unleash constraint value takes."""


def _unleash_limits(plan: Plan) -> Iterator[Problem]:
    """Unleash's own limits on the constraints the rollout writes (users IN ..., storeId IN ...).

    The audience only grows, so the users and stores constraints hold every allowlisted id (and
    every pilot store) of the phases so far: the phase whose ids pass a limit is named.
    """
    users, stores = 0, 0
    for p, phase in enumerate(plan.phases):
        allow = phase.allowlist
        for kind, values in (
            ("users", allow.users if allow else []),
            ("stores", allow.stores if allow else []),
        ):
            for i, value in enumerate(values):
                if len(value.encode("utf-16-le")) // 2 > UNLEASH_MAX_VALUE_LENGTH:
                    yield Problem(
                        f"phases.{p}.allowlist.{kind}.{i}",
                        f"longer than the {UNLEASH_MAX_VALUE_LENGTH} UTF-16 units an Unleash constraint "
                        "value takes: use a shorter id",
                    )
        users += len(allow.users) if allow else 0
        stores += (len(allow.stores) if allow else 0) + (
            phase.pilot_stores.limit if phase.pilot_stores else 0
        )
        for kind, count in (("users", users), ("stores", stores)):
            if count > UNLEASH_MAX_VALUES:
                where = (
                    "pilot_stores.limit" if kind == "stores" and phase.pilot_stores else f"allowlist.{kind}"
                )
                yield Problem(
                    f"phases.{p}.{where}",
                    f"{count} {kind} by this phase: an Unleash constraint takes {UNLEASH_MAX_VALUES} values "
                    "at most, and Unleash refuses the write mid-rollout; admit the rest by percentage",
                )
                return
