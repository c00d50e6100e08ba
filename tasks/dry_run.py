"""The dry run's reads: who each step would admit, and whether the backup bucket answers."""

from __future__ import annotations

from collections.abc import Iterator

from prefect import task
from prefect.cache_policies import NO_CACHE

from rollout.adapters.clients import Clients
from rollout.adapters.mongo import mongo_errors
from rollout.audience.population import count_admitted
from rollout.audience.steps import Audience
from rollout.plan import Plan
from rollout.plan.model import Targets
from tasks.retries import TRANSIENT_RETRIES
from tasks.secrets import prefect_resolver


@task(name="count-audiences", cache_policy=NO_CACHE, **TRANSIENT_RETRIES)
def count_audiences(targets: Targets, plan: Plan, audiences: list[Audience]) -> tuple[list[int], int] | None:
    """Users each audience would admit, from the plan's ``users`` population; None without one."""
    population = plan.users
    if population is None:
        return None
    with Clients(targets, prefect_resolver) as clients:
        collection = clients.db[population.collection]
        field = population.id_field

        def ids() -> Iterator[str]:
            with mongo_errors(f"read ids from {population.collection}"):
                for doc in collection.find(population.filter, {field: 1}, batch_size=10000):
                    if doc.get(field) is not None:
                        yield str(doc[field])

        return count_admitted(plan.flag, ids(), audiences, clients.flags.admits)


@task(name="check-bucket", cache_policy=NO_CACHE, **TRANSIENT_RETRIES)
def check_bucket(targets: Targets) -> str:
    """List the backup prefix once: the bucket exists and the credentials may read it."""
    prefix = targets.s3.prefix if targets.s3 else ""
    with Clients(targets, prefect_resolver) as clients:
        backups = clients.bucket.folders(prefix)
    return f"{len(backups)} backup folder(s) under {clients.bucket.location(prefix)}"
