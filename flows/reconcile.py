"""The reconciler as a flow: one pass over every rollout in the plans' databases.

Deployed as ``rollout-reconcile`` on a one-minute interval, one run at a time (a run
that would overlap the one under way is cancelled), and run by ``rollout reconcile``
from cron where there is no Prefect worker, or beside the deployment so that rollouts stay
watched while Prefect is down (:func:`watch_only`).
"""

import logging
from datetime import timedelta
from glob import glob

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact

from rollout.errors import PlanInvalid, Problem
from rollout.lifecycle.reconciliation import WAKE_GRACE, PassReport
from rollout.plan.model import Targets
from rollout.targets import resolve_targets
from tasks.reconcile import databases, reconcile_pass, watch_pass

DEFAULT_PLANS = ["deployments/plans/*.yaml"]


def plan_files(patterns: list[str]) -> list[str]:
    """The plan files ``patterns`` (paths or globs) name; an error naming the field when there are none."""
    found = sorted({path for pattern in patterns for path in (glob(pattern) or [])})
    if not found:
        raise PlanInvalid(
            [
                Problem(
                    "plans", f"no plan file matches {', '.join(patterns) or 'nothing'}: give paths or globs"
                )
            ]
        )
    return found


@flow(name="reconcile")
def reconcile_flow(
    plans: list[str] | None = None,
    targets: Targets | None = None,
    wake_grace_seconds: float = WAKE_GRACE.total_seconds(),
) -> PassReport:
    """Measure parked windows, wake, adopt or hold rollouts whose run cannot, and list what needs a person.

    Args:
        plans: Plan files (paths or globs) whose databases hold the rollouts to reconcile; every rollout
            recorded there is reconciled with its own plan. Default: deployments/plans/*.yaml.
        targets: Where the rollouts are recorded, instead of the plans' own targets.
        wake_grace_seconds: How long a parked rollout's run may be Scheduled, Pending or Running
            without having taken the rollout (a wake on its way, or a suspension that did not take)
            before it is adopted. Its window is measured all the same.
    """
    where, skipped = databases(plan_files(plans or DEFAULT_PLANS), targets, resolve_targets)
    for reason in skipped:
        get_run_logger().warning("not reconciled: %s", reason)
    report = reconcile_pass(
        where, own_targets=targets is None, wake_grace=timedelta(seconds=wake_grace_seconds)
    )
    rows = [{"plan": a.plan, "did": a.did, "why": a.why} for a in report.acted + report.cannot_act]
    if rows:
        create_table_artifact(rows, key="reconcile", description=report.summary())
    return report


def watch_only(plans: list[str] | None = None) -> PassReport:
    """The watching part of a pass, with no Prefect server to ask (see :func:`tasks.reconcile.watch_pass`).

    Not a flow: it is what ``rollout reconcile`` runs while the server or its database is down, so
    that a rollout whose run is gone is still measured and its traffic turned off if it fails.
    """
    where, skipped = databases(plan_files(plans or DEFAULT_PLANS), None, resolve_targets)
    for reason in skipped:
        logging.getLogger("rollout.reconcile").warning("not reconciled: %s", reason)
    return watch_pass(where)
