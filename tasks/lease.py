"""One rollout of a plan at a time: a run's claim on the plan, its heartbeat, each move of its status."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from rollout.adapters.clients import Clients
from rollout.audience.steps import Audience
from rollout.beat import every
from rollout.errors import LeaseLost, RolloutError, RolloutRefused
from rollout.lifecycle.admission import downgrade, first_audience, flag_cut, replayed
from rollout.lifecycle.progression import Parked, Progress
from rollout.lifecycle.record import Claim, RunRecord
from rollout.lifecycle.statuses import REPLACEABLE, Status
from rollout.plan import Plan
from rollout.plan.model import Targets
from tasks.dry_run import count_audiences
from tasks.retries import TRANSIENT_RETRIES
from tasks.secrets import prefect_resolver


@task(name="claim-plan", cache_policy=NO_CACHE, **TRANSIENT_RETRIES)
def claim_plan(
    targets: Targets,
    plan: Plan,
    run_id: str,
    rollout_id: str,
    about: dict[str, str | None] | None = None,
    *,
    explicit_id: bool = False,
    forced: str = "",
    restart_ramp: bool = False,
) -> Claim:
    """Take the plan for this run (fresh, or resuming the same rollout), or refuse with RolloutBusy.

    The release stable before this one is kept with the rollout as it begins: once
    this release is promoted it is the stable one, and a rollback must know what came before.
    A start that would replay a finished rollout (this very run again, or ``rollout_id`` given
    explicitly, ``explicit_id``, naming one) is refused with RolloutRefused, and so is a new
    rollout of a release the history shows as stable now or superseded, unless ``forced`` says why,
    and one whose first step would narrow the flag the promoted rollout before it left, unless
    ``restart_ramp``.
    """
    version = plan.release.version
    with Clients(targets, prefect_resolver) as clients:
        previous = clients.runs.get(plan.name)
        if previous is None or previous.status in REPLACEABLE:
            refused = replayed(previous.ended() if previous else (), run_id, rollout_id, explicit=explicit_id)
            if refused is None and not forced:
                history = clients.releases.history(plan.name)
                refused = downgrade(version, clients.releases.stable(plan.name), history)
            if refused is None:
                refused = _ramp_cut(clients, targets, plan, previous, restart_ramp)
            if refused is not None:
                raise RolloutRefused(f"plan {plan.name}: {refused}")
            if forced:
                get_run_logger().warning("forced: %s (%s)", forced, f"release {version}")
        stable = clients.releases.stable_before(plan.name, version, plan.release.stable_version)
        return clients.runs.claim(
            plan.name,
            run_id,
            rollout_id,
            plan.lease,
            version=version,
            stable_before=stable,
            epoch_floor=clients.flags.highest_fence(plan.name),
            about=dict(about or {}),
        )


def _ramp_cut(
    clients: Clients, targets: Targets, plan: Plan, previous: RunRecord | None, restart_ramp: bool
) -> str | None:
    """Why the first step would narrow the flag a promoted rollout of the plan left, unless restarted."""
    promoted = previous is not None and previous.status is Status.PROMOTED
    if restart_ramp:
        if not promoted:
            get_run_logger().info("restart_ramp: no promoted rollout of %s left its flag higher", plan.name)
        else:
            get_run_logger().warning("restart_ramp: %s starts its ramp again from the first step", plan.flag)
        return None
    if not promoted:
        return None
    flag, first = clients.flags.get(plan.flag), first_audience(plan)
    if flag_cut(flag, first) is None or first is None:
        return None
    counted = count_audiences(targets, plan, [Audience(flag.users, flag.stores, flag.percentage), first])
    return flag_cut(flag, first, None if counted is None else counted[0][0] - counted[0][1])


@task(name="move-rollout", task_run_name="{status}: {why}", cache_policy=NO_CACHE, **TRANSIENT_RETRIES)
def enter(targets: Targets, plan: Plan, run_id: str, status: Status, why: str) -> None:
    """Move this run's rollout to ``status``, renewing its lease in the same write.

    Raises LeaseLost when the run no longer holds the rollout: a rollback or another run took it.
    """
    with Clients(targets, prefect_resolver) as clients:
        clients.runs.move(plan.name, status, by=f"run {run_id}", why=why, run_id=run_id, lease=plan.lease)


@task(name="save-progress", task_run_name="keep progress", cache_policy=NO_CACHE, **TRANSIENT_RETRIES)
def save_progress(targets: Targets, plan: Plan, run_id: str, progress: Progress) -> None:
    """Persist what the rollout has done and seen so far, so whichever run picks it up carries on from here.

    Raises LeaseLost when the run no longer holds the rollout.
    """
    with Clients(targets, prefect_resolver) as clients:
        clients.runs.save_progress(plan.name, run_id, progress, plan.lease)


@task(name="park-rollout", task_run_name="park: {parked.next}", cache_policy=NO_CACHE, **TRANSIENT_RETRIES)
def park(targets: Targets, plan: Plan, run_id: str, parked: Parked, progress: Progress) -> None:
    """Record that the rollout waits with no process held (its run is suspended next)."""
    with Clients(targets, prefect_resolver) as clients:
        clients.runs.park(plan.name, run_id, parked, progress)


@task(
    name="unpark-rollout", task_run_name="unpark: {parked.next}", cache_policy=NO_CACHE, **TRANSIENT_RETRIES
)
def unpark(targets: Targets, plan: Plan, run_id: str, parked: Parked) -> None:
    """Take this run's park back (its suspension failed): driven again by it, under a fresh lease."""
    with Clients(targets, prefect_resolver) as clients:
        clients.runs.take_back_park(plan.name, run_id, parked, plan.lease)


