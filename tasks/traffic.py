"""Tasks that change who gets the new code, each recording how to undo itself first."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from rollout.adapters.clients import Clients
from rollout.adapters.stores import pick_pilot_stores
from rollout.audience.drift import FlagDrift, drifted, killed, router_drifted
from rollout.audience.flag_state import Fence, FlagChange, FlagState
from rollout.audience.steps import Audience
from rollout.errors import RolloutRefused
from rollout.lifecycle.record import RunRecord
from rollout.plan.model import PilotStores, Targets
from tasks.retries import TRANSIENT_RETRIES
from tasks.secrets import prefect_resolver


@task(name="pick-pilot-stores", cache_policy=NO_CACHE, **TRANSIENT_RETRIES)
def choose_pilot_stores(
    targets: Targets, spec: PilotStores, plan: str | None = None, phase: str | None = None
) -> list[str]:
    """Run the plan's pilot query on the server and return the store ids.

    Given ``plan`` and ``phase``, the choice is kept with the run: a resumed run gets the
    stores the first one chose, not whatever the query matches now.
    """
    with Clients(targets, prefect_resolver) as clients:
        stores = pick_pilot_stores(clients.db, spec)
        if plan is not None and phase is not None:
            stores = clients.runs.remember_pilots(plan, phase, stores)
    get_run_logger().info("pilot stores: %s", ", ".join(stores) or "none matched")
    return stores


@task(
    name="check-flags",
    task_run_name="check flags in {targets.flag_provider}",
    cache_policy=NO_CACHE,
    **TRANSIENT_RETRIES,
)
def check_flags(targets: Targets, flags: list[str]) -> None:
    """Reach the flag provider and find every flag the plan writes, before anything changes."""
    with Clients(targets, prefect_resolver) as clients:
        clients.flags.check(flags)
    get_run_logger().info("flags in %s: %s", targets.flag_provider, ", ".join(flags))


def _write(
    clients: Clients,
    plan: str,
    flag: str,
    change: FlagChange,
    fence: Fence | None,
    record: RunRecord | None = None,
) -> FlagState:
    # The undo entry is written before the change, so a crash in between leaves
    # an entry for a change that never happened, never a change without an entry.
    current = clients.flags.get(flag)
    clients.runs.remember(plan, current)
    if _already(current, change):
        # A retried or resumed step finds its change made: it takes effect once, not twice.
        clients.runs.wrote(plan, current)
        return current
    record = record or clients.runs.get(plan)
    changed = drifted(record.written_to(flag) if record else None, current)
    if changed is not None:
        raise FlagDrift(changed)  # a person's change between two steps wins: nothing is written
    written = clients.flags.set(flag, change, expected_version=current.version, fence=fence)
    clients.runs.wrote(plan, written)
    return written


def check_drift(clients: Clients, plan: str, flags: Sequence[str]) -> None:
    """Raise FlagDrift if someone else changed any of ``flags`` since the rollout last wrote it."""
    record = clients.runs.get(plan)
    if record is None:
        return
    for flag in flags:
        written = record.written_to(flag)
        if written is not None and (changed := drifted(written, clients.flags.get(flag))) is not None:
            raise FlagDrift(changed)
    router = clients.targets.kubernetes.router if clients.targets.kubernetes else None
    if router is not None and clients.cluster is not None and record.router_written is not None:
        now = clients.cluster.router_state(router).canary_percent
        if (
            changed := router_drifted(f"{router.kind} {router.name}", record.router_written, now)
        ) is not None:
            raise FlagDrift(changed)


@task(name="adopt-flags", cache_policy=NO_CACHE, **TRANSIENT_RETRIES)
def adopt_flags(targets: Targets, plan: str) -> list[str]:
    """A person carries a held rollout on: the flags as they are now become the rollout's own again.

    A flag someone turned off after the rollout turned it on is not adopted: the rollout never
    turns a kill switch back on (RolloutRefused, naming the flag and what to do).
    """
    with Clients(targets, prefect_resolver) as clients:
        record = clients.runs.get(plan)
        adopted = []
        for written in record.written if record else ():
            now = clients.flags.get(written.flag)
            if (off := killed(written, now)) is not None:
                raise RolloutRefused(off)
            if drifted(written, now) is not None:
                clients.runs.wrote(plan, now)
                adopted.append(f"{written.flag} ({now.version})")
        router = targets.kubernetes.router if targets.kubernetes else None
        if router is not None and clients.cluster is not None and record is not None:
            now_percent = clients.cluster.router_state(router).canary_percent
            if record.router_written not in (None, now_percent):
                clients.runs.wrote_router(plan, now_percent)
                adopted.append(f"{router.kind} {router.name} ({now_percent}%)")
    if adopted:
        get_run_logger().warning("carried on from the flags as a person left them: %s", ", ".join(adopted))
    return adopted


def _already(state: FlagState, change: FlagChange) -> bool:
    wanted: dict[str, object] = {"enabled": change.enabled, "percentage": change.percentage}
    wanted |= {"users": change.users, "stores": change.stores}
    return not change.extra and all(
        value is None or getattr(state, name) == value for name, value in wanted.items()
    )


@task(name="set-audience", task_run_name="set audience {where}", cache_policy=NO_CACHE, **TRANSIENT_RETRIES)
def set_audience(
    targets: Targets, plan: str, flag: str, audience: Audience, fence: Fence | None = None, where: str = ""
) -> FlagState:
    """Write the flag so that exactly ``audience`` takes the new code path (refused once fenced off).

    Someone else's change to the flag or the router since the rollout last wrote them raises
    FlagDrift before either is written: the step is not half made.
    """
    logger = get_run_logger()
    with Clients(targets, prefect_resolver) as clients:
        router = targets.kubernetes.router if targets.kubernetes else None
        weight, before = round(audience.percentage), None
        record = clients.runs.get(plan)  # read once: the router's and the flag's checks both use it
        if router is not None and clients.cluster is not None:
            before = clients.cluster.router_state(router)
            if before.canary_percent != weight:
                written = record.router_written if record else None
                changed = router_drifted(f"{router.kind} {router.name}", written, before.canary_percent)
                if changed is not None:
                    raise FlagDrift(changed)
        state = _write(clients, plan, flag, audience.flag_change(), fence, record)
        logger.info("%s -> %s (version %d)", flag, audience.describe(), state.version)
        if router is not None and clients.cluster is not None and before is not None:
            clients.runs.remember_router(plan, asdict(before))
            clients.cluster.set_weight(router, weight, fence=fence)
            clients.runs.wrote_router(plan, weight)
            logger.info("%s %s -> %d%% to the canary", router.kind, router.name, weight)
    return state


@task(name="record-deployment", cache_policy=NO_CACHE, **TRANSIENT_RETRIES)
def record_deployment(targets: Targets, plan: str) -> str | None:
    """Keep the image the service's Deployment runs as the rollout begins; None without a cluster."""
    target = targets.kubernetes
    with Clients(targets, prefect_resolver) as clients:
        if target is None or clients.cluster is None:
            return None
        image = clients.cluster.image(target.deployment, target.container)
        clients.runs.remember_deployment(plan, image)
    return image


