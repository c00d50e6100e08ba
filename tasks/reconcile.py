"""One reconciler pass over every rollout in the plans' databases: measure, wake, adopt, hold, report.

Parked windows are measured here, in batch (a thread per rollout, one PromQL round each),
instead of by a process per rollout: a process costs seconds of CPU and hundreds of MiB,
a query milliseconds. A window that fails turns traffic off at once, under a raised
fencing token, before the run is woken to roll the rest back.

One module though long: every chore (measure, wake, adopt, hold, finish a rollback) works on
the same finding for one rollout with the same Prefect client, and the pass runs them in order.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from uuid import UUID

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.objects import FlowRun
from prefect.client.schemas.sorting import FlowRunSort
from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError
from prefect.states import Crashed, Failed, Scheduled

from rollout.adapters.clients import Clients
from rollout.analysis.gates import Outcome
from rollout.audience.drift import FlagDrift
from rollout.audience.flag_state import Fence
from rollout.errors import PermanentError, RolloutError, SecretUnavailable, ServiceUnavailable
from rollout.lifecycle.progression import (
    Conclude,
    Finish,
    Measure,
    SetCompanions,
    SetStep,
    next_action,
    observed_round,
)
from rollout.lifecycle.reconciliation import (
    WAKE_GRACE,
    Acted,
    Chore,
    PassReport,
    chore_for,
    holder,
    watch_chore,
)
from rollout.lifecycle.record import RunRecord
from rollout.lifecycle.statuses import Status
from rollout.plan import Plan, load_plan
from rollout.plan.model import Targets
from rollout.plan.secrets import SecretResolver, env_resolver
from tasks.observe import take_round
from tasks.secrets import prefect_resolver
from tasks.traffic import check_drift, close_traffic

WORKERS = 16
"""Rollouts measured at once in a pass."""


@dataclass
class _Found:
    record: RunRecord
    clients: Clients
    run: FlowRun | None
    adoption: FlowRun | None = None
    drift: str | None = None
    """Someone else's change to a flag the rollout wrote, found while measuring: it holds."""
    plan: Plan | None = None
    rounds: int = 0
    acted: list[Acted] = field(default_factory=list)


def databases(
    plan_paths: Iterable[str], targets: Targets | None, resolve: Callable[[Plan, Targets | None], Targets]
) -> tuple[list[Targets], list[str]]:
    """The distinct targets of the plans (or ``targets`` for all of them): where rollout records live.

    A plan whose targets cannot be had (invalid, or the sandbox it runs on is not up) is skipped
    and named in the second list, so one such plan never stops the pass for the others.
    """
    seen: dict[str, Targets] = {}
    skipped: list[str] = []
    for path in plan_paths:
        try:
            resolved = targets or resolve(load_plan(path), None)
        except RolloutError as error:
            skipped.append(f"{path}: {error}")
            continue
        flags = resolved.flag_store.model_dump_json() if resolved.flag_store else ""
        seen.setdefault(resolved.mongodb.model_dump_json() + flags, resolved)
    return list(seen.values()), skipped


def _runs(client: SyncPrefectClient, ids: list[str]) -> dict[str, FlowRun]:
    found: dict[str, FlowRun] = {}
    for start in range(0, len(ids), 200):
        chunk = [UUID(i) for i in ids[start : start + 200]]
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=chunk)),
            limit=len(chunk),
            sort=FlowRunSort.ID_DESC,  # this server refuses a filter without a sort (422)
        )
        found.update({str(r.id): r for r in runs})
    return found


@task(name="reconcile-pass", cache_policy=NO_CACHE)
def reconcile_pass(
    where: list[Targets], own_targets: bool = True, wake_grace: timedelta = WAKE_GRACE
) -> PassReport:
    """Act once on every rollout recorded in ``where``'s databases (see the module's docstring).

    With ``own_targets``, a rollout whose plan names its targets is measured and has its
    traffic turned off through them (its own Prometheus, flag provider, cluster), not through
    those of whichever plan shares its database. ``wake_grace``: how long a parked rollout's run
    may be on its way (woken, or a suspension that did not take) before it counts as gone.
    """
    with get_client(sync_client=True) as client:
        return _pass(where, own_targets, wake_grace, client, get_run_logger(), prefect_resolver)


