"""Pictures of multivariate detection: the tutorial's root-cause view.

One figure, top to bottom: a line chart per variable with the anomalous timestamps shaded, the
severity line, and a stacked bar per anomaly of its contribution scores (which meters caused
it). matplotlib is imported inside the function with the non-interactive Agg backend, so
importing this module costs nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from shared.demo.plots import pyplot, runs, save_figure
from shared.multivariate.datasets import Dataset
from shared.multivariate.documents import DetectionResult, PointValue
from shared.timefmt import plot_moments

#: At most this many variable panels; the variables contributing most are drawn.
MAX_VARIABLE_PANELS = 12
_PALETTE = (
    "#4285f4",
    "#db4437",
    "#f4b400",
    "#0f9d58",
    "#ab47bc",
    "#00acc1",
    "#ff7043",
    "#9e9d24",
    "#5c6bc0",
    "#f06292",
    "#00897b",
    "#8d6e63",
)


def plot_multivariate(
    path: Path, window: Dataset, result: DetectionResult, *, title: str = ""
) -> Path:
    """Draw the variables with anomalies shaded, the severity, and the contribution scores.

    Args:
        path: PNG file to write.
        window: The aligned data of the detection window (the values drawn).
        result: The v1.1 batch result of that window (``results[].value``).
        title: Figure title.

    Returns:
        ``path``.
    """
    plt = pyplot()
    stamps = window.timestamps.astype("datetime64[s]")
    by_time = {item["timestamp"]: item["value"] for item in result["results"]}
    keys = [str(np.datetime_as_string(stamp, unit="s")) + "Z" for stamp in stamps]
    verdicts = [by_time.get(key) for key in keys]
    flagged = np.array([v is not None and bool(v["isAnomaly"]) for v in verdicts], dtype=bool)
    severity = np.array([0.0 if v is None else float(v["severity"]) for v in verdicts])
    shares = _contributions(verdicts, window.variables)
    panels = _variables_to_draw(window.variables, shares)
    colours = {name: _PALETTE[i % len(_PALETTE)] for i, name in enumerate(window.variables)}
    moments = plot_moments(stamps)
    rows = len(panels) + 2
    fig, axes = plt.subplots(
        rows,
        1,
        sharex=True,
        figsize=(14, 1.5 * len(panels) + 4.0),
        dpi=100,
        gridspec_kw={"height_ratios": [1.0] * len(panels) + [0.8, 1.4]},
    )
    spans = runs(flagged)
    step = np.timedelta64(max(int(window.granularity_seconds), 1), "s")
    for ax, name in zip(axes[: len(panels)], panels, strict=True):
        column = window.values[:, window.variables.index(name)]
        for start, end in spans:
            ax.axvspan(
                plot_moments(stamps[start] - step / 2).item(),
                plot_moments(stamps[end] + step / 2).item(),
                color="#db4437",
                alpha=0.18,
                lw=0,
            )
        ax.plot(moments, column, color=colours[name], lw=0.8)
        ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=9)
        ax.tick_params(labelsize=8)
        ax.margins(x=0)
    severity_ax = axes[len(panels)]
    severity_ax.plot(moments, severity, color="#202124", lw=0.8)
    severity_ax.fill_between(moments, 0.0, severity, color="#db4437", alpha=0.3, lw=0)
    severity_ax.set_ylim(0.0, 1.0)
    severity_ax.set_ylabel("severity", rotation=0, ha="right", va="center", fontsize=9)
    severity_ax.tick_params(labelsize=8)
    bars_ax = axes[-1]
    anomalous = np.flatnonzero(flagged)
    width = max(int(window.granularity_seconds), 1) / 86400.0 * 0.9
    if anomalous.size:
        bottom = np.zeros(anomalous.size)
        positions = [moments[i] for i in anomalous]
        for j, name in enumerate(window.variables):
            heights = shares[anomalous, j]
            if not heights.any():
                continue
            bars_ax.bar(
                positions, heights, width=width, bottom=bottom, color=colours[name], label=name
            )
            bottom += heights
        bars_ax.legend(loc="upper left", ncols=min(6, len(window.variables)), fontsize=8)
    else:
        bars_ax.text(0.5, 0.5, "no anomalies", transform=bars_ax.transAxes, ha="center")
    bars_ax.set_ylim(0.0, 1.05)
    bars_ax.set_ylabel("contribution", rotation=0, ha="right", va="center", fontsize=9)
    bars_ax.tick_params(labelsize=8)
    omitted = len(window.variables) - len(panels)
    heading = title or "Multivariate anomalies"
    heading += f": {int(flagged.sum())} of {flagged.size} timestamps flagged"
    if omitted:
        heading += f" ({omitted} quieter variable(s) not drawn)"
    axes[0].set_title(heading)
    return save_figure(plt, fig, path)


def _contributions(verdicts: Sequence[PointValue | None], variables: Sequence[str]) -> np.ndarray:
    """Contribution score per timestamp and variable (0 where none was given)."""
    column = {name: j for j, name in enumerate(variables)}
    shares = np.zeros((len(verdicts), len(variables)))
    for i, verdict in enumerate(verdicts):
        for contributor in [] if verdict is None else verdict["interpretation"]:
            j = column.get(contributor["variable"])
            if j is not None:
                shares[i, j] = float(contributor["contributionScore"])
    return shares


def _variables_to_draw(variables: Sequence[str], shares: np.ndarray) -> list[str]:
    """All variables when few; otherwise those with the most contribution, in their order."""
    if len(variables) <= MAX_VARIABLE_PANELS:
        return list(variables)
    weight = shares.sum(axis=0)
    keep = set(np.argsort(-weight, kind="stable")[:MAX_VARIABLE_PANELS].tolist())
    return [name for j, name in enumerate(variables) if j in keep]
