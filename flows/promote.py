"""Pilot promotion as a deployment: a person approves (or rejects) a paused rollout from the UI."""

from uuid import UUID

from prefect import flow, get_run_logger
from prefect.flow_runs import resume_flow_run


@flow(name="promote")
def promote_flow(run_id: str, approver: str, note: str = "", approve: bool = True) -> str:
    """Resume the paused rollout ``run_id`` with a decision recorded under ``approver``'s name."""
    resume_flow_run(UUID(run_id), run_input={"approved": approve, "approver": approver, "note": note})
    decision = "approved" if approve else "rejected"
    get_run_logger().info("rollout run %s %s by %s", run_id, decision, approver)
    return f"{decision} by {approver}"
