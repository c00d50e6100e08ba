"""Where a rollout goes next, from its plan, what is persisted of it and the time. Pure, no I/O.

A rollout is a value (:class:`Progress`) that lives in its run record: the steps
passed, the window under way with every measurement taken, the questions asked
and the decisions given. :func:`next_action` reads it and says what to do next;
the ``observed_*`` functions fold in what was done or seen and return the new
value to persist. Whichever process holds the rollout (the run that started it,
one that picked it up after a crash, the reconciler measuring a parked window)
runs the same loop over the same value, so progress survives any one of them:
a window picked up at measurement k carries on at k+1 of N.

One module though long: the actions, :func:`next_action` and the folds are one decision
table read together; each branch is a few lines, and splitting them would scatter it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from rollout.analysis.gates import Measurement, Outcome, Verdict, gate_verdict, worst
from rollout.audience.steps import Audience, TrafficStep, phase_steps
from rollout.durations import format_duration
from rollout.lifecycle.calendar import opening, step_schedule
from rollout.lifecycle.statuses import Status
from rollout.plan import Plan
from rollout.plan.model import Gate, Phase, Window


@dataclass(frozen=True)
class Decision:
    """A person's answer (or the lack of one) to a question the rollout asked."""

    approved: bool | None
    """True to go on, False to roll back, None when nobody answered in time."""
    by: str
    at: datetime
    note: str = ""
    ticked: tuple[str, ...] = ()
    """The checklist items the approver ticked."""

    def describe(self, about: str) -> str:
        """``pilot: approved by ana at 14:02 UTC (3 checks ticked): looks good``, or nobody in time."""
        if self.approved is None:
            return f"{about}: no decision in time"
        verb = "approved" if self.approved else "rejected"
        ticked = f" ({len(self.ticked)} checks ticked)" if self.ticked else ""
        note = f": {self.note}" if self.note else ""
        return f"{about}: {verb} by {self.by} at {self.at:%Y-%m-%d %H:%M} UTC{ticked}{note}"


@dataclass(frozen=True)
class Round:
    """One measurement of every gate of a window, at one time."""

    at: datetime
    readings: tuple[Measurement, ...]


@dataclass(frozen=True)
class WindowState:
    """The window of the step under way: when its audience was set, and every round measured."""

    key: str
    started_at: datetime
    rounds: tuple[Round, ...] = ()

    def history(self, gate: str) -> list[Measurement]:
        """Every reading of ``gate`` so far, oldest first."""
        return [m for r in self.rounds for m in r.readings if m.gate == gate]

    def first_bad_at(self) -> datetime | None:
        """When a reading first failed, errored or was inconclusive."""
        bad = (Outcome.FAILED, Outcome.ERROR, Outcome.INCONCLUSIVE)
        return next((m.at for r in self.rounds for m in r.readings if m.outcome in bad), None)

    def last_values(self) -> dict[str, float | None]:
        """The latest value read per gate."""
        return {m.gate: m.value for r in self.rounds for m in r.readings}


@dataclass(frozen=True)
class Progress:
    """A rollout as far as it got: what its record keeps, and what this run has done so far."""

    outcomes: Mapping[str, str] = field(default_factory=dict)
    """Each step recorded so far (``phase/index``) and how it ended: successful, set, continued, failed..."""
    pilots: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    companions: frozenset[str] = frozenset()
    """Phases whose companion flags are set."""
    window: WindowState | None = None
    asked: Mapping[str, datetime] = field(default_factory=dict)
    """When each question was first asked (its deadline counts from then)."""
    decisions: Mapping[str, Decision] = field(default_factory=dict)
    backed_up: bool = False
    checked: bool = False
    """This run's data checks passed (they run again in every run that picks the rollout up)."""
    failed_checks: tuple[str, ...] = ()
    restarted: bool = False
    """This run carries on a rollout whose previous run stopped without finishing."""
    moved: bool = False
    """Traffic was moved before this run (a data check failing now stops, rather than blocks)."""
    began_at: datetime | None = None
    """When the rollout began (a schedule's relative ``not_before`` counts from then)."""

    @property
    def committed(self) -> frozenset[str]:
        """Keys of the steps passed: the rollout went on after them."""
        return frozenset(key for key, outcome in self.outcomes.items() if outcome in PASSED)


PASSED = frozenset({"successful", "set", "continued"})
"""Step outcomes after which the rollout went on: a run that picks it up does not do them again."""


# What to do next: one of these.


@dataclass(frozen=True)
class CheckData:
    """Run the plan's data checks."""


@dataclass(frozen=True)
class BackUp:
    """Take the pre-rollout backup."""


