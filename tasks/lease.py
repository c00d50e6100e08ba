"""One rollout of a plan at a time: the run's claim on the plan, and each move of its rollout's status."""

from __future__ import annotations

from datetime import timedelta

from prefect import task
from prefect.cache_policies import NO_CACHE

from rollout.adapters.clients import Clients
from rollout.adapters.run_state import Claim
from rollout.lifecycle import Status
from rollout.plan import Plan
from rollout.plan.model import Targets
from tasks.retries import TRANSIENT_RETRIES
from tasks.secrets import prefect_resolver


@task(name="claim-plan", cache_policy=NO_CACHE, **TRANSIENT_RETRIES)
def claim_plan(targets: Targets, plan: Plan, run_id: str, rollout_id: str) -> Claim:
    """Take the plan for this run (fresh, or resuming the same rollout), or refuse with RolloutBusy.

    The release stable before this one is kept with the rollout as it begins: once
    this release is promoted it is the stable one, and a rollback must know what came before.
    """
    version = plan.release.version
    with Clients(targets, prefect_resolver) as clients:
        stable = clients.releases.stable_before(plan.name, version, plan.release.stable_version)
        return clients.runs.claim(
            plan.name, run_id, rollout_id, plan.lease, version=version, stable_before=stable
        )


@task(name="move-rollout", cache_policy=NO_CACHE, **TRANSIENT_RETRIES)
def enter(
    targets: Targets, plan: Plan, run_id: str, status: Status, why: str, extra: timedelta = timedelta(0)
) -> None:
    """Move this run's rollout to ``status`` and renew its lease (plus ``extra``, e.g. an approval's wait).

    Raises LeaseLost when the run no longer holds the rollout: a rollback or another run took it.
    """
    lease = plan.lease + extra
    with Clients(targets, prefect_resolver) as clients:
        clients.runs.move(plan.name, status, by=f"run {run_id}", why=why, run_id=run_id, lease=lease)


@task(name="finish-rollout", cache_policy=NO_CACHE, **TRANSIENT_RETRIES)
def finish(targets: Targets, plan: Plan, run_id: str, status: Status, why: str) -> None:
    """End this run's rollout as ``status``; a promoted release becomes the plan's stable one."""
    with Clients(targets, prefect_resolver) as clients:
        clients.runs.move(plan.name, status, by=f"run {run_id}", why=why, run_id=run_id)
        if status is Status.PROMOTED:
            clients.releases.mark_stable(plan.name, plan.release.version, by=f"run {run_id}")
