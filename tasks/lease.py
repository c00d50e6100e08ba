"""One rollout of a plan at a time: the run's lease on the plan, taken at the start and renewed per step."""

from __future__ import annotations

from datetime import timedelta

from prefect import task
from prefect.cache_policies import NO_CACHE

from rollout.adapters.clients import Clients
from rollout.adapters.run_state import Claim
from rollout.plan import Plan
from rollout.plan.model import Targets
from tasks.retries import TRANSIENT_RETRIES
from tasks.secrets import prefect_resolver


@task(name="claim-plan", cache_policy=NO_CACHE, **TRANSIENT_RETRIES)
def claim_plan(targets: Targets, plan: Plan, run_id: str, rollout_id: str) -> Claim:
    """Take the plan for this run (fresh, or resuming the same rollout), or refuse with RolloutBusy."""
    with Clients(targets, prefect_resolver) as clients:
        return clients.runs.claim(plan.name, run_id, rollout_id, plan.lease)


@task(name="renew-lease", cache_policy=NO_CACHE, **TRANSIENT_RETRIES)
def renew_lease(targets: Targets, plan: Plan, run_id: str, extra: timedelta = timedelta(0)) -> None:
    """Keep the plan for another lease (plus ``extra``, e.g. an approval's wait), or raise LeaseLost."""
    with Clients(targets, prefect_resolver) as clients:
        clients.runs.renew(plan.name, run_id, plan.lease + extra)
