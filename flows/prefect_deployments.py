"""Checks of prefect.yaml before anything is registered: flows, plans, parameters and schedules."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any
from uuid import UUID

import yaml
from prefect import Flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import DeploymentScheduleCreate, DeploymentUpdate
from prefect.client.schemas.objects import ConcurrencyLimitConfig
from prefect.client.schemas.schedules import CronSchedule, IntervalSchedule, RRuleSchedule
from prefect.deployments.runner import RunnerDeployment
from prefect.events import DeploymentEventTrigger, DeploymentTriggerTypes, TriggerTypes
from prefect.utilities.callables import parameter_schema
from pydantic import ValidationError

from rollout.errors import PlanInvalid, Problem
from rollout.plan import load_plan, parse_plan


class DeploymentsInvalid(PlanInvalid):
    """prefect.yaml has problems; nothing was registered."""


def _flow(entrypoint: str, root: Path) -> Flow[Any, Any] | str:
    path, _, name = entrypoint.partition(":")
    if not (root / path).is_file():
        return f"{path} does not exist"
    try:
        module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
    except ImportError as error:
        return f"cannot import {path}: {error}"
    found = getattr(module, name, None)
    return found if isinstance(found, Flow) else f"{path} has no flow named {name!r}"


def _schedule_problems(where: str, schedule: dict[str, Any]) -> list[Problem]:
    kinds = {"cron": CronSchedule, "interval": IntervalSchedule, "rrule": RRuleSchedule}
    chosen = [k for k in kinds if k in schedule]
    if len(chosen) != 1:
        return [Problem(where, "a schedule has exactly one of cron, interval or rrule")]
    kind = chosen[0]
    fields = {k: v for k, v in schedule.items() if k in {kind, "timezone", "anchor_date", "day_or"}}
    unknown = set(schedule) - {kind, "timezone", "anchor_date", "day_or", "active", "parameters", "slug"}
    if unknown:
        return [Problem(where, f"unknown schedule field(s): {', '.join(sorted(unknown))}")]
    try:
        kinds[kind](**fields)
    except ValidationError as error:
        message = "; ".join(str(e["msg"]) for e in error.errors())
        return [Problem(f"{where}.{kind}", f"{schedule[kind]!r} does not parse: {message}")]
    return []


def check_deployments(config: Path) -> list[Problem]:
    """Every problem in ``config``, each as ``deployments[name].field: message``."""
    root = config.resolve().parent
    try:
        data = yaml.safe_load(config.read_text())
    except (OSError, yaml.YAMLError) as error:
        return [Problem(str(config), f"cannot be read as YAML: {error}")]
    problems: list[Problem] = []
    for index, deployment in enumerate(data.get("deployments") or []):
        name = deployment.get("name") or f"#{index}"
        where = f"deployments[{name}]"
        found = _flow(str(deployment.get("entrypoint", "")), root)
        if isinstance(found, str):
            problems.append(Problem(f"{where}.entrypoint", found))
            continue
        parameters = deployment.get("parameters") or {}
        known = set(parameter_schema(found.fn).properties)
        problems += [
            Problem(
                f"{where}.parameters.{key}",
                f"the flow takes no such parameter (it takes {', '.join(sorted(known))})",
            )
            for key in parameters
            if key not in known
        ]
        plan_path = parameters.get("plan_path")
        if plan_path:
            if not (root / plan_path).is_file():
                problems.append(Problem(f"{where}.parameters.plan_path", f"{plan_path} does not exist"))
            else:
                try:
                    load_plan(root / plan_path)
                except PlanInvalid as error:
                    problems += [
                        Problem(f"{where}.parameters.plan_path", f"{plan_path}: {p}") for p in error.problems
                    ]
        plan_yaml = parameters.get("plan_yaml")
        if plan_yaml:
            try:
                parse_plan(str(plan_yaml))
            except PlanInvalid as error:
                problems += [Problem(f"{where}.parameters.plan_yaml", str(p)) for p in error.problems]
        for s, schedule in enumerate(deployment.get("schedules") or []):
            problems += _schedule_problems(f"{where}.schedules[{s}]", schedule)
    if not data.get("deployments"):
        problems.append(Problem(str(config), "declares no deployments"))
    if not data.get("pull"):
        fix = "add a pull step such as prefect.deployments.steps.set_working_directory"
        problems.append(Problem(f"{config}.pull", f"a worker would not find the flows' code: {fix}"))
    return problems


def _schedules(deployment: dict[str, Any]) -> list[DeploymentScheduleCreate]:
    made = []
    for spec in deployment.get("schedules") or []:
        kind = next(k for k in ("cron", "interval", "rrule") if k in spec)
        extras = {k: v for k, v in spec.items() if k in {"timezone", "anchor_date", "day_or"}}
        schedule = {"cron": CronSchedule, "interval": IntervalSchedule, "rrule": RRuleSchedule}[kind](
            **{kind: spec[kind]}, **extras
        )
        made.append(DeploymentScheduleCreate(schedule=schedule, active=spec.get("active", True)))
    return made


def _concurrency(deployment: dict[str, Any]) -> ConcurrencyLimitConfig | int | None:
    spec = deployment.get("concurrency_limit")
    if isinstance(spec, dict):
        return ConcurrencyLimitConfig(**spec)
    return int(spec) if spec is not None else None


PLUMBING = frozenset({"targets", "first_bad_at", "on_behalf_of"})
"""Parameters that programs pass (tests, automations, a rollout to its rollback), left out of forms.

