"""Where a run's plan comes from: a file, or YAML pasted into the UI's parameter form.

A pasted plan is validated and then kept as a file named by its content, so that
everything after the run's start (the rollback, the events that trigger one, the
report) can name it by path like any other plan.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import yaml

from rollout.errors import PlanInvalid, Problem
from rollout.plan.extends import EXTENDS
from rollout.plan.loader import merged_plan_data, parse_yaml, plan_from_data

PLANS_DIR = "ROLLOUT_PLANS_DIR"
"""Environment variable naming where pasted plans are kept (default: ``~/.rollout/plans``)."""


def plans_dir() -> Path:
    """The directory pasted plans are kept in."""
    configured = os.environ.get(PLANS_DIR)
    return Path(configured) if configured else Path.home() / ".rollout" / "plans"


def keep_inline_plan(text: str) -> Path:
    """Validate ``text`` as a plan and keep it as ``<name>-<digest>.yaml``; returns the path.

    The same text always lands in the same file, so a retried run does not pile up copies. A
    pasted plan that ``extends`` a base (found from the working directory) is kept with the
    base merged in: the run goes on with what was validated, whatever happens to the base later.
    """
    data = parse_yaml(text)
    plan = plan_from_data(data, base_dir=Path.cwd())
    if isinstance(data, dict) and EXTENDS in data:
        text = yaml.safe_dump(
            merged_plan_data(data, base_dir=Path.cwd()), sort_keys=False, allow_unicode=True
        )
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    folder = plans_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{plan.name}-{digest}.yaml"
    if not path.exists():
        partial = path.with_suffix(".yaml.partial")
        partial.write_text(text, encoding="utf-8")
        partial.replace(path)
    return path


def plan_source(plan_path: str, plan_yaml: str) -> str:
    """The path of the plan to run: ``plan_yaml`` kept as a file when pasted, else ``plan_path``.

    A pasted plan wins over a path: a form whose deployment prefills ``plan_path`` sends that
    default again when the field is cleared, so a person who pastes a plan always means it.
    """
    path, text = plan_path.strip(), plan_yaml.strip()
    if text:
        return str(keep_inline_plan(plan_yaml))
    if not path:
        raise PlanInvalid(
            [
                Problem(
                    "plan_path", "no plan given: set plan_path to a plan file, or paste the plan as plan_yaml"
                )
            ]
        )
    return path
