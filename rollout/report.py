"""Plain-text tables of what a rollout did."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd


def _value(value: float | None) -> str:
    return "no data" if value is None or math.isnan(value) else f"{value:.4g}"


def result_table(result: Any) -> pd.DataFrame:
    """One row per traffic step: phase, step, audience, candidate share and gate values."""
    rows = []
    for step in result.steps:
        obs = step.observation
        values = "; ".join(f"{k} {_value(v)}" for k, v in obs.values.items()) if obs else ""
        rows.append(
            {
                "phase": step.phase,
                "step": step.step,
                "audience": step.audience,
                "candidate share": _value(obs.traffic_share) if obs else "",
                "gate values": values,
            }
        )
    return pd.DataFrame(rows)


def render_result(result: Any) -> str:
    """The result as a text table with a closing line."""
    table = result_table(result).to_string(index=False)
    return f"{table}\n\nplan {result.plan}: final audience {result.final_audience}"
