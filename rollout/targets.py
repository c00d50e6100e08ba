"""Which systems a run acts on: explicit targets, the plan's, or the local sandbox."""

from __future__ import annotations

from rollout.errors import PermanentError
from rollout.plan import Plan
from rollout.plan.model import Targets
from rollout.sandbox.stack import load as load_sandbox


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
