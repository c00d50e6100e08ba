"""Commands that drive rollouts: run, roll back, status, promote, reconcile."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from cli.common import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_ROLLED_BACK,
    Subcommands,
    exit_code,
    prefect_defaults,
)
from rollout.errors import InputRejected

if TYPE_CHECKING:
    from rollout.lifecycle.record import RunRecord


def cmd_run(args: argparse.Namespace) -> int:
    """Run a plan (its own targets, or the running sandbox)."""
    prefect_defaults()
    from flows.outcomes import result_of
    from flows.rollout_flow import rollout_flow
    from flows.rollout_result import RolloutResult
    from rollout.plan import load_plan
    from rollout.reporting.result_text import render_result, result_json

    load_plan(args.plan)
    state = rollout_flow(
        plan_path=str(args.plan),
        dry_run=args.dry_run,
        approval_timeout=args.approval_timeout or "",
        rollout_id=args.rollout_id or "",
        force=args.force,
        reason=args.reason or "",
        restart_ramp=args.restart_ramp,
        return_state=True,
    )
    result = result_of(state, RolloutResult)
    print(result_json(result) if args.json else render_result(result))
    return exit_code(result)


def cmd_rollback(args: argparse.Namespace) -> int:
    """Undo the plan's last rollout from its persisted state; 0 when there was nothing to do."""
    if not (args.reason or "").strip():
        what = "--force needs --reason: say why" if args.force else "--reason is required: say why"
        raise InputRejected(f"{what} the rollout is being rolled back (it goes into the report)")
    prefect_defaults()
    from flows.outcomes import result_of
    from flows.rollback import AS_PLANNED, RollbackResult, rollback_flow
    from rollout.plan import load_plan

    load_plan(args.plan)
    collections = tuple(c.strip() for c in (args.collections or "").split(",") if c.strip())
    state = rollback_flow(
        plan_path=str(args.plan),
        reason=args.reason,
        severity=args.severity or AS_PLANNED,
        restore=args.restore or AS_PLANNED,
        collections=collections,
        force=args.force,
        return_state=True,
    )
    result = result_of(state, RollbackResult)
    if result.outcome == "nothing-to-do":
        print(f"nothing to do: {result.note}")
        return EXIT_OK
    for step in result.steps:
        print(f"{step.name}: {'ok' if step.ok else 'FAILED'} ({step.detail})")
    if result.report:
        print(f"report: {result.report}")
    return EXIT_ROLLED_BACK if result.outcome == "rolled-back" else EXIT_FAILED


