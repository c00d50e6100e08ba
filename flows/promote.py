"""Pilot promotion as a deployment: a person approves (or rejects) a paused rollout from the UI."""

from typing import Literal
from uuid import UUID

from prefect import flow, get_run_logger
from prefect.flow_runs import resume_flow_run

from flows.decision import answer


@flow(name="promote")
def promote_flow(
    run_id: str,
    decision: Literal["approve", "reject"],
    approver: str,
    note: str = "",
    ticked: tuple[str, ...] = (),
) -> str:
    """Resume the paused rollout ``run_id`` with a decision recorded under ``approver``'s name.

    Args:
        run_id: The paused rollout run (its id is in the run's page and its log).
        decision: approve: go on with the rollout; reject: roll it back.
        approver: Who decides.
        note: Why, for the record.
        ticked: The checklist items confirmed (all of the phase's are needed to approve).
    """
    resume_flow_run(UUID(run_id), run_input=answer(decision, approver, note, ticked))
    said = "approved" if decision == "approve" else "rejected"
    get_run_logger().info("rollout run %s %s by %s", run_id, said, approver)
    return f"{said} by {approver}"