def watch_pass(where: list[Targets], own_targets: bool = True) -> PassReport:
    """A pass with no Prefect server to ask (down, or its database down): watch, and nothing else.

    Every rollout no live process holds (parked, or driven by a run whose lease ran out) has its
    due rounds measured and, if its window fails, traffic turned off under a raised epoch. Nothing
    is woken, adopted or held (that needs Prefect): those wait for a pass with the server back.
    Plain Python, no flow or task, so that ``rollout reconcile`` from cron can run it meanwhile.
    """
    return _pass(where, own_targets, WAKE_GRACE, None, logging.getLogger("rollout.reconcile"), _env_only)


def _env_only(kind: str, name: str) -> str:
    """Secrets while Prefect cannot be asked: environment references only."""
    if kind == "env":
        return env_resolver(kind, name)
    raise ServiceUnavailable("Prefect", f"Secret block '{name}' cannot be read while Prefect is unreachable")


def _pass(
    where: list[Targets],
    own_targets: bool,
    wake_grace: timedelta,
    client: SyncPrefectClient | None,
    logger: logging.Logger | logging.LoggerAdapter[logging.Logger],
    resolver: SecretResolver,
) -> PassReport:
    """One pass; with no Prefect ``client``, the watching part only (see :func:`watch_pass`)."""
    started = time.perf_counter()
    _load.cache_clear()
    with ExitStack() as stack:
        found: list[_Found] = []
        unread: list[Acted] = []
        idle: list[Acted] = []
        for targets in where:
            clients = stack.enter_context(Clients(targets, resolver))
            where_ = f"rollouts in database {targets.mongodb.database}"
            try:
                found += [_Found(r, clients, None) for r in clients.runs.all()]
            except SecretUnavailable as error:
                # Its secret was never created, so no rollout can have run there: said, not listed.
                idle.append(Acted(where_, "not configured", str(error)))
            except RolloutError as error:
                # One database that cannot be read (a server down, a refused password) never
                # keeps the pass from the rollouts recorded in the others.
                unread.append(Acted(where_, "report", f"cannot be read: {error}"))
        if own_targets:
            _use_own_targets(found, stack, resolver)
        now = datetime.now(UTC)
        if client is None:
            chores = [(f, watch_chore(f.record, now)) for f in found]
        else:
            chores = _chores(client, found, now, wake_grace)
        with ThreadPoolExecutor(WORKERS) as pool:
            list(pool.map(lambda fc: _measure(*fc), [(f, c) for f, c in chores if c.measure]))
        for f, chore in chores:
            if client is None:
                f.acted = [a for a in f.acted if a.did != "wake"]  # for the next pass with Prefect
                if chore.kind == "report":
                    f.acted.append(Acted(f.record.plan, "report", chore.why))
                continue
            try:
                _act(client, f, chore)
            except (RolloutError, PrefectHTTPStatusError, ObjectNotFound) as error:
                f.acted.append(Acted(f.record.plan, "failed", f"{chore.kind}: {error}"))
    acted = [a for f, _ in chores for a in f.acted if a.did != "report"]
    report = PassReport(
        len(found),
        sum(f.rounds for f in found),
        tuple(acted),
        (*unread, *(a for f, _ in chores for a in f.acted if a.did == "report")),
        time.perf_counter() - started,
        sum(f.record.status is Status.PARKED for f in found),
        tuple(idle),
    )
    for a in acted:
        logger.info("%s: %s (%s)", a.plan, a.did, a.why)
    for a in report.not_configured:
        logger.info("%s: not configured: %s", a.plan, a.why)
    for a in report.cannot_act:
        logger.warning("%s: cannot act: %s", a.plan, a.why)
    logger.info("reconciled: %s", report.summary())
    return report


def _chores(
    client: SyncPrefectClient, found: list[_Found], now: datetime, wake_grace: timedelta
) -> list[tuple[_Found, Chore]]:
    """Each rollout's chore, from its record and what Prefect says of its runs."""
    ids = sorted({i for f in found for i in (holder(f.record), f.record.adopted_by) if i})
    runs = _runs(client, ids)
    chores = []
    for f in found:
        run_id = holder(f.record)
        f.run = runs.get(run_id) if run_id else None
        f.adoption = runs.get(f.record.adopted_by) if f.record.adopted_by else None
        chore = chore_for(
            f.record,
            _state_type(f.run),
            now,
            run_since=_since(f.run),
            adoption=_state_type(f.adoption),
            adoption_since=_since(f.adoption),
            wake_grace=wake_grace,
        )
        chores.append((f, chore))
    return chores


def _state_type(run: FlowRun | None) -> str | None:
    return run.state_type.value if run is not None and run.state_type is not None else None


def _since(run: FlowRun | None) -> datetime | None:
    """When the run entered the state Prefect shows for it."""
    return run.state.timestamp if run is not None and run.state is not None else None


