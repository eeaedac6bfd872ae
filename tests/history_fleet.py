"""A small archive for the history tests: meters with a daily cycle, five-minute readings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from shared.history.compaction import compact, record_raw_batches
from shared.settings import Settings
from shared.storage.client import BlobStore
from tests.history_doubles import put_raw_batch

STEP = 300.0  # five-minute meters


def daily_cycle(epochs: np.ndarray, device: int) -> np.ndarray:
    rng = np.random.default_rng(device)
    phase = 2 * np.pi * (epochs % 86_400) / 86_400
    return 2.0 + np.sin(phase) + 0.02 * rng.standard_normal(epochs.size) + device


def write_archive(
    store: BlobStore,
    settings: Settings,
    end: datetime,
    *,
    devices: int = 3,
    hours: int = 48,
    spikes: dict[tuple[str, float], float] | None = None,
    batch_hours: int = 1,
) -> list[str]:
    """Hourly raw batches of ``devices`` meters (``power``) up to ``end``; returns their names.

    ``spikes[(device, epoch)] = value`` replaces readings. Every batch is recorded in the raw
    journal at ``end`` (as the raw blob trigger does when each arrives).
    """
    last = end.timestamp() // STEP * STEP
    epochs = last - STEP * np.arange(hours * 3600 // STEP)[::-1]
    names = []
    per_batch = int(batch_hours * 3600 // STEP)
    for b, start in enumerate(range(0, epochs.size, per_batch)):
        chunk = epochs[start : start + per_batch]
        rows = {}
        for d in range(devices):
            values = daily_cycle(chunk, d)
            for i, t in enumerate(chunk):
                values[i] = (spikes or {}).get((f"m{d}", float(t)), values[i])
            rows[(f"m{d}", "power")] = list(zip(chunk.tolist(), values.tolist(), strict=True))
        enqueued = datetime.fromtimestamp(float(chunk[-1]) + 1, tz=UTC)
        names.append(
            put_raw_batch(
                store,
                settings,
                "0",
                b * 1000,
                b * 1000 + 999,
                f"{enqueued:%Y-%m-%dT%H:%M:%SZ}",
                rows,
            )
        )
    record_raw_batches(store, settings, names, end)
    return names


def compacted_archive(
    store: BlobStore, settings: Settings, end: datetime, **kwargs: object
) -> list[str]:
    """:func:`write_archive`, then one compaction run a minute after ``end``."""
    names = write_archive(store, settings, end, **kwargs)  # type: ignore[arg-type]
    compact(store, settings, end + timedelta(minutes=1))
    return names
