"""One run's turn at driving a rollout: the progression core's next action, done, kept, again.

One class though long: every method performs one kind of :class:`rollout.lifecycle.progression.Action`
on the same run's progress, fence, steps and rollout table, and they change together.
"""

import itertools
from collections.abc import Mapping
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any
from uuid import uuid4

from prefect import get_run_logger

from flows import events
from flows.decision import Decision, decision_form
from flows.outcomes import result_of
from flows.rollback import RollbackResult, rollback_flow
from flows.rollout_result import Ending, RolloutResult, StepResult, final_state
from flows.suspension import pause_for, suspend_for, suspension_key
from rollout.analysis.check_result import CheckResult
from rollout.analysis.gates import Outcome
from rollout.audience.drift import FlagDrift
from rollout.audience.flag_state import Fence
from rollout.audience.steps import Audience, TrafficStep, phase_steps
from rollout.clock import Clock, SystemClock
from rollout.data.backup import BackupResult
from rollout.errors import LeaseLost, RolloutError, RolloutRefused
from rollout.lifecycle.progression import (
    PASSED,
    Action,
    Ask,
    BackUp,
    CheckData,
    ChoosePilots,
    Conclude,
    Finish,
    Measure,
    NotYet,
    Parked,
    Progress,
    SetCompanions,
    SetStep,
    Wait,
    current_audience,
    next_action,
    observed_backup,
    observed_checks,
    observed_companions,
    observed_conclusion,
    observed_decision,
    observed_pilots,
    observed_question,
    observed_round,
    observed_step,
)
from rollout.lifecycle.progression import Decision as DecisionRecord
from rollout.lifecycle.record import Claim
from rollout.lifecycle.statuses import Status
from rollout.plan import Plan
from rollout.plan.model import NotifyEvent, Targets
from rollout.reporting.notifications import notice, recipients
from rollout.reporting.questions import question_markdown
from rollout.reporting.rollout_table import rollout_rows
from tasks.data import backup_data, keep_backup, run_data_checks
from tasks.lease import enter, finish, park, save_progress, unpark
from tasks.notify import run_url, send
from tasks.observe import measure_round
from tasks.record import RampProgress, RolloutTable, StepRecordEntry, courtesy, now, record_step
from tasks.report import show_on_rollout
from tasks.traffic import (
    adopt_flags,
    choose_pilot_stores,
    close_traffic_now,
    record_deployment,
    set_audience,
    set_companion_flags,
)


def count_steps(plan: Plan) -> int:
    """How many traffic steps the plan has (pilot stores count as one)."""
    audience, count = Audience(), 0
    for phase in plan.phases:
        placeholder = ["pilot"] if phase.pilot_stores else []
        for step in phase_steps(phase, audience, placeholder):
            audience = step.audience
            count += 1
    return count


def _entry(key: str, step: StepResult, audience: Audience) -> StepRecordEntry:
    return StepRecordEntry(
        key,
        step.phase,
        step.step,
        step.audience,
        audience.percentage,
        step.outcome,
        step.reason,
        step.values,
        now(),
        {"users": list(audience.users), "stores": list(audience.stores), "percentage": audience.percentage},
    )


ENDINGS: dict[str, NotifyEvent] = {"promoted": "promoted", "held": "held", "stopped": "stopped"}
"""The events a rollout's own end is told as (a rollback is told by the rollback flow)."""