def _use_own_targets(found: list[_Found], stack: ExitStack, resolver: SecretResolver) -> None:
    opened: dict[str, Clients] = {}
    for f in found:
        try:
            plan = _load(f.record.plan_path) if f.record.plan_path else None
        except RolloutError:
            continue  # said later, by the chore that needs the plan
        if plan is None or plan.targets is None or plan.targets == f.clients.targets:
            continue
        key = plan.targets.model_dump_json()
        if key not in opened:
            opened[key] = stack.enter_context(Clients(plan.targets, resolver))
        f.clients = opened[key]


@lru_cache(maxsize=256)
def _load(path: str) -> Plan:
    """A plan file, read once a pass however many rollouts share it (the cache is cleared per pass)."""
    return load_plan(path)


def _plan(f: _Found) -> Plan | None:
    if f.plan is None and f.record.plan_path:
        try:
            f.plan = _load(f.record.plan_path)
        except RolloutError as error:
            f.acted.append(
                Acted(f.record.plan, "report", f"its plan {f.record.plan_path} cannot be read: {error}")
            )
    elif f.plan is None:
        f.acted.append(
            Acted(f.record.plan, "report", "its record names no plan file (written by an older version)")
        )
    return f.plan


def _measure(f: _Found, chore: Chore) -> None:
    """Take the parked window's due rounds, keep them, and say what comes next.

    A rollout whose rounds cannot be kept (its database unreachable) is named in the report; the
    others are measured all the same.
    """
    try:
        _measure_rounds(f)
    except FlagDrift as drift:
        f.drift = str(drift)
    except RolloutError as error:
        f.acted.append(Acted(f.record.plan, "failed", f"{chore.why}: {error}"))


def _measure_rounds(f: _Found) -> None:
    plan = _plan(f)
    if plan is None:
        return
    check_drift(f.clients, plan.name, plan.flags_written)  # a person's change wins over the window
    progress = replace(f.record.progress(restarted=False), checked=True)
    refresh = f.clients.targets.flag_refresh
    action = next_action(plan, progress, datetime.now(UTC), flag_refresh=refresh)
    while isinstance(action, Measure):
        taken = take_round(f.clients, action.gates, datetime.now(UTC))
        progress = observed_round(progress, action.step, taken)
        f.rounds += 1
        action = next_action(plan, progress, datetime.now(UTC), flag_refresh=refresh)
    if (
        f.rounds
        and progress.window is not None
        and not f.clients.runs.save_unheld_window(f.record, progress.window)
    ):
        f.rounds = 0  # woken or taken meanwhile: its new holder measures again
        return
    if isinstance(action, Conclude):
        verdict = action.verdict.outcome
        bad = verdict.aborts or (verdict is Outcome.INCONCLUSIVE and _rolls_back_inconclusive(action))
        if bad and plan.rollback.automatic:
            f.acted.append(Acted(f.record.plan, "traffic off", _traffic_off(f, plan, action)))
    if isinstance(action, Conclude | Finish):
        f.acted.append(Acted(f.record.plan, "wake", "the window has a verdict"))
    elif isinstance(action, SetStep | SetCompanions) and _waits_for_schedule(f.record):
        f.acted.append(Acted(f.record.plan, "wake", "its schedule lets the next step start"))


def _waits_for_schedule(record: RunRecord) -> bool:
    return record.parked is not None and record.parked.status is Status.STEPPING


def _rolls_back_inconclusive(action: Conclude) -> bool:
    window = action.step.window
    return window is not None and window.on_inconclusive == "rollback"


def _traffic_off(f: _Found, plan: Plan, action: Conclude) -> str:
    """The rollback's first step, here and now: the main flag and the router admit no one."""
    epoch = f.clients.runs.fence_unheld(f.record, f"window of {action.step.key}: {action.verdict.reason}")
    if epoch is None:
        return "not done: the rollout moved meanwhile"
    done = close_traffic(f.clients, plan.name, plan.flag, Fence(plan.name, epoch))
    if done.startswith("not done"):
        return done
    return f"{action.step.key}: {action.verdict.reason}"


