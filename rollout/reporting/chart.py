"""A PNG of the gated metrics over a rollout, for the incident report."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers and workers

import matplotlib.dates as mdates
import matplotlib.pyplot as plt

Points = Sequence[tuple[float, float]]


def metrics_chart(
    series: Mapping[str, Points],
    limits: Mapping[str, float],
    marks: Sequence[tuple[datetime, str]],
    path: Path,
    title: str,
) -> Path:
    """One panel per metric (its threshold dashed), events as vertical lines; written to ``path``."""
    names = list(series) or ["no data"]
    figure, axes = plt.subplots(len(names), 1, figsize=(9, 2.4 * len(names)), sharex=True, squeeze=False)
    for axis, name in zip(axes[:, 0], names, strict=True):
        points = series.get(name, [])
        if points:
            axis.plot([datetime.fromtimestamp(t, UTC) for t, _ in points], [v for _, v in points], lw=1.5)
        else:
            axis.text(0.5, 0.5, "no data", transform=axis.transAxes, ha="center", va="center", color="grey")
        if name in limits:
            axis.axhline(limits[name], color="tab:red", ls="--", lw=1, label=f"limit {limits[name]:g}")
            axis.legend(loc="best", fontsize=8)
        for at, label in marks:
            axis.axvline(at, color="grey", lw=0.8, alpha=0.7)
            axis.annotate(
                label, (at, 1), xycoords=("data", "axes fraction"), fontsize=7, rotation=90, va="top"
            )
        axis.set_ylabel(name, fontsize=8)
    axes[-1, 0].xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S"))  # type: ignore[no-untyped-call]
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
