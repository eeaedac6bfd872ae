"""Pictures of detection results, as the tutorial's live graph showed them.

matplotlib is imported inside the functions (with the non-interactive Agg backend) so that
importing this module, or the function app, costs nothing.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def pyplot() -> ModuleType:
    """``matplotlib.pyplot`` on the Agg backend (imported on first use)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_univariate(
    path: Path,
    *,
    title: str,
    timestamps: np.ndarray,
    values: np.ndarray,
    expected: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    is_anomaly: np.ndarray,
    labelled: np.ndarray | None = None,
) -> Path:
    """Draw actual values, the expected band, flagged anomalies and (optionally) the labels.

    Args:
        path: PNG file to write.
        title: Chart title.
        timestamps: Epoch seconds.
        values: Actual values.
        expected: Expected values (NaN where none).
        lower: Lower bound of the band (``expected - lowerMargin``).
        upper: Upper bound of the band (``expected + upperMargin``).
        is_anomaly: Points the detector flagged.
        labelled: Ground-truth anomalies, drawn as shaded spans.

    Returns:
        ``path``.
    """
    plt = pyplot()
    moments = timestamps.astype("datetime64[s]")
    fig, ax = plt.subplots(figsize=(14, 4.2), dpi=110)
    if labelled is not None and labelled.any():
        for start, end in runs(labelled):
            ax.axvspan(moments[start], moments[end], color="#f4b400", alpha=0.25, lw=0)
        ax.plot([], [], color="#f4b400", alpha=0.5, lw=6, label="labelled anomaly")
    ax.fill_between(moments, lower, upper, color="#4285f4", alpha=0.18, lw=0, label="expected band")
    ax.plot(moments, expected, color="#4285f4", lw=0.8, alpha=0.8, label="expected")
    ax.plot(moments, values, color="#202124", lw=0.7, label="actual")
    flagged = np.flatnonzero(is_anomaly)
    ax.scatter(moments[flagged], values[flagged], color="#db4437", s=18, zorder=5, label="anomaly")
    ax.set_title(title)
    ax.legend(loc="upper left", ncols=5, fontsize=8, frameon=False)
    ax.margins(x=0)
    return save_figure(plt, fig, path)


def save_figure(plt: ModuleType, fig: Figure, path: Path) -> Path:
    """Lay out dated axes, write the figure to ``path`` (folders made) and close it."""
    fig.autofmt_xdate()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Inclusive index ranges of consecutive True values."""
    edges = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1) - 1
    return list(zip(starts.tolist(), ends.tolist(), strict=True))