def _act(client: SyncPrefectClient, f: _Found, chore: Chore) -> None:
    record = f.record
    # A window's verdict (taken by this pass) wakes a suspended run; a run that is not suspended is
    # either on its way and reads the verdict from the record, or gone and adopted below.
    verdict = next((a.why for a in f.acted if a.did == "wake"), None)
    f.acted = [a for a in f.acted if a.did != "wake"]
    turned_off = any(a.did == "traffic off" for a in f.acted)
    if f.drift is not None and record.status is Status.PARKED:
        held = f.clients.runs.move(
            record.plan,
            Status.HELD,
            by="reconciler",
            why=f.drift,
            revision=record.revision,
            epoch_floor=record.epoch,
        )
        f.acted.append(Acted(record.plan, "held", f"{f.drift} (epoch {held.epoch})"))
        if _state_type(f.run) == "PAUSED":  # its suspended run has nothing left to wait for
            client.set_flow_run_state(UUID(record.run_id), Failed(name="Held", message=f.drift), force=True)
    elif chore.kind == "report":
        f.acted.append(Acted(record.plan, "report", chore.why))
    elif chore.kind == "hold":
        where = "traffic turned off, its window having failed" if turned_off else "traffic where it is"
        record_moved = f.clients.runs.move(
            record.plan,
            Status.HELD,
            by="reconciler",
            why=f"{chore.why}: held with {where} (run it again to carry it on, or roll it back)",
            revision=record.revision,
            epoch_floor=record.epoch,
        )
        f.acted.append(Acted(record.plan, "held", f"{chore.why} (epoch {record_moved.epoch})"))
    elif chore.kind == "adopt":
        _adopt(client, f, chore)
    elif chore.kind == "finish-rollback":
        _finish_rollback(client, f, chore)
    elif (chore.kind == "wake" or verdict is not None) and _state_type(f.run) == "PAUSED":
        # Forced: a suspension waiting for a decision cannot be resumed without one, and its run
        # reads what to do (the deadline passed, the window's verdict) from the record anyway.
        client.set_flow_run_state(UUID(record.run_id), Scheduled(name="Resuming"), force=True)
        f.acted.append(Acted(record.plan, "woken", chore.why if chore.kind == "wake" else str(verdict)))


ROLLBACK_DEPLOYMENT = "rollback/emergency-rollback"


def _finish_rollback(client: SyncPrefectClient, f: _Found, chore: Chore) -> None:
    """Mark the dead rollback run Crashed and start the emergency rollback, which takes the rollout over."""
    record = f.record
    old = f.run
    _crash(client, old, chore)
    deployment = client.read_deployment_by_name(ROLLBACK_DEPLOYMENT)
    parameters: dict[str, object] = {
        "plan_path": record.plan_path,
        "reason": f"finishing the rollback run {record.rollback_run_id} began: {chore.why}",
    }
    if old is not None and old.parameters.get("targets"):
        parameters["targets"] = old.parameters["targets"]
    new = client.create_flow_run_from_deployment(deployment.id, parameters=parameters, tags=["adopted"])
    if not f.clients.runs.mark_adopted(record, str(new.id), chore.why):
        f.acted.append(Acted(record.plan, "report", f"rollback run {new.id} started, but the record moved"))
        return
    f.acted.append(Acted(record.plan, "adopted", f"{chore.why}; rollback run {new.id} finishes it"))


def _crash(client: SyncPrefectClient, run: FlowRun | None, chore: Chore) -> None:
    """Tell Prefect a run it still shows as going is gone."""
    if run is not None and (
        run.state_type is None or run.state_type.value not in ("COMPLETED", "FAILED", "CRASHED")
    ):
        client.set_flow_run_state(
            run.id, Crashed(message=f"the reconciler found it gone: {chore.why}"), force=True
        )


def _adopt(client: SyncPrefectClient, f: _Found, chore: Chore) -> None:
    """Mark the gone run Crashed, unpark the rollout if it was parked, and start a run that carries it on."""
    record = f.record
    if record.deployment_id is None:
        raise PermanentError(f"{record.plan} was started from the CLI: no deployment can carry it on")
    old = f.run
    _crash(client, old, chore)
    if f.adoption is not None and f.adoption.id != (old.id if old else None):
        _crash(client, f.adoption, chore)  # an earlier adoption that never took the rollout
    if record.status is Status.PARKED:
        record = f.clients.runs.unpark(record, "reconciler", chore.why)
    parameters = dict(old.parameters) if old is not None else {"plan_path": record.plan_path}
    parameters["rollout_id"] = record.rollout_id or ""
    new = client.create_flow_run_from_deployment(
        UUID(record.deployment_id), parameters=parameters, tags=["adopted"]
    )
    if not f.clients.runs.mark_adopted(record, str(new.id), chore.why):
        f.acted.append(
            Acted(record.plan, "report", f"adopting run {new.id} started, but the record moved meanwhile")
        )
        return
    f.acted.append(Acted(record.plan, "adopted", f"{chore.why}; run {new.id} carries it on"))