@dataclass(frozen=True)
class Ask:
    """Wait for a person's decision on ``about`` until ``deadline``."""

    about: str
    question: str
    deadline: datetime
    first_asked: bool
    """True the first time: the question's time is to be persisted."""
    step: TrafficStep | None = None
    """The step whose window was inconclusive (None for a phase's approval)."""
    phase: Phase | None = None
    """The phase waiting for approval (None for an inconclusive window)."""
    on_timeout: str = "rollback"
    """What happens when nobody decides by the deadline: rollback or hold."""


@dataclass(frozen=True)
class ChoosePilots:
    """Run the phase's pilot-store query (the first choice is kept)."""

    phase: Phase


@dataclass(frozen=True)
class SetCompanions:
    """Switch the phase's companion flags."""

    phase: Phase


@dataclass(frozen=True)
class SetStep:
    """Write the step's audience (flags, router) and start its window."""

    step: TrafficStep


@dataclass(frozen=True)
class Measure:
    """Take round ``number`` (from 1) of ``total`` of the step's window now."""

    step: TrafficStep
    gates: Mapping[str, Gate]
    number: int
    total: int


@dataclass(frozen=True)
class Conclude:
    """The step's window has a verdict: record it (a passed step is not done again)."""

    step: TrafficStep
    verdict: Verdict
    window: WindowState


@dataclass(frozen=True)
class Wait:
    """Nothing to do before ``until``; then ``then``."""

    until: datetime
    then: Measure


@dataclass(frozen=True)
class NotYet:
    """The plan's schedule lets ``what`` start at ``until`` and not before: wait, for ``why``."""

    until: datetime
    what: str
    why: str


@dataclass(frozen=True)
class Finish:
    """End the rollout as ``status``; ``judged`` when its gates or a person found the release bad.

    A rollout judged bad is rolled back, or stopped where traffic is when the plan's rollback is not
    automatic (``judged`` then says the release was found bad, for whoever acts on it).
    """

    status: Status
    reason: str
    first_bad_at: datetime | None = None
    judged: bool = False


Action = (
    CheckData
    | BackUp
    | Ask
    | ChoosePilots
    | SetCompanions
    | SetStep
    | Measure
    | Conclude
    | Wait
    | NotYet
    | Finish
)


def approval_key(phase: str) -> str:
    """The question asked before ``phase`` starts."""
    return f"approval:{phase}"


def inconclusive_key(step: str) -> str:
    """The question asked after ``step``'s window ended inconclusive."""
    return f"inconclusive:{step}"


def next_action(
    plan: Plan,
    progress: Progress,
    now: datetime,
    approval_timeout: timedelta | None = None,
    flag_refresh: timedelta | None = None,
) -> Action:
    """What the rollout does next.

    ``approval_timeout`` overrides every phase's approval timeout. ``flag_refresh`` is how long
    the applications take to see a flag write, from the targets the run acts on (the sandbox's,
    or ones given instead of the plan's); by default, that of the plan's own targets.
    """
    if flag_refresh is None:
        flag_refresh = plan.targets.flag_refresh if plan.targets is not None else timedelta(0)
    if not progress.checked:
        return CheckData()
    if progress.failed_checks:
        names = ", ".join(progress.failed_checks)
        if progress.moved:
            return Finish(
                Status.STOPPED, f"data checks failed ({names}) on resuming: traffic stays where it was"
            )
        return Finish(Status.BLOCKED, f"data checks failed ({names}): nothing was changed")
    if plan.backup.enabled and not progress.backed_up:
        return BackUp()
    if progress.restarted and plan.rollback.on_restart == "rollback":
        where = _last_passed(plan, progress.committed) or "its first step"
        return Finish(
            Status.ROLLED_BACK, f"the rollout stopped after {where}; the plan rolls back on restart"
        )
    audience = Audience()
    for phase in plan.phases:
        begun = any(key.startswith(f"{phase.name}/") for key in _touched(progress))
        if phase.approval is not None and not begun:
            timeout = approval_timeout or phase.approval.timeout
            about = approval_key(phase.name)
            decision = _decision(progress, about, timeout, now)
            if decision is None:
                asked = _ask(progress, about, f"starting phase {phase.name}", timeout, now)
                return replace(asked, phase=phase, on_timeout=phase.approval.on_timeout)
            if decision.approved is None:
                why = f"nobody approved {phase.name} within {format_duration(timeout)}"
                if phase.approval.on_timeout == "hold":
                    return Finish(Status.HELD, f"{why}: traffic stays at {audience.describe()}")
                return _roll_back(plan, f"approval for {phase.name} timed out")
            if not decision.approved:
                why = f": {decision.note}" if decision.note else ""
                return _roll_back(plan, f"{decision.by} rejected {phase.name}{why}", judged=True)
        if phase.flags and phase.name not in progress.companions:
            held = _scheduled(plan, phase, 0, progress, now, f"phase {phase.name}")
            return held or SetCompanions(phase)
        if phase.pilot_stores is not None and phase.name not in progress.pilots:
            return ChoosePilots(phase)
        for step in phase_steps(phase, audience, progress.pilots.get(phase.name, ())):
            audience = step.audience
            if step.key in progress.committed:
                continue
            window = progress.window
            if step.window is None or window is None or window.key != step.key:
                held = _scheduled(plan, phase, step.index, progress, now, f"{phase.name} {step.label}")
                return held or SetStep(step)
            return _in_window(plan, progress, step, step.window, window, now, flag_refresh)
    return Finish(Status.PROMOTED, "")


