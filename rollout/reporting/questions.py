"""What a person is shown when the rollout asks for a decision: what is at stake, and what follows."""

from __future__ import annotations

from rollout.analysis.gates import limit_text, value_text
from rollout.audience.steps import phase_steps
from rollout.lifecycle.progression import Ask, Progress, current_audience
from rollout.plan import Plan
from rollout.plan.model import Phase


def _first_step(phase: Phase, progress: Progress, plan: Plan) -> str:
    """Whom the phase's first step admits, for the approver (pilot stores named once chosen)."""
    chosen = progress.pilots.get(phase.name)
    if phase.pilot_stores is not None and chosen is None:
        return f"up to {phase.pilot_stores.limit} pilot stores picked by the phase's query, then its window"
    steps = phase_steps(phase, current_audience(plan, progress), chosen or ())
    return f"{steps[0].audience.describe()} first" if steps else "its companion flags only"


def gate_lines(plan: Plan, progress: Progress) -> list[str]:
    """The last round's readings as a Markdown table: gate, value, limit, verdict; none when unmeasured."""
    window = progress.window
    if window is None or not window.rounds:
        return []
    last = window.rounds[-1]
    lines = [
        f"Gates at the last measurement ({window.key}, {last.at:%Y-%m-%d %H:%M:%S} UTC):",
        "",
        "| gate | value | limit | verdict |",
        "|---|---|---|---|",
    ]
    for reading in last.readings:
        gate = plan.gates.get(reading.gate)
        limit = limit_text(gate) if gate is not None else ""
        verdict = reading.outcome.value + (f" ({reading.message})" if reading.message else "")
        lines.append(f"| {reading.gate} | {value_text(reading.value)} | {limit} | {verdict} |")
    return lines


def question_markdown(plan: Plan, progress: Progress, ask: Ask) -> str:
    """The Resume form's description: plan, release, traffic now and next, the gates, the deadline."""
    then = "traffic stays where it is (held)" if ask.on_timeout == "hold" else "the rollout is rolled back"
    if ask.phase is not None:
        title = f"### Approve phase `{ask.phase.name}` of `{plan.name}`?"
        on_approve = f"phase {ask.phase.name} starts, {_first_step(ask.phase, progress, plan)}"
    else:
        assert ask.step is not None
        where = f"{ask.step.phase} {ask.step.audience.describe()}"
        title = f"### The window of `{where}` in `{plan.name}` was inconclusive: carry on?"
        on_approve = "the step counts as passed and the rollout goes on to the next one"
    lines = [
        title,
        "",
        f"- **Release**: {plan.release.version}",
        f"- **Traffic now**: {current_audience(plan, progress).describe()}",
        f"- **Approve**: {on_approve}",
        "- **Reject**: the rollback undoes every step (traffic to 0, flags back, data as the plan says)",
        f"- **Deadline**: {ask.deadline:%Y-%m-%d %H:%M:%S} UTC; with no decision by then {then}",
        "",
    ]
    lines += gate_lines(plan, progress)
    checklist = ask.phase.approval.checklist if ask.phase is not None and ask.phase.approval else []
    if checklist:
        lines += ["", "To approve, tick every box below:", ""] + [f"- {item}" for item in checklist]
    return "\n".join(lines)
