"""The picture of an evaluation: the series, the label windows, hits, misses and false alarms.

matplotlib is imported inside the function (non-interactive Agg backend), so importing this
module costs nothing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from shared.demo.plots import pyplot, save_figure
from shared.evaluation.files import FileEvaluation


def plot_evaluation(path: Path, item: FileEvaluation, title: str | None = None) -> Path:
    """Draw one output against its labels and write it as a PNG.

    The line is the output's ``value`` column (its score when it has none). Label windows are
    shaded: green when a flag falls inside (a hit, the first such flag ringed), red when none
    does (a miss); flags outside every window are false alarms (red crosses).

    Args:
        path: PNG file to write (its folder is created).
        item: The scored file.
        title: Chart title (default: the file's name and its figures).

    Returns:
        ``path``.
    """
    plt = pyplot()
    output = item.output
    moments = np.round(output.timestamps * 1000.0).astype(np.int64).astype("datetime64[ms]")
    line = output.values if output.values is not None else output.scores
    label = "value" if output.values is not None else "score"
    flags = output.flags
    fig, ax = plt.subplots(figsize=(14, 4.2), dpi=110)
    hits = misses = 0
    for start, end in item.windows:
        inside = np.flatnonzero(flags[start : end + 1])
        hit = inside.size > 0
        hits += hit
        misses += not hit
        ax.axvspan(
            moments[start],
            moments[end],
            color="#0f9d58" if hit else "#db4437",
            alpha=0.18,
            lw=0,
        )
        if hit:
            first = start + int(inside[0])
            ax.scatter(
                moments[first], line[first], s=90, facecolors="none", edgecolors="#0f9d58", lw=1.5
            )
    ax.plot(moments, line, color="#202124", lw=0.7, label=label)
    labelled = item.truth
    in_label = np.flatnonzero(flags & labelled)
    outside = np.flatnonzero(flags & ~labelled)
    ax.scatter(moments[in_label], line[in_label], color="#0f9d58", s=12, zorder=5, label="hit")
    ax.scatter(
        moments[outside],
        line[outside],
        color="#db4437",
        marker="x",
        s=22,
        zorder=5,
        label=f"false alarm ({outside.size})",
    )
    ax.plot([], [], color="#0f9d58", alpha=0.4, lw=6, label=f"window found ({hits})")
    ax.plot([], [], color="#db4437", alpha=0.4, lw=6, label=f"window missed ({misses})")
    counts = item.counts
    ax.set_title(
        title
        or f"{output.name}: F1 {counts.f1:.2f}, false alarms {counts.false_alarm_rate:.1f} %, "
        f"missed {counts.missed_alarm_rate:.1f} %",
        loc="left",
        fontsize=10,
    )
    ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), ncols=5, fontsize=8, frameon=False)
    ax.margins(x=0)
    return save_figure(plt, fig, path)
