"""Flow run names people can read in the runs list: the plan and its release, not ``silky-quoll``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from prefect.runtime import flow_run


def _plan_doc(parameters: dict[str, Any]) -> dict[str, Any]:
    """The plan's YAML as a mapping, read without validating it (the run does that); {} if unreadable."""
    try:
        text = str(parameters.get("plan_yaml") or "").strip()
        if not text:
            text = Path(str(parameters.get("plan_path") or "")).read_text(encoding="utf-8")
        doc = yaml.safe_load(text)
    except (OSError, yaml.YAMLError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _plan_and_release(parameters: dict[str, Any]) -> str:
    doc = _plan_doc(parameters)
    name = str(doc.get("name") or Path(str(parameters.get("plan_path") or "plan")).stem or "plan")
    release = doc.get("release")
    version = release.get("version") if isinstance(release, dict) else None
    return f"{name} {version}" if version else name


def rollout_run_name() -> str:
    """``unified-orders backend-v2026.11.21-1200`` (``... dry run`` for a dry run)."""
    parameters = dict(flow_run.parameters)
    return _plan_and_release(parameters) + (" dry run" if parameters.get("dry_run") else "")


def rollback_run_name() -> str:
    """``rollback unified-orders backend-v2026.11.21-1200``."""
    return f"rollback {_plan_and_release(dict(flow_run.parameters))}"
