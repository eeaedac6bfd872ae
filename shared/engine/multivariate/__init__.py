"""The embedded multivariate anomaly engine: joint normal behaviour of 2 to 300 meters.

Pure numpy (no torch, no storage, no clock, nothing from the rest of the app): names,
timestamps and a value matrix in (any :class:`AlignedData`, such as the app's aligned
``Dataset`` or the engine's own :class:`Frame`), one :class:`MultivariatePoint` per timestamp
out, with the v1.1 fields (``isAnomaly``, ``severity``, ``score``, ``interpretation`` with
``contributionScore`` and ``correlationChanges``).

How it works
------------
Each variable is scaled robustly (median and IQR, or the standard deviation for meters that read
one value most of the time, such as a kitchen sub-meter at 0 Wh). Two linear models of normal
behaviour are learned in closed form from Gram matrices, so training is one pass over the data
plus small solves (no epochs):

* **temporal** (a ridge vector autoregression): every variable at ``t`` predicted from all
  variables at ``t-1 .. t-lags``. Its residual says *which meter moved unexpectedly*: a kitchen
  that jumps from 1 to 34 Wh while nothing announced it.
* **cross-sectional** (a shrunk Gaussian graphical model): every variable predicted from the
  *current* values of all the others, read off one precision matrix. Its residual says *which
  meter no longer agrees with the others*, and stays high for as long as a relationship is
  broken (a voltage sag without any load, a sub-meter that stops following the total).

Residuals are measured out of sample (contiguous k-fold cross-fitting: no row is judged by a
model fitted to it) and training is robust to anomalies in its window: the highest-scoring rows
(``trim_fraction``) are left out of a second fit. Each residual is divided by its recent scale
(the RMS over the previous ``sliding_window`` rows, shrunk towards the training RMS with three
windows' weight), so that a meter in a busy spell is judged against that spell and a jump after
a long quiet stands out, and floored at half the meter's quantisation step (integer meters
flickering between 0 and 1 Wh are not anomalies).

Every standardised residual is then turned into a *surprise*, ``-log p`` of a residual at least
that large, read off that variable's own training distribution (quantile knots down to 1 %,
an exponential tail beyond, fitted on the median excess so that anomalies in training do not
flatten it). Calibrating each meter on itself puts a bursty sub-meter and a smooth voltage on
one scale: a burst is only as surprising as bursts were in training. A third kind of evidence
favours deviations that last: each variable's temporal residual on a *slow* scale (the same
rule as the recent scale, over ``slow_windows`` = 20 sliding windows: it stays at the training
scale through a fault of a few windows, which the recent scale would absorb, and widens after
very large residuals or drift over many windows), averaged over the last ``persistence`` rows
and calibrated the same way; the noise of a mean shrinks with the rows it spans, so a
sustained offset stands out where its single points do not.

Two judges read this evidence (the surprise beyond the 5 % level, summed over variables and
kinds: a soft-thresholded Fisher combination):

* the **point judge** reads each row's evidence; its threshold is the score that
  ``alarm_rate`` of the training rows exceed, read at the 95th percentile of the cross-fitted
  training scores and extrapolated along their exponential tail (so anomalies at the very top
  of the training window do not lift it over themselves);
* the **sustained judge** reads the evidence averaged over the last ``smoothing`` rows, with
  its own threshold at ``sustained_alarm_rate`` of the training rows (lower: a sustained false
  alarm lasts), mapped onto the point judge's scale.

The point's ``score`` is the larger of the two; it is an anomaly above the point threshold.
``severity`` is 0 below the threshold and ``1 - threshold / score`` above it.

``contributionScore`` apportions the score among the variables (the shares sum to 1): the
temporal part by each variable's surprise, the cross-sectional part by each variable's squared
standardised residual, which under the Gaussian model is how much of the broken relationship
goes away when that one variable is left out, so the odd one out gets it (a broken pair has
equal calibrated surprise on both sides). Surprise beyond a residual seen once in training
counts only logarithmically here: the extrapolated tail is not trusted to rank variables.
``changed_variables`` lists, for an anomaly's top contributors, the variables whose correlation
with them over the last ``sliding_window`` points departs from training by at least
``correlation_change``.

Warm-up and gaps
----------------
Every row of the dataset given to :meth:`MultivariateModel.detect` is judged, using only that
row and the rows before it (so ``detect_last`` on a stream gives what ``detect`` gave). The
temporal model needs the ``lags`` rows before a point; at the first row of a dataset, and after
a gap in the timestamps (a missing grid slot), the missing lags are taken as the first
available row, so the temporal part cannot see a jump there. The recent scale and the
correlation window use the up to ``sliding_window`` rows before the point that are there
(with fewer, the training scale weighs more); the sustained evidence and the sustained judge
count rows before the first as no evidence. To judge a window fully, pass at least
:attr:`MultivariateModel.history_rows` rows of history before it and give ``start``: rows
before ``start`` are context, not results.

Modules: :mod:`.config` (settings, results, the input shape), :mod:`.linear` (the two models
and their cross-fitting), :mod:`.scoring` (evidence, surprise, thresholds), :mod:`.model`
(:class:`MultivariateModel`), :mod:`.serialisation` (the model file).

Models persist as a zip of ``config.json`` and ``.npy`` arrays (never pickle), byte-for-byte
identical for the same model.
"""

from __future__ import annotations

from shared.engine.multivariate.config import (
    SLIDING_WINDOW_RANGE,
    AlignedData,
    Contributor,
    Frame,
    MultivariateConfig,
    MultivariatePoint,
    MultivariateScores,
    TrainingDiagnostics,
)
from shared.engine.multivariate.linear import MIN_RESIDUAL_SCALE
from shared.engine.multivariate.model import MultivariateModel
from shared.engine.multivariate.serialisation import FORMAT_VERSION

__all__ = [
    "FORMAT_VERSION",
    "MIN_RESIDUAL_SCALE",
    "SLIDING_WINDOW_RANGE",
    "AlignedData",
    "Contributor",
    "Frame",
    "MultivariateConfig",
    "MultivariateModel",
    "MultivariatePoint",
    "MultivariateScores",
    "TrainingDiagnostics",
]