def cmd_status(args: argparse.Namespace) -> int:
    """Print where the plan's last rollout stands, from its persisted record."""
    from rollout.adapters.clients import Clients
    from rollout.plan import load_plan
    from rollout.reporting.status import describe_run
    from rollout.targets import resolve_targets

    plan = load_plan(args.plan)
    with Clients(resolve_targets(plan, None)) as clients:
        record = clients.runs.get(plan.name)
        stable = clients.releases.stable(plan.name)
        flag = clients.flags.get(plan.flag)
    if args.run_id and (record is None or record.run_id != args.run_id):
        print(
            f"run {args.run_id} is not the last rollout of {plan.name}; its record is not kept",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    print(describe_run(record, plan.name, stable, flag=flag, run_state=_prefect_state(record)))
    return EXIT_OK


def _prefect_state(record: RunRecord | None) -> str | None:
    """The Prefect state name of the run holding the rollout; None without a server to ask."""
    if record is None or not os.environ.get("PREFECT_API_URL"):
        return None
    from uuid import UUID

    from prefect.client.orchestration import get_client

    from rollout.lifecycle.reconciliation import holder

    run_id = holder(record)
    try:
        with get_client(sync_client=True) as client:
            state = client.read_flow_run(UUID(run_id)).state if run_id else None
    except Exception as error:  # status is read-only and best effort: say why Prefect was not asked
        return f"not known ({type(error).__name__})"
    return state.name if state is not None else "gone from Prefect"


def cmd_promote(args: argparse.Namespace) -> int:
    """Answer a paused rollout: approve (or, with --reject, refuse) and resume it."""
    prefect_defaults()
    from uuid import UUID

    from prefect.flow_runs import resume_flow_run

    try:
        run_id = UUID(args.run_id)
    except ValueError:
        print(f"run_id: {args.run_id!r} is not a flow run id (a UUID, shown by the paused run)")
        return EXIT_BAD_INPUT
    from flows.decision import answer

    decision: Literal["approve", "reject"] = "reject" if args.reject else "approve"
    try:
        resume_flow_run(run_id, run_input=answer(decision, args.approver, args.note, args.tick))
    except RuntimeError as error:  # the server refused the answer: a box unticked, a run not paused
        print(f"not resumed: {error}")
        return EXIT_BAD_INPUT
    print(f"{decision}d by {args.approver}; run {run_id} resumes")
    return EXIT_OK


def cmd_reconcile(args: argparse.Namespace) -> int:
    """One reconciler pass against the Prefect server in PREFECT_API_URL (for cron): 0 when nothing is
    left for a person (plans whose secrets are not created yet are only named), 1 when some rollout
    needs one or Prefect could not be asked (the rollouts were watched only), 2 without a server set."""
    prefect_defaults()
    from prefect.settings import PREFECT_API_URL

    api = PREFECT_API_URL.value()
    if not api:
        print(
            "PREFECT_API_URL is not set: the reconciler wakes and adopts runs of a Prefect server; "
            "set it to the server's API (e.g. http://127.0.0.1:4200/api)",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    down = _prefect_down()
    if down is not None:
        from flows.reconcile import watch_only

        print(
            f"the Prefect server at {api} cannot serve ({down}): rollouts no live run holds are "
            "measured, and traffic turned off where a window fails; nothing is woken, adopted or "
            "held until it answers",
            file=sys.stderr,
        )
        report = watch_only(args.plans or None)
    else:
        from flows.reconcile import reconcile_flow

        report = reconcile_flow(plans=args.plans or None)
    print(report.summary())
    for acted in report.acted:
        print(f"{acted.plan}: {acted.did} ({acted.why})")
    for acted in report.cannot_act:
        print(f"{acted.plan}: cannot act: {acted.why}")
    for acted in report.not_configured:
        print(f"{acted.plan}: not configured: {acted.why}")
    return EXIT_FAILED if report.cannot_act or down is not None else EXIT_OK


def _prefect_down() -> str | None:
    """Why the Prefect server cannot serve a pass (unreachable, or its database down); None if it can."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.sorting import FlowRunSort

    try:
        with get_client(sync_client=True) as client:
            client.read_flow_runs(limit=1, sort=FlowRunSort.ID_DESC)  # a query its database answers
    except Exception as error:  # any failure means the same here: Prefect cannot be relied on now
        return f"{type(error).__name__}: {str(error).splitlines()[0][:200] if str(error) else ''}"
    return None


def register(sub: Subcommands) -> None:
    """Add this module's subcommands."""
    run = sub.add_parser("run", help="run a plan")
    run.add_argument("plan", type=Path)
    run.add_argument("--json", action="store_true", help="print the result as JSON")
    run.add_argument("--dry-run", action="store_true", help="check and count everything, change nothing")
    run.add_argument(
        "--rollout-id",
        help="which rollout this is (default: the release version); the same id resumes one that stopped",
    )
    run.add_argument("--approval-timeout", metavar="DURATION", help="e.g. 30m; default: the plan's")
    run.add_argument(
        "--force",
        action="store_true",
        help="roll out a release the history shows as stable now or superseded (needs --reason)",
    )
    run.add_argument("--reason", help="why the release goes out again (with --force)")
    run.add_argument(
        "--restart-ramp",
        action="store_true",
        help="start the ramp again although a promoted rollout left the flag higher",
    )
    run.set_defaults(run=cmd_run)

    rollback = sub.add_parser("rollback", help="undo the plan's last rollout")
    rollback.add_argument("plan", type=Path)
    rollback.add_argument("--reason", help="why (required): shown in the report and the logs")
    rollback.add_argument(
        "--force",
        action="store_true",
        help="roll back a promoted (or already rolled-back) rollout too; data only with --restore",
    )
    rollback.add_argument("--severity", choices=["SEV1", "SEV2", "SEV3"], help="default: the plan's")
    rollback.add_argument("--restore", choices=["none", "selective", "full"], help="default: the plan's")
    rollback.add_argument("--collections", metavar="A,B", help="for --restore selective")
    rollback.set_defaults(run=cmd_rollback)

    where = sub.add_parser("status", help="where the plan's last rollout stands")
    where.add_argument("plan", type=Path)
    where.add_argument("--run", dest="run_id", metavar="RUN_ID", help="fail unless this is the run on record")
    where.set_defaults(run=cmd_status)

    promote = sub.add_parser("promote", help="approve a paused rollout")
    promote.add_argument("run_id")
    promote.add_argument("--approver", required=True)
    promote.add_argument("--note", default="")
    promote.add_argument("--reject", action="store_true", help="refuse instead: the rollout rolls back")
    promote.add_argument(
        "--tick",
        action="append",
        default=[],
        metavar="ITEM",
        help="a checklist item confirmed (repeat for each; all of the phase's are needed to approve)",
    )
    promote.set_defaults(run=cmd_promote)

    reconcile = sub.add_parser(
        "reconcile", help="one pass: measure parked windows, wake, adopt or hold rollouts (for cron)"
    )
    reconcile.add_argument(
        "plans",
        nargs="*",
        help="plan files or globs whose databases to reconcile (default: deployments/plans/*.yaml)",
    )
    reconcile.set_defaults(run=cmd_reconcile)