The server still takes them over the API: the deployment's schema allows properties it does not list.
"""


def form_schema(flow: Flow[Any, Any]) -> dict[str, Any]:
    """The flow's parameter schema as the UI's forms show it: every parameter but the plumbing."""
    schema = parameter_schema(flow.fn)
    kept = {name: spec for name, spec in schema.properties.items() if name not in PLUMBING}
    return schema.model_copy(
        update={"properties": kept, "required": [name for name in schema.required if name in kept]}
    ).model_dump_for_openapi()


def register_deployments(config: Path) -> list[str]:
    """Check ``config`` whole, then register each deployment on the server; returns their names.

    Nothing is registered unless every deployment passes :func:`check_deployments`.
    """
    problems = check_deployments(config)
    if problems:
        raise DeploymentsInvalid(problems)
    data = yaml.safe_load(config.read_text())
    pull = data.get("pull") or []
    registered = []
    for deployment in data["deployments"]:
        flow = _flow(deployment["entrypoint"], config.resolve().parent)
        assert isinstance(flow, Flow)
        pool = deployment.get("work_pool") or {}
        triggers: list[DeploymentTriggerTypes | TriggerTypes] = [
            DeploymentEventTrigger(**{k: v for k, v in spec.items() if k != "type"})
            for spec in deployment.get("triggers") or []
        ]
        runner = flow.to_deployment(
            name=deployment["name"],
            description=deployment.get("description"),
            parameters=deployment.get("parameters") or {},
            schedules=_schedules(deployment),
            triggers=triggers or None,
            work_pool_name=pool.get("name"),
            work_queue_name=pool.get("work_queue_name"),
            concurrency_limit=_concurrency(deployment),
        )
        # Called from synchronous code, Prefect's sync-compatible method returns the deployment itself.
        assert isinstance(runner, RunnerDeployment)
        deployment_id = runner.apply(work_pool_name=pool.get("name"))
        assert isinstance(deployment_id, UUID)
        # A worker runs each flow in a fresh directory: the file's pull steps take it to the code.
        with get_client(sync_client=True) as client:
            client.update_deployment(
                deployment_id, DeploymentUpdate(pull_steps=pull, parameter_openapi_schema=form_schema(flow))
            )
        registered.append(deployment["name"])
    return registered
