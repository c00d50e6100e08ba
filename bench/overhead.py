"""Orchestration overhead per traffic step: what running a step as Prefect tasks costs beyond the work itself.

Starts the sandbox (SecantusDB, moto, the service, Prometheus), then in one run:

- flow_5 / flow_10: the rollout flow over a ramp of 5 and of 10 steps whose windows take
  one immediate measurement (``count: 1``, ``interval: 1ms``, no gates); the marginal cost
  of a step is ``(flow_10 - flow_5) / 5``, which leaves out the run's fixed costs (start,
  lease, events);
- direct: the same per-step work (the two status moves with their lease renewal, flag write,
  the one measurement, the step record and its artifacts) called as plain functions inside
  one flow run, ``--steps`` times.

``overhead_per_step_s`` is the marginal flow cost minus the direct cost. Goal: at most 0.3 s.

Usage: ``python bench/overhead.py [--steps 10]``. The last line printed is
``overhead_per_step_s=X flow_step_s=Y direct_step_s=Z``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from cli.common import prefect_defaults  # noqa: E402

prefect_defaults()
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

from prefect import flow  # noqa: E402

from flows.rollout_flow import run_rollout  # noqa: E402
from rollout.audience.steps import Audience  # noqa: E402
from rollout.lifecycle.progression import Progress  # noqa: E402
from rollout.lifecycle.statuses import Status  # noqa: E402
from rollout.plan import load_plan  # noqa: E402
from rollout.sandbox.stack import Sandbox, SandboxOptions  # noqa: E402
from tasks.lease import claim_plan, enter, save_progress  # noqa: E402
from tasks.observe import measure_round  # noqa: E402
from tasks.record import StepRecordEntry, now, record_step  # noqa: E402
from tasks.traffic import set_audience  # noqa: E402

WINDOW = {"count": 1, "interval": "1ms"}


def write_plan(folder: Path, name: str, steps: int) -> Path:
    """A plan of ``steps`` ramp steps with one-measurement windows, no backup, no checks."""
    plan = {
        "name": name,
        "release": {"version": f"bench-{time.time_ns()}"},
        "flag": "BENCH_FLAG",
        "backup": {"enabled": False, "waived_by": "orchestration benchmark"},
        "phases": [
            {
                "name": "ramp",
                "ramp": [round(100 * (i + 1) / steps, 2) for i in range(steps)],
                "window": WINDOW,
            }
        ],
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(plan))
    return path


@flow(name="bench-direct-steps")
def direct_steps(plan_path: str, targets: Any, steps: int) -> float:
    """The per-step work as plain calls in one run; returns seconds per step."""
    plan = load_plan(plan_path)
    run_id = f"direct-{time.time_ns()}"
    claim_plan.fn(targets, plan, run_id, plan.release.version)
    window = plan.phases[0].window
    assert window is not None
    start = time.perf_counter()
    for i in range(steps):
        audience = Audience(percentage=100 * (i + 1) / steps)
        enter.fn(targets, plan, run_id, Status.STEPPING, f"step {i}")
        set_audience.fn(targets, plan.name, plan.flag, audience)
        save_progress.fn(targets, plan, run_id, Progress())
        enter.fn(targets, plan, run_id, Status.OBSERVING, f"window {i}")
        measure_round.fn(targets, {}, 1, 1)
        save_progress.fn(targets, plan, run_id, Progress())
        entry = StepRecordEntry(
            f"ramp/{i}",
            "ramp",
            f"{audience.percentage:g}%",
            audience.describe(),
            audience.percentage,
            "successful",
            "no gates",
            {},
            now(),
            {},
        )
        record_step(targets, plan.name, entry)
        save_progress.fn(targets, plan, run_id, Progress())
    return (time.perf_counter() - start) / steps


def timed_rollout(plan: Path, targets: Any) -> float:
    """Seconds for one whole rollout of ``plan``."""
    start = time.perf_counter()
    result = run_rollout(plan_path=str(plan), targets=targets)
    assert result.status == "promoted", result
    return time.perf_counter() - start


def main() -> None:
    """Start the sandbox, time the flows and the direct work, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    small, large = args.steps // 2, args.steps
    with (
        tempfile.TemporaryDirectory() as folder,
        Sandbox(SandboxOptions(prometheus="required", load_rate=20)) as info,
    ):
        targets = info.targets()
        work = Path(folder)
        timed_rollout(write_plan(work, "bench-warm-up", 2), targets)  # the server's start, once
        marginal, direct = [], []
        for round_ in range(1, args.rounds + 1):
            t_small = timed_rollout(write_plan(work, f"bench-small-{round_}", small), targets)
            t_large = timed_rollout(write_plan(work, f"bench-large-{round_}", large), targets)
            per_step = (t_large - t_small) / (large - small)
            plain = direct_steps(str(write_plan(work, f"bench-direct-{round_}", large)), targets, large)
            marginal.append(per_step)
            direct.append(plain)
            print(
                f"round {round_}: {small} steps {t_small:.2f} s, {large} steps {t_large:.2f} s "
                f"-> {per_step:.3f} s a step; the same work called directly {plain:.3f} s a step"
            )
    flow_step, direct_step = statistics.median(marginal), statistics.median(direct)
    overhead = flow_step - direct_step
    print(f"goal overhead <= 0.3 s a step: {'met' if overhead <= 0.3 else 'missed'}")
    print(f"overhead_per_step_s={overhead:.3f} flow_step_s={flow_step:.3f} direct_step_s={direct_step:.3f}")


if __name__ == "__main__":
    main()
