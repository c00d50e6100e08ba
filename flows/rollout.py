"""The rollout flow: phases in order, each traffic step set and then observed."""

from __future__ import annotations

from dataclasses import dataclass

from prefect import flow, get_run_logger

from rollout.errors import PermanentError
from rollout.plan import Plan, load_plan
from rollout.plan.model import Targets
from rollout.sandbox.stack import load as load_sandbox
from rollout.traffic import Audience, phase_steps
from tasks.observe import Observation, observe_window
from tasks.traffic import choose_pilot_stores, set_audience, set_companion_flags


@dataclass(frozen=True)
class StepResult:
    """One traffic step as it happened."""

    phase: str
    step: str
    audience: str
    observation: Observation | None


@dataclass(frozen=True)
class RolloutResult:
    """What the rollout did, step by step."""

    plan: str
    steps: tuple[StepResult, ...]
    final_audience: str


def resolve_targets(plan: Plan, targets: Targets | None) -> Targets:
    """Explicit targets win; then the plan's; then a running local sandbox."""
    if targets is not None:
        return targets
    if plan.targets is not None:
        return plan.targets
    sandbox = load_sandbox()
    if sandbox is None:
        raise PermanentError(
            f"plan {plan.name} names no targets and no sandbox is running: start one with "
            "`rollout sandbox up`, or add targets to the plan"
        )
    return sandbox.targets()


@flow(name="rollout")
def rollout_flow(plan_path: str, targets: Targets | None = None) -> RolloutResult:
    """Run the plan at ``plan_path``: every phase's traffic steps, each held for its window."""
    logger = get_run_logger()
    plan = load_plan(plan_path)
    resolved = resolve_targets(plan, targets)
    audience = Audience()
    results: list[StepResult] = []
    for phase in plan.phases:
        logger.info("phase %s", phase.name)
        if phase.flags:
            set_companion_flags(resolved, phase.flags)
        pilot = choose_pilot_stores(resolved, phase.pilot_stores) if phase.pilot_stores else []
        for step in phase_steps(phase, audience, pilot):
            set_audience(resolved, plan.flag, step.audience)
            observation = None
            if step.window is not None:
                gates = {name: plan.gates[name] for name in step.window.gates}
                observation = observe_window(resolved, step.window, gates)
            results.append(StepResult(phase.name, step.label, step.audience.describe(), observation))
            audience = step.audience
    return RolloutResult(plan.name, tuple(results), audience.describe())
