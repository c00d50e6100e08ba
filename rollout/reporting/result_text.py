"""Plain-text tables of what a rollout did."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pandas as pd

from rollout.analysis.check_result import CheckResult
from rollout.analysis.gates import value_text
from rollout.redact import redact


def result_table(result: Any) -> pd.DataFrame:
    """One row per traffic step: phase, traffic, gate values and the decision."""
    rows = [
        {
            "phase": step.phase,
            "traffic": step.audience,
            "gate values": "; ".join(f"{k} {value_text(v)}" for k, v in step.values.items()) or step.reason,
            "decision": step.outcome,
        }
        for step in result.steps
    ]
    return pd.DataFrame(rows, columns=["phase", "traffic", "gate values", "decision"])


def checks_table(results: Sequence[CheckResult]) -> pd.DataFrame:
    """One row per check: name, result, counts, detail and sample ids."""
    rows = [
        {
            "check": r.name,
            "result": "pass" if r.passed else "FAIL",
            "failing": r.failing,
            "checked": "" if r.checked is None else r.checked,
            "detail": r.detail,
            "samples": ", ".join(r.samples),
        }
        for r in results
    ]
    return pd.DataFrame(rows, columns=["check", "result", "failing", "checked", "detail", "samples"])


def render_result(result: Any) -> str:
    """The data checks, the backup, the steps as a table, and a summary."""
    lines = []
    if result.checks:
        lines += ["data checks:", checks_table(result.checks).to_string(index=False), ""]
    if result.backup:
        manifest = result.backup.manifest
        lines += [
            f"backup before any change: {result.backup.uri}",
            f"  manifest: {manifest.documents} documents in {len(manifest.collections)} collections, "
            f"archive {manifest.archive.bytes} bytes, sha256 {manifest.archive.sha256[:16]}…, verified",
            "",
        ]
    if result.steps:
        lines += [result_table(result).to_string(index=False), ""]
    lines += [f"decision: {d}" for d in result.decisions]
    if result.status == "dry_run":
        lines.append(f"plan {result.plan}: dry run, nothing was changed; the steps above would run")
    elif result.status == "blocked":
        failed = ", ".join(c.name for c in result.checks if not c.passed)
        lines.append(f"plan {result.plan}: blocked by failing data checks ({failed}); nothing was changed")
    elif result.status == "promoted":
        lines.append(f"plan {result.plan}: promoted, final audience {result.final_audience}")
    else:
        lines.append(f"plan {result.plan}: {result.status.replace('_', ' ')}")
    if result.rollback is not None:
        for step in result.rollback.steps:
            lines.append(f"  rollback {step.name}: {'ok' if step.ok else 'FAILED'} ({step.detail})")
        lines.append(f"  reason: {result.rollback.reason}")
        if result.rollback.report:
            lines.append(f"  report: {result.rollback.report}")
        if result.time_to_safety is not None:
            lines.append(
                f"  time to safety: {result.time_to_safety:.1f} s"
                " from the first failing sample to the flag at 0"
            )
    return redact("\n".join(lines))


def result_json(result: Any) -> str:
    """The result as JSON: checks, backup, steps, decisions, and each rollback step with its outcome."""
    from pydantic import TypeAdapter

    data: dict[str, Any] = TypeAdapter(type(result)).dump_python(result, mode="json")
    data["time_to_safety_seconds"] = result.time_to_safety
    if result.backup is not None:
        data["backup"] = {"uri": result.backup.uri, "manifest": data["backup"]["manifest"]}
    if result.rollback is not None:
        data["rollback"]["ok"] = result.rollback.ok
    return redact(json.dumps(data, indent=2))