def _scheduled(
    plan: Plan, phase: Phase, index: int, progress: Progress, now: datetime, what: str
) -> NotYet | None:
    """A wait, when the schedule of the phase's step ``index`` does not let it start now."""
    found = opening(step_schedule(plan, phase, index), progress.began_at, now)
    return NotYet(found.at, what, found.why) if found.at > now else None


def _roll_back(plan: Plan, reason: str, first_bad_at: datetime | None = None, judged: bool = False) -> Finish:
    """Roll back; or, when the plan leaves that to a person (``rollback.automatic: false``), stop."""
    status = Status.ROLLED_BACK if plan.rollback.automatic else Status.STOPPED
    return Finish(status, reason, first_bad_at, judged)


def _touched(progress: Progress) -> set[str]:
    keys = set(progress.committed)
    if progress.window is not None:
        keys.add(progress.window.key)
    return keys


def _last_passed(plan: Plan, committed: frozenset[str]) -> str | None:
    """The latest passed step in the plan's order (phase, then index)."""
    phases = [phase.name for phase in plan.phases]

    def order(key: str) -> tuple[int, int]:
        phase, _, index = key.rpartition("/")
        return (phases.index(phase) if phase in phases else -1, int(index) if index.isdigit() else 0)

    return max(committed, key=order, default=None)


def _decision(progress: Progress, about: str, timeout: timedelta, now: datetime) -> Decision | None:
    """The decision on ``about``; a timed-out one once its deadline has passed unanswered."""
    decision = progress.decisions.get(about)
    if decision is not None:
        return decision
    asked = progress.asked.get(about)
    if asked is not None and now >= asked + timeout:
        return Decision(None, "nobody", asked + timeout)
    return None


def _ask(
    progress: Progress,
    about: str,
    question: str,
    timeout: timedelta,
    now: datetime,
    step: TrafficStep | None = None,
) -> Ask:
    asked = progress.asked.get(about)
    return Ask(about, question, (asked or now) + timeout, asked is None, step)


def _in_window(
    plan: Plan,
    progress: Progress,
    step: TrafficStep,
    window: Window,
    state: WindowState,
    now: datetime,
    flag_refresh: timedelta,
) -> Action:
    """The step's window under way: a verdict, a question, the next round, or a wait for it."""
    gates = {name: plan.gates[name] for name in window.gates}
    verdict = window_verdict(window, gates, state)
    where = f"{step.phase} {step.audience.describe()}"
    if verdict.outcome is not Outcome.RUNNING and step.key not in progress.outcomes:
        return Conclude(step, verdict, state)
    if verdict.outcome.aborts:
        return _roll_back(plan, f"{where}: {verdict.reason}", state.first_bad_at(), judged=True)
    if verdict.outcome is Outcome.INCONCLUSIVE:
        inconclusive = f"{where} inconclusive: {verdict.reason}"
        if window.on_inconclusive == "rollback":
            return _roll_back(plan, inconclusive, state.first_bad_at(), judged=True)
        about = inconclusive_key(step.key)
        decision = _decision(progress, about, window.decision_timeout, now)
        if decision is None:
            return _ask(progress, about, f"inconclusive {step.key}", window.decision_timeout, now, step)
        # An approved decision commits the step ("continued"), so only a rejection or silence is left.
        return _roll_back(plan, inconclusive, state.first_bad_at(), judged=decision.approved is not None)
    done = len(state.rounds)
    measure = Measure(step, gates, done + 1, window.measurements)
    due = due_at(window, state, settle_time(gates) + flag_refresh)
    return measure if due <= now else Wait(due, measure)


def settle_time(gates: Mapping[str, Gate]) -> timedelta:
    """How long after a step the built-in SLIs' ``rate()`` ranges cover the new audience alone.

    A reading taken sooner still averages in the previous audience (14 % at a 10 % step, from the
    25 % before it), so its verdict would be about the step before. A custom query's own range is
    its author's to know: its window's ``initial_delay`` says how long to wait.
    """
    # Only built-in SLIs and comparisons read rate(); your own query and data gates say what they read.
    return max(
        (g.rate_window for g in gates.values() if g.query is None and g.data is None), default=timedelta(0)
    )