class RolloutDriver:
    """One run's turn at driving a rollout: the progression core's next action, done, kept, again."""

    def __init__(
        self,
        plan: Plan,
        plan_path: str,
        targets: Targets,
        run_id: str,
        rollout_id: str,
        claim: Claim,
        timeout_override: timedelta | None,
        deployment: str | None,
        clock: Clock | None = None,
    ) -> None:
        self.plan, self.plan_path, self.targets, self.run_id = plan, plan_path, targets, run_id
        self.rollout_id = rollout_id or plan.release.version
        self.timeout_override = timeout_override
        self.parks = deployment is not None
        self.clock = clock or SystemClock()
        self.fence = Fence(plan.name, claim.epoch)
        self.logger = get_run_logger()
        previous = claim.previous if claim.resumed else None
        self.previous = previous
        self.woken = previous is not None and previous.status is Status.PARKED and previous.run_id == run_id
        if previous is None:
            self.progress = Progress(began_at=self.clock.now())
        else:
            self.progress = previous.progress(
                restarted=not self.woken, observe_again=previous.status in (Status.HELD, Status.STOPPED)
            )
        self.steps: list[StepResult] = [
            StepResult(s.get("phase", ""), s.get("step", ""), s.get("audience", ""), "done before", "", {})
            for s in (previous.steps if previous is not None else ())
            if s.get("outcome") in PASSED
        ]
        self.decisions = [d.describe(about.split(":", 1)[1]) for about, d in self.progress.decisions.items()]
        self.checks: tuple[CheckResult, ...] = ()
        self.backup: BackupResult | None = None
        self.started = False
        self.status = Status.CHECKING
        self.ramp = RampProgress(plan.name, count_steps(plan))
        self.table = RolloutTable(plan.name)
        self.entries: list[dict[str, Any]] = list(previous.steps) if previous is not None else []
        for _ in self.steps:
            self.ramp.advance()

    def drive(self) -> RolloutResult:
        """Act until the rollout ends, parks, or this run loses it."""
        previous = self.previous
        if previous is not None and not self.woken:
            self.logger.warning(
                "resuming rollout %s after %s (run %s stopped without finishing)",
                previous.rollout_id,
                previous.last_committed() or "no completed step",
                previous.run_id,
            )
        if previous is not None and previous.plan_digest not in (None, self.plan.digest):
            change = f"digest {previous.plan_digest}, now {self.plan.digest}"
            if previous.status not in (Status.HELD, Status.STOPPED):
                # Carried on by itself (woken, or adopted after a crash): never with a plan nobody re-read.
                why = (
                    f"the plan changed since rollout {previous.rollout_id} began ({change}): held with "
                    "traffic where it is; run it again to carry it on with the new plan, or roll it back"
                )
                return self.ended(self.finish_as(Finish(Status.HELD, why)))
            self.logger.warning(
                "carrying rollout %s on with a changed plan (%s)", previous.rollout_id, change
            )
        try:
            if previous is not None and previous.status is Status.HELD:
                adopt_flags(self.targets, self.plan.name)  # a person carries it on from the flags as they are
            while True:
                action = next_action(
                    self.plan,
                    self.progress,
                    self.clock.now(),
                    self.timeout_override,
                    self.targets.flag_refresh,
                )
                if isinstance(action, Finish):
                    return self.ended(self.finish_as(action))
                self.act(action)
        except LeaseLost as error:
            self.logger.error("%s", error)
            return self.result("stopped", str(error))
        except (FlagDrift, RolloutRefused) as error:
            # Someone else changed a flag between two steps (or turned it off): their change wins.
            self.logger.error("%s", error)
            return self.ended(self.finish_as(Finish(Status.HELD, str(error))))

    def act(self, action: Action) -> None:
        """Do one action and keep what it changed."""
        match action:
            case CheckData():
                self.checks = tuple(run_data_checks(self.targets, self.plan.name, self.plan.preflight))
                failing = tuple(c.name for c in self.checks if not c.passed)
                self.progress = observed_checks(self.progress, failing)
            case BackUp():
                self.enter(Status.BACKING_UP, "pre-rollout backup")
                self.backup = backup_data(self.targets, self.plan)
                keep_backup(self.targets, self.plan.name, self.backup.uri)
                self.progress = observed_backup(self.progress)
            case Ask():
                self.begin()
                self.ask(action)
            case SetCompanions(phase=phase):
                self.begin()
                self.enter(Status.STEPPING, f"companion flags of {phase.name}")
                set_companion_flags(self.targets, self.plan.name, phase.flags, self.fence)
                self.keep(observed_companions(self.progress, phase.name))
            case ChoosePilots(phase=phase):
                assert phase.pilot_stores is not None
                stores = choose_pilot_stores(self.targets, phase.pilot_stores, self.plan.name, phase.name)
                self.progress = observed_pilots(self.progress, phase.name, tuple(stores))
            case SetStep(step=step):
                self.begin()
                self.set_step(step)
            case Measure():
                self.measure(action)
            case Conclude():
                self.conclude(action)
            case Wait():
                self.wait(action)
            case NotYet():
                self.not_yet(action)

    def begin(self) -> None:
        """Before the first change this run makes: the Deployment's image kept, the start announced."""
        if self.started:
            return
        self.started = True
        if self.previous is None and not self.plan.backup.enabled:
            self.logger.warning("no backup: waived by %s", self.plan.backup.waived_by)
        elif self.previous is not None and self.previous.backup and self.backup is None:
            self.logger.info("keeping the backup taken before the rollout began: %s", self.previous.backup)
        record_deployment(self.targets, self.plan.name)
        if not self.woken:
            self.tell("started", f"{self.plan.name} {self.plan.release.version}: rollout started")
            events.emit(
                events.STARTED,
                self.plan.name,
                self.plan_path,
                run_id=self.run_id,
                version=self.plan.release.version,
            )

    def enter(self, status: Status, why: str) -> None:
        """Move the rollout to ``status`` (renewing the lease); LeaseLost if the run lost it."""
        enter(self.targets, self.plan, self.run_id, status, why)
        self.status = status

    def observing(self, step: TrafficStep) -> None:
        """Say the rollout observes ``step``'s window, when this run picked the window up half-way."""
        if self.status is not Status.OBSERVING:
            self.enter(Status.OBSERVING, f"window of {step.phase} {step.audience.describe()} picked up")

    def keep(self, progress: Progress) -> None:
        """Adopt and persist ``progress``."""
        self.progress = progress
        save_progress(self.targets, self.plan, self.run_id, progress)

    def set_step(self, step: TrafficStep) -> None:
        """Write the step's audience, read it back, and start its window."""
        where = f"{step.phase} {step.audience.describe()}"
        self.enter(Status.STEPPING, f"{where} ({step.key})")
        set_audience(self.targets, self.plan.name, self.plan.flag, step.audience, self.fence, where)
        self.keep(observed_step(self.progress, step, self.clock.now()))
        if step.window is None:
            self.record(StepResult(step.phase, step.label, step.audience.describe(), "set", "", {}), step)
        else:
            self.enter(Status.OBSERVING, f"window of {where}")

    def measure(self, action: Measure) -> None:
        """Take one round of the step's window and keep it."""
        self.observing(action.step)
        where = f"{action.step.phase} {action.step.audience.describe()}"
        taken = measure_round(
            self.targets,
            dict(action.gates),
            action.number,
            action.total,
            where,
            self.plan.name,
            tuple(self.plan.flags_written),
        )
        self.keep(observed_round(self.progress, action.step, taken))
        self.show(f"measuring {where} ({action.number}/{action.total})")

    def conclude(self, action: Conclude) -> None:
        """Record the window's verdict with the step."""
        step, verdict = action.step, action.verdict
        self.observing(step)
        level = "info" if verdict.outcome is Outcome.SUCCESSFUL else "warning"
        getattr(self.logger, level)("window %s: %s", verdict.outcome, verdict.reason)
        result = StepResult(
            step.phase,
            step.label,
            step.audience.describe(),
            verdict.outcome.value,
            verdict.reason,
            action.window.last_values(),
        )
        self.record(result, step)
        self.keep(observed_conclusion(self.progress, step, verdict))

    def record(self, result: StepResult, step: TrafficStep) -> None:
        """Persist the step's outcome (the run's record, the rollout table) and show it in the result."""
        self.steps.append(result)
        self.persist(step, result)
        if result.outcome in PASSED:
            self.ramp.advance()
            self.tell("step-passed", f"{result.phase} {result.audience}: {result.reason}", result.values)
        self.show(f"{result.phase} {result.audience}: {result.outcome}")

    def persist(self, step: TrafficStep, result: StepResult) -> None:
        """Keep the step's outcome in the run's record, and for the rollout table."""
        entry = _entry(step.key, result, step.audience)
        record_step(self.targets, self.plan.name, entry)
        self.entries.append(asdict(entry))

    def show(self, status: str) -> None:
        """Rewrite the rollout table: every step so far, the window under way, the decisions."""
        progress = self.progress
        now = current_audience(self.plan, progress).describe()
        self.table.show(
            rollout_rows(self.plan, self.entries, progress.window, progress.decisions, now), status
        )

    def wait(self, action: Wait) -> None:
        """Sleep until the next round, or park when that is far and the run came from a deployment."""
        self.observing(action.then.step)
        left = (action.until - self.clock.now()).total_seconds()
        window = action.then.step.window
        servable = window is not None and self.plan.parks_window(window.interval)
        if self.parks and servable and left >= self.plan.park_after.total_seconds():
            then = action.then
            parked = Parked(
                self.clock.now(),
                action.until,
                f"round {then.number} of {then.total} of {then.step.key}",
                then.step.key,
                suspension_key("window", then.step.key, str(then.number), uuid4().hex[:8]),
                Status.OBSERVING,
            )
            self.park(parked)
            self.suspend(parked)  # the process ends; woken, it starts over
        self.clock.sleep(max((action.until - self.clock.now()).total_seconds(), 0.0))

    def not_yet(self, action: NotYet) -> None:
        """Wait for the schedule: sleep, or park when that is far and the run came from a deployment."""
        why = f"{action.what} waits until {action.until:%Y-%m-%d %H:%M} UTC: {action.why}"
        self.enter(Status.STEPPING, why)
        self.logger.info("%s", why)
        self.show(why)
        left = (action.until - self.clock.now()).total_seconds()
        if self.parks and left >= self.plan.park_after.total_seconds():
            parked = Parked(
                self.clock.now(),
                action.until,
                f"{action.what} may start ({action.why})",
                action.what,
                suspension_key("schedule", action.what, uuid4().hex[:8]),
                Status.STEPPING,
            )
            self.park(parked)
            self.suspend(parked)  # the process ends; woken, it starts over
        self.clock.sleep(max((action.until - self.clock.now()).total_seconds(), 0.0))

    def suspend(self, parked: Parked, form: type[Decision] | None = None) -> Decision | None:
        """Suspend the run after parking; if Prefect cannot take the suspension, take the park back.

        A failed suspend call (the Prefect API down) would otherwise leave a record that says parked
        and a run that says Running with no process behind it. Unparked, this run carries on
        attached (it stays so for the rest of its turn) and its lease says it is alive.
        """
        try:
            return suspend_for(parked.key, self.parked_message(parked), form)
        except Exception as error:  # Pause, the suspension itself, is a BaseException and passes
            self.logger.warning(
                "could not suspend (%s): the rollout stays with this run, which carries on attached", error
            )
            # Called directly, not as a task run: the engine may yet raise the suspension at the next
            # task boundary (it can take the server's event for a suspension that was not saved), and
            # the park must be taken back before that, so the record never says parked for a run that
            # then ends. If it does end, its lease runs out and the reconciler watches the rollout.
            unpark.fn(self.targets, self.plan, self.run_id, parked)
            self.parks = False
            return None

    def park(self, parked: Parked) -> None:
        """Record that the rollout waits with no process held, until when and for what."""
        park(self.targets, self.plan, self.run_id, parked, self.progress)
        self.logger.info(
            "parked until %s: %s; %s",
            f"{parked.until:%Y-%m-%d %H:%M:%S} UTC" if parked.until else "a decision",
            parked.next,
            "answer in the UI (Resume) or with `rollout promote`"
            if parked.for_decision
            else "the reconciler (rollout-reconcile) measures the window and wakes this run",
        )

    def ask(self, action: Ask) -> None:
        """Put the question to a person and keep the answer (or that nobody answered in time)."""
        if action.first_asked:
            self.keep(observed_question(self.progress, action.about, self.clock.now()))
            values = self.progress.window.last_values() if self.progress.window else {}
            deadline = f"{action.deadline:%Y-%m-%d %H:%M} UTC"
            self.tell("awaiting-approval", f"{action.question} (answer by {deadline})", values)
        self.enter(Status.AWAITING_APPROVAL, action.question)
        approval = action.phase.approval if action.phase is not None else None
        form = decision_form(
            approval.checklist if approval else (), question_markdown(self.plan, self.progress, action)
        )
        for attempt in itertools.count():
            decision = self.decision(action, form, attempt)
            if decision is None or not decision.approved or not decision.unticked():
                break
            # The form refuses this; an answer that still gets here is not an approval.
            self.logger.warning(
                "%s approved %s with boxes unticked (%s): that is no approval; asking again",
                decision.approver,
                action.question,
                ", ".join(decision.unticked()),
            )
        if decision is None:
            found = DecisionRecord(None, "nobody", self.clock.now())
        else:
            found = DecisionRecord(
                decision.approved, decision.approver, self.clock.now(), decision.note, decision.ticked()
            )
        self.decisions.append(found.describe(action.about.split(":", 1)[1]))
        self.keep(observed_decision(self.progress, action.about, found))
        step = action.step
        if step is not None and found.approved:
            values = self.progress.window.last_values() if self.progress.window else {}
            continued = StepResult(
                step.phase, step.label, step.audience.describe(), "continued", self.decisions[-1], values
            )
            self.persist(step, continued)
        self.show(self.decisions[-1])

    def decision(self, action: Ask, form: type[Decision], attempt: int) -> Decision | None:
        """Wait for one answer: parked (no process held) when the run came from a deployment."""
        if not self.parks:
            return pause_for(action.question, (action.deadline - self.clock.now()).total_seconds(), form)
        key = suspension_key("decision", action.about, *(("again", str(attempt)) if attempt else ()))
        parked = self.previous.parked if self.woken and self.previous is not None else None
        here = Parked(
            self.clock.now(),
            action.deadline,
            f"decision on {action.question}",
            action.about,
            key,
            Status.AWAITING_APPROVAL,
        )
        if parked is None or parked.key != key:
            self.park(here)
        decision = self.suspend(here, form)
        if decision is None and not self.parks:  # the suspension failed: ask with the process held
            return pause_for(action.question, (action.deadline - self.clock.now()).total_seconds(), form)
        return decision

    def parked_message(self, parked: Parked) -> str:
        """What the Paused run says in the UI: what it waits for, until when, and what then."""
        until = f"{parked.until:%Y-%m-%d %H:%M:%S} UTC" if parked.until else "no deadline"
        if parked.for_decision:
            return f"waiting for a {parked.next} until {until}: Resume to approve or reject"
        if parked.status is Status.STEPPING:
            return f"parked until {until}, when {parked.next}: rollout-reconcile wakes it then"
        return f"parked until {until}: {parked.next}, measured by rollout-reconcile"

    def finish_as(self, action: Finish) -> RolloutResult:
        """End the rollout as the core says: promoted, held, stopped, blocked, or rolled back."""
        status, reason, first_bad = action.status, action.reason, action.first_bad_at
        plan, targets, run_id, logger = self.plan, self.targets, self.run_id, self.logger
        if status in (Status.BLOCKED, Status.STOPPED) and self.progress.failed_checks:
            logger.error("%s", reason)
            finish(targets, plan, run_id, status, reason)
            return self.result("blocked", reason)
        rollback = None
        outcome: Ending
        if status is Status.STOPPED:
            # The plan leaves the rollback to a person or an automation: say so loudly, change nothing.
            outcome = "stopped"
            logger.error("stopped without rolling back (rollback.automatic is off): %s", reason)
            finish(targets, plan, run_id, Status.STOPPED, reason)
            if action.judged and self.progress.moved:
                events.emit(
                    events.FAILED,
                    plan.name,
                    self.plan_path,
                    reason=reason,
                    run_id=run_id,
                    rollout_id=self.rollout_id,
                )
        elif status is Status.ROLLED_BACK:
            outcome = "rolled_back"
            if self.progress.moved:
                # Closed first by this run: the rollback is a flow run of its own, which Prefect's API
                # must create, and a judged-bad release must not wait on that.
                try:
                    close_traffic_now(targets, plan.name, plan.flag, self.fence)
                except RolloutError as error:  # fenced off, or unreachable: the rollback closes it
                    logger.warning("could not turn traffic off before the rollback: %s", error)
            state = rollback_flow(
                plan_path=self.plan_path,
                reason=reason,
                targets=targets,
                first_bad_at=first_bad,
                on_behalf_of=run_id,
                return_state=True,
            )
            rollback = result_of(state, RollbackResult)
            courtesy(
                "the incident report", lambda: show_on_rollout(plan.name, state.state_details.flow_run_id)
            )
            events.emit(
                events.ROLLED_BACK, plan.name, self.plan_path, reason=reason, ok=rollback.ok, run_id=run_id
            )
        else:
            outcome = "promoted" if status is Status.PROMOTED else "held"
            audience = current_audience(plan, self.progress).describe()
            finish(targets, plan, run_id, status, reason or f"{plan.release.version} at {audience}")
            if status is Status.PROMOTED:
                events.emit(
                    events.PROMOTED, plan.name, self.plan_path, version=plan.release.version, run_id=run_id
                )
        return self.result(outcome, reason, rollback, first_bad)

    def ended(self, result: RolloutResult) -> RolloutResult:
        """Say how the rollout ended on its progress and in its table."""
        state = final_state(result)
        how = f"{state.name}: {(state.message or '').removeprefix(f'{self.plan.name}: ')}"
        self.ramp.ended(how)
        self.show(how)
        event = ENDINGS.get(result.status)
        if event is not None:  # a rollback tells about itself, whoever started it
            self.tell(event, how, result.steps[-1].values if result.steps else {}, result.decisions)
        return result

    def tell(
        self,
        event: NotifyEvent,
        what: str,
        values: Mapping[str, float | None] | None = None,
        details: tuple[str, ...] = (),
    ) -> None:
        """Send the plan's notifications of ``event`` (undelivered ones are logged, never fatal)."""
        if recipients(self.plan, event):
            send(self.plan, notice(self.plan, event, what, values, details, run_url(self.run_id)))

    def result(
        self,
        outcome: Ending,
        reason: str,
        rollback: RollbackResult | None = None,
        first_bad: datetime | None = None,
    ) -> RolloutResult:
        """What this run did and how the rollout ended."""
        return RolloutResult(
            self.plan.name,
            outcome,
            tuple(self.steps),
            current_audience(self.plan, self.progress).describe(),
            tuple(self.decisions),
            rollback,
            first_bad,
            self.checks,
            self.backup,
            reason,
        )
