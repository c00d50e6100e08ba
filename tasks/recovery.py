"""The rollback's steps after the flags: router, deployment, caches, health, smoke, balance, watch.

Each task is idempotent (it sets a state rather than applying a change) and
retried on transient failures; each returns a one-line detail for the record
or raises, and the flow records the failure and goes on.
"""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from rollout.adapters.cache import delete_matching
from rollout.adapters.clients import Clients
from rollout.adapters.deployer import call_webhook, run_command, wait_until_serving
from rollout.adapters.service import purge
from rollout.analysis.health_watch import watch
from rollout.audience.flag_state import Fence
from rollout.clock import SystemClock
from rollout.data.check_runner import run_check
from rollout.data.checks import custom_check
from rollout.errors import PermanentError, ServiceUnavailable
from rollout.plan import Plan
from rollout.plan.model import Targets
from tasks.retries import TRANSIENT_RETRIES
from tasks.secrets import prefect_resolver


class StepFailed(PermanentError):
    """A post-rollback check answered, and the answer was wrong."""


@task(name="router-to-stable", cache_policy=NO_CACHE, **TRANSIENT_RETRIES)
def router_to_stable(targets: Targets, fence: Fence | None = None) -> str:
    """Send every request to the stable backend (under the rollback's ``fence``)."""
    assert targets.kubernetes is not None and targets.kubernetes.router is not None
    router = targets.kubernetes.router
    with Clients(targets, prefect_resolver) as clients:
        assert clients.cluster is not None
        before = clients.cluster.set_weight(router, 0, fence=fence)
    if before.canary_percent == 0:
        # Closed already (by the rollout's own run, the moment it judged the release): kept so.
        return f"{router.kind} {router.name}: canary already at 0%, kept there"
    return f"{router.kind} {router.name}: canary {before.canary_percent}% -> 0%"


@task(name="deployment-to-stable", cache_policy=NO_CACHE, **TRANSIENT_RETRIES)
def deployment_to_stable(targets: Targets, plan: Plan, stable: str | None, image_at_start: str | None) -> str:
    """Put the Deployment back on the stable release: a named image if the plan can name it, else undo.

    Idempotent: a Deployment already on the stable image, or no longer on the
    image it ran when the rollout began, is left alone.
    """
    target = targets.kubernetes
    assert target is not None
    with Clients(targets, prefect_resolver) as clients:
        cluster = clients.cluster
        assert cluster is not None
        current = cluster.image(target.deployment, target.container)
        if target.image_repository and stable:
            wanted = f"{target.image_repository}:{stable}"
            if current == wanted:
                return f"{target.deployment} already runs {wanted}"
            change = cluster.set_image(target.deployment, wanted, target.container)
            return f"{target.deployment}: {change.before} -> {change.after} (stable release {stable})"
        if image_at_start is not None and current != image_at_start:
            return f"{target.deployment} already left {image_at_start} (now {current})"
        change = cluster.undo(target.deployment, target.container)
        return f"{target.deployment}: {change.before} -> {change.after} ({change.how})"


@task(name="release-to-stable", cache_policy=NO_CACHE, **TRANSIENT_RETRIES)
def release_to_stable(targets: Targets, stable: str | None) -> str:
    """Deploy the stable release with the plan's command or hook, then wait until the service serves it."""
    deploy = targets.deploy
    assert deploy is not None
    if stable is None:
        raise StepFailed(
            "no stable release is on record to deploy: set release.stable_version in the plan, or promote "
            "a release once"
        )
    with Clients(targets, prefect_resolver) as clients:
        if deploy.command is not None:
            env = {name: clients.secret(value) for name, value in deploy.command.env.items()}
            done = run_command(deploy.command, stable, env)
        else:
            assert deploy.webhook is not None
            hook = deploy.webhook
            headers = {name: clients.secret(value) for name, value in hook.headers.items()}
            done = call_webhook(hook, stable, clients.secret(hook.url), headers)
        service = clients.service
        field = deploy.version_field
        serving = wait_until_serving(
            lambda: service.health().ok,
            (lambda: service.running_version(field)) if field else None,
            stable,
            deploy.health_wait,
            SystemClock(),
        )
    return f"{stable}: {done}; {serving}"


@task(name="invalidate-caches", cache_policy=NO_CACHE, **TRANSIENT_RETRIES)
def invalidate_caches(targets: Targets, plan: Plan) -> str:
    """Delete the plan's Redis keys and call its purge URL, whichever it names."""
    settings = plan.rollback.cache
    done = []
    with Clients(targets, prefect_resolver) as clients:
        if settings.redis_url and settings.redis_keys:
            deleted = delete_matching(clients.secret(settings.redis_url), settings.redis_keys)
            done.append("Redis: " + ", ".join(f"{n} keys {p}" for p, n in deleted.items()))
        if settings.purge_url:
            headers = clients.service_headers
            url = clients.secret(settings.purge_url)
            if url.startswith("/"):
                url = clients.secret(targets.service.base_url).rstrip("/") + url
            probe = purge(url, headers)
            if not probe.ok:
                raise ServiceUnavailable("cache", probe.detail)
            done.append(probe.detail)
    return "; ".join(done)


@task(name="health-check", cache_policy=NO_CACHE, **TRANSIENT_RETRIES)
def health_check(targets: Targets) -> str:
    """The service answers its health endpoint with a 2xx (retried while it comes back)."""
    with Clients(targets, prefect_resolver) as clients:
        probe = clients.service.health()
    if not probe.ok:
        raise ServiceUnavailable("service", probe.detail)
    return probe.detail


@task(name="smoke-test", cache_policy=NO_CACHE, **TRANSIENT_RETRIES)
def smoke_test(targets: Targets) -> str:
    """Every request of the smoke scenario, in order, answers its expected status."""
    with Clients(targets, prefect_resolver) as clients:
        probes = [clients.service.smoke(request) for request in targets.service.smoke]
    failed = [p for p in probes if not p.ok]
    summary = "; ".join(f"{p.name}: {p.detail}" for p in probes)
    message = f"{len(failed)} of {len(probes)} smoke requests failed: {summary}"
    if any(p.transient for p in failed):
        # Instances may still hold the old flags for a moment: worth trying again.
        raise ServiceUnavailable("service", message)
    if failed:
        raise StepFailed(message)
    return summary


@task(name="balance-check", cache_policy=NO_CACHE, **TRANSIENT_RETRIES)
def balance_check(targets: Targets, plan: Plan) -> str:
    """The plan's balance checks: aggregations whose figures must agree."""
    with Clients(targets, prefect_resolver) as clients:
        results = [
            run_check(clients.db, custom_check(check, f"rollback.balance[{i}]"))
            for i, check in enumerate(plan.rollback.balance)
        ]
    summary = "; ".join(f"{r.name}: {r.detail}" for r in results)
    if not all(r.passed for r in results):
        raise StepFailed(summary)
    return summary


@task(name="watch-health", cache_policy=NO_CACHE)
def watch_health(targets: Targets, plan: Plan) -> str:
    """Probe health every ``rollback.watch.interval`` for ``rollback.watch.duration``."""
    settings = plan.rollback.watch
    get_run_logger().info("watching health every %s for %s", settings.interval, settings.duration)
    with Clients(targets, prefect_resolver) as clients:
        result = watch(clients.service.health, settings.interval, settings.duration, SystemClock())
    if not result.ok:
        raise StepFailed(result.describe())
    return result.describe()