@task(
    name="set-companion-flags",
    task_run_name="set companion flags {flags}",
    cache_policy=NO_CACHE,
    **TRANSIENT_RETRIES,
)
def set_companion_flags(
    targets: Targets, plan: str, flags: dict[str, bool], fence: Fence | None = None
) -> list[FlagState]:
    """Switch the phase's companion flags fully on or off."""
    with Clients(targets, prefect_resolver) as clients:
        return [
            _write(clients, plan, name, FlagChange(enabled=on, percentage=100 if on else 0), fence)
            for name, on in flags.items()
        ]


def _as_before(before: FlagState, traffic_off: bool) -> FlagChange:
    """The write that puts a flag back as it was; with ``traffic_off``, disabled at 0 %."""
    return FlagChange(
        enabled=False if traffic_off else before.enabled,
        percentage=0 if traffic_off else before.percentage,
        users=before.users,
        stores=before.stores,
    )


def traffic_off(clients: Clients, before: FlagState, fence: Fence | None) -> FlagState:
    """Close the main flag (disabled, 0 %, its allowlists as before the rollout) under ``fence``."""
    return clients.flags.set(before.name, _as_before(before, traffic_off=True), fence=fence)


def close_traffic(clients: Clients, plan: str, flag: str, fence: Fence) -> str:
    """The rollback's first step, here and now: the main flag and the router admit no one.

    Returns what was done, or why not (a flag the rollout never wrote has nothing to close).
    """
    record = clients.runs.get(plan)
    before = next((u for u in record.undo if u.name == flag), None) if record is not None else None
    if before is None:
        return f"not done: {flag} has no undo entry"
    # Kept as the rollout's own writes: a later look for someone else's change must not take them
    # for one (and hold a rollout that is only waiting for its rollback).
    clients.runs.wrote(plan, traffic_off(clients, before, fence))
    router = clients.targets.kubernetes.router if clients.targets.kubernetes else None
    if router is not None and clients.cluster is not None:
        clients.cluster.set_weight(router, 0, fence=fence)
        clients.runs.wrote_router(plan, 0)
        return f"{flag} and the router closed"
    return f"{flag} closed"


