"""The streaming detector's reported bounds, within the range the series has covered."""

from __future__ import annotations

from shared.engine.likelihood import TailWindow

__all__ = ["bounded"]


def bounded(
    covered: TailWindow,
    expected: float,
    upper: float,
    lower: float,
    typical_up: float,
    typical_down: float,
) -> tuple[float, float, float]:
    """The reported expectation and margins, within the range the series has covered.

    The judgement uses the model's own prediction; what is reported stays believable (the
    README's "Bounds"): the upper bound reaches no further above the highest recent reading
    (of ``covered``, the detector's window of recent known readings) than the typical margin
    on that side, the lower bound likewise below the lowest, and a series with no negative
    reading in its recent range gets no negative lower bound. The expectation is kept
    between the bounds.

    Returns:
        The expected value, the upper margin and the lower margin to report.
    """
    if not len(covered):
        return expected, upper, lower
    low, high = covered.lowest(), covered.highest()
    top = min(expected + upper, high + typical_up)
    bottom = max(expected - lower, low - typical_down)
    if low >= 0.0:
        bottom = max(bottom, 0.0)
    if bottom > top:  # the model's band lies wholly outside the covered range
        bottom = top = min(max(expected, low), high)
    shown = min(max(expected, bottom), top)
    return shown, top - shown, shown - bottom