@task(name="finish-rollout", task_run_name="finish: {status}", cache_policy=NO_CACHE, **TRANSIENT_RETRIES)
def finish(targets: Targets, plan: Plan, run_id: str, status: Status, why: str) -> None:
    """End this run's rollout as ``status``; a promoted release becomes the plan's stable one."""
    with Clients(targets, prefect_resolver) as clients:
        clients.runs.move(plan.name, status, by=f"run {run_id}", why=why, run_id=run_id)
        if status is Status.PROMOTED:
            clients.releases.mark_stable(plan.name, plan.release.version, by=f"run {run_id}")


@contextmanager
def rollback_heartbeat(targets: Targets, plan: Plan, run_id: str) -> Iterator[None]:
    """Renew the rollback's lease every third of it while the block runs; stops once another took over."""
    logger = get_run_logger()
    with Clients(targets, prefect_resolver) as clients:

        def beat() -> bool:
            try:
                return clients.runs.renew_rollback(plan.name, run_id, plan.lease)
            except RolloutError as error:  # a passing fault: the next beat tries again
                logger.warning("rollback heartbeat missed a beat: %s", error)
                return True

        with every(plan.lease.total_seconds() / 3, beat, f"rollback heartbeat {plan.name}"):
            yield


@contextmanager
def heartbeat(targets: Targets, plan: Plan, run_id: str) -> Iterator[None]:
    """Renew this run's lease every third of it from a thread while the block runs (waits included).

    Liveness is kept apart from progress: the lease stays short whatever the windows' or an
    approval's length, so a run that died blocks a resume for one lease at most. A lost lease
    stops the beat; the run finds out at its next move (LeaseLost) and changes nothing.
    """
    logger = get_run_logger()
    with Clients(targets, prefect_resolver) as clients:

        def beat() -> bool:
            try:
                clients.runs.renew(plan.name, run_id, plan.lease)
            except LeaseLost as error:
                logger.info("heartbeat stopped: %s", error)
                return False
            except RolloutError as error:  # a passing fault: the next beat tries again
                logger.warning("heartbeat missed a beat: %s", error)
            return True

        with every(plan.lease.total_seconds() / 3, beat, f"heartbeat {plan.name}"):
            yield
