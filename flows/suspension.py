"""A run waiting for a person or a time: paused with its process held, or suspended with it ended."""

import math
import re

from prefect import State, get_run_logger
from prefect.client.orchestration import get_client
from prefect.context import get_run_context
from prefect.exceptions import FlowPauseTimeout, Pause
from prefect.flow_runs import pause_flow_run, suspend_flow_run
from prefect.states import Running

from flows.decision import Decision


def pause_for(what: str, timeout_seconds: float, form: type[Decision]) -> Decision | None:
    """Pause the run (its process waiting) for a decision; None when nobody answered in time."""
    logger = get_run_logger()
    run_id = get_run_context().flow_run.id  # type: ignore[union-attr]
    logger.warning(
        "waiting for a decision on %s: resume in the UI, or `rollout promote %s --approver NAME`",
        what,
        run_id,
    )
    try:
        return pause_flow_run(
            wait_for_input=form, timeout=max(1, math.ceil(timeout_seconds)), poll_interval=2
        )
    except FlowPauseTimeout:
        # The server refuses every state but Failed to a run whose pause ran out; the rollout goes
        # on (it holds or rolls back, as the plan says), so the run is put back to Running first.
        with get_client(sync_client=True) as client:
            client.set_flow_run_state(run_id, Running(message=f"no decision in time on {what}"), force=True)
        return None


def suspend_for(key: str, message: str, form: type[Decision] | None = None) -> Decision | None:
    """Suspend the run (its process ends) under ``key``, its Paused state saying ``message``.

    Returns the decision when the run was woken with one (the run starts again from the top and
    comes back here). Prefect's suspension carries no message, so the state it set is restated
    with one, its details (the key, where the form's answer goes) kept as they are: only while it
    is still the run's state, so that a Resume given in between is never undone.
    """
    try:
        return suspend_flow_run(wait_for_input=form, key=key) if form else suspend_flow_run(key=key)
    except Pause as paused:
        state = paused.state
        run_id = get_run_context().flow_run.id  # type: ignore[union-attr]
        if isinstance(state, State):
            said = State(type=state.type, name=state.name, message=message, state_details=state.state_details)
            with get_client(sync_client=True) as client:
                now = client.read_flow_run(run_id).state
                if now is not None and now.id == state.id:
                    client.set_flow_run_state(run_id, said, force=True)
        raise


def suspension_key(*parts: str) -> str:
    """A suspension's key as Prefect keeps run inputs under it: letters, digits and dashes only."""
    return re.sub(r"[^A-Za-z0-9-]+", "-", "-".join(parts))