def due_at(window: Window, state: WindowState, settle: timedelta = timedelta(0)) -> datetime:
    """When the window's next round is due: on its schedule, and never sooner than an interval after the last.

    The first round waits ``initial_delay`` or ``settle`` (see :func:`settle_time`), whichever is
    longer. A round taken late (a reconciler pass missed) does not make the next ones come in a
    burst: the window stretches instead, which observes more, never less.
    """
    done = len(state.rounds)
    scheduled = state.started_at + max(window.initial_delay, settle) + window.interval * done
    if not state.rounds:
        return scheduled
    return max(scheduled, state.rounds[-1].at + window.interval)


def window_verdict(window: Window, gates: Mapping[str, Gate], state: WindowState) -> Verdict:
    """The window's verdict so far, by :mod:`rollout.analysis.gates`' rules; RUNNING while rounds remain."""
    done = len(state.rounds)
    final = done >= window.measurements
    if not gates:
        return Verdict(Outcome.SUCCESSFUL if final else Outcome.RUNNING, "no gates")
    verdicts = {name: gate_verdict(gate, state.history(name), final=final) for name, gate in gates.items()}
    if not state.rounds:
        return Verdict(Outcome.RUNNING, "not measured yet")
    return worst(verdicts)


# What was done or seen, folded in.


def current_audience(plan: Plan, progress: Progress) -> Audience:
    """Whom the rollout admits now: the audience of the last step it set."""
    audience = current = Audience()
    touched = _touched(progress)
    for phase in plan.phases:
        for step in phase_steps(phase, audience, progress.pilots.get(phase.name, ())):
            audience = step.audience
            if step.key in touched:
                current = audience
    return current


def observed_checks(progress: Progress, failed: tuple[str, ...]) -> Progress:
    """The data checks ran; ``failed`` names those that did not pass."""
    return replace(progress, checked=True, failed_checks=failed)


def observed_backup(progress: Progress) -> Progress:
    """The pre-rollout backup is taken and verified."""
    return replace(progress, backed_up=True)


def observed_question(progress: Progress, about: str, at: datetime) -> Progress:
    """The question on ``about`` was asked at ``at`` (the first time counts)."""
    if about in progress.asked:
        return progress
    return replace(progress, asked={**progress.asked, about: at})


def observed_decision(progress: Progress, about: str, decision: Decision) -> Progress:
    """A decision on ``about``; an inconclusive window approved to go on commits its step."""
    decided = replace(progress, decisions={**progress.decisions, about: decision})
    step = about.removeprefix("inconclusive:")
    if about != step and decision.approved:
        return replace(decided, outcomes={**decided.outcomes, step: "continued"})
    return decided


def observed_companions(progress: Progress, phase: str) -> Progress:
    """The phase's companion flags are set."""
    return replace(progress, companions=progress.companions | {phase})


def observed_pilots(progress: Progress, phase: str, stores: tuple[str, ...]) -> Progress:
    """The phase's pilot stores are chosen (and kept)."""
    return replace(progress, pilots={**progress.pilots, phase: stores})


def observed_step(progress: Progress, step: TrafficStep, at: datetime) -> Progress:
    """The step's audience was set and read back at ``at``: its window starts, or it is passed."""
    outcomes = {key: outcome for key, outcome in progress.outcomes.items() if key != step.key}
    if step.window is None:
        return replace(progress, outcomes={**outcomes, step.key: "set"}, window=None, moved=True)
    return replace(progress, outcomes=outcomes, window=WindowState(step.key, at), moved=True)


def observed_round(progress: Progress, step: TrafficStep, taken: Round) -> Progress:
    """A round of the step's window was measured."""
    state = progress.window
    assert state is not None and state.key == step.key
    return replace(progress, window=replace(state, rounds=(*state.rounds, taken)))


def observed_conclusion(progress: Progress, step: TrafficStep, verdict: Verdict) -> Progress:
    """The step's window verdict was recorded; a successful one passes the step."""
    return replace(progress, outcomes={**progress.outcomes, step.key: verdict.outcome.value})


@dataclass(frozen=True)
class Parked:
    """A rollout waiting with no process held: what for, until when, and how its run is woken."""

    since: datetime
    until: datetime | None
    """When the next thing is due (a round, a deadline); None for a decision with no deadline."""
    next: str
    """What happens then, for people: ``round 3 of 60 of ramp/1``, ``decision on approval:pilot``."""
    about: str
    """The window's step key, or the question's key."""
    key: str
    """The suspension's key in Prefect: resuming with it hands the run its decision."""
    status: Status
    """Where the rollout was when it parked (observing, awaiting-approval), and goes back to."""

    @property
    def for_decision(self) -> bool:
        """Whether it waits for a person rather than for a window's rounds."""
        return self.status is Status.AWAITING_APPROVAL
