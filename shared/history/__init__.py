"""History by series: compacted per device and day, read by range, judged on a schedule.

* :mod:`shared.history.daily`: the compacted blob of one device and day (all metrics, ranked
  points, deterministic bytes).
* :mod:`shared.history.journal`: append-only journals read with a cursor (which raw batches are
  new; which series got readings).
* :mod:`shared.history.compaction`: the timer job folding new raw batches into history, and
  :func:`~shared.history.compaction.record_raw_batches`, the hook that records a raw batch.
* :mod:`shared.history.reader`: :func:`~shared.history.reader.read_history`, one series over a
  range at one request per day (plus the not-yet-compacted tail).
"""

from __future__ import annotations

from shared.history.compaction import compact, record_raw_batches
from shared.history.reader import SeriesHistory, read_device_history, read_history

__all__ = ["SeriesHistory", "compact", "read_device_history", "read_history", "record_raw_batches"]