@task(name="close-traffic", task_run_name="traffic off {flag}", cache_policy=NO_CACHE, **TRANSIENT_RETRIES)
def close_traffic_now(targets: Targets, plan: str, flag: str, fence: Fence) -> str:
    """Turn traffic off under this run's fence before its rollback starts (which needs Prefect's API).

    A judged-bad release is closed even if the rollback cannot be started just now; the rollback
    (or the run that adopts the rollout) then does the rest, finding traffic already off.
    """
    with Clients(targets, prefect_resolver) as clients:
        done = close_traffic(clients, plan, flag, fence)
    get_run_logger().warning("traffic off before the rollback: %s", done)
    return done


@task(
    name="restore-flag",
    task_run_name="restore flag {before.name}",
    cache_policy=NO_CACHE,
    **TRANSIENT_RETRIES,
)
def restore_flag(
    targets: Targets, before: FlagState, traffic_off: bool, fence: Fence | None = None, plan: str = ""
) -> FlagState:
    """Put a flag back as it was before the rollout; with ``traffic_off`` admit no one at all.

    Written under the rollback's ``fence``: from then on the rollout's older epoch cannot write it.
    Given the ``plan``, a change someone else made since the rollout last wrote the flag is said
    first: a rollback acts all the same (it only narrows), and says what it found.
    """
    logger = get_run_logger()
    with Clients(targets, prefect_resolver) as clients:
        record = clients.runs.get(plan) if plan else None
        written = record.written_to(before.name) if record is not None else None
        if written is not None and (found := drifted(written, clients.flags.get(before.name))) is not None:
            logger.warning("the rollback found this: %s", found)
        state = clients.flags.set(before.name, _as_before(before, traffic_off), fence=fence)
    logger.info("%s restored (enabled=%s, %g%%)", state.name, state.enabled, state.percentage)
    return state


@task(
    name="keep-traffic-off",
    task_run_name="check flag {before.name} stays off",
    cache_policy=NO_CACHE,
    **TRANSIENT_RETRIES,
)
def keep_traffic_off(targets: Targets, before: FlagState, fence: Fence | None = None) -> str:
    """Check, at the end of a rollback, that the main flag still admits no one; close it again if not.

    A rollout step already past its lease check when the rollback took over can still land
    its write after the rollback's; this is where that is caught and undone.
    """
    with Clients(targets, prefect_resolver) as clients:
        state = clients.flags.get(before.name)
        if not state.enabled:
            return "still off"
        traffic_off(clients, before, fence)
    get_run_logger().warning("%s admitted traffic again after the rollback began: closed again", before.name)
    landed = f"{state.percentage:g}%, version {state.version}"
    return f"closed again: a write landed after the rollback began ({landed})"
