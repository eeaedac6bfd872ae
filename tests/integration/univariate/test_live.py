"""Live detection per raw batch over Azurite: what is found, what it costs, what never changes.

The fleet is :class:`shared.demo.fleet.Fleet` (one reading a minute of two metrics per meter,
spikes at known minutes); raw batches are written with the one raw-batch writer.
"""

from __future__ import annotations

import gc
import json
from datetime import UTC, datetime

import numpy as np
import pytest

from shared.alerts import read_anomalies
from shared.errors import RawBatchError
from shared.settings import Settings
from shared.storage.client import REQUESTS, BlobRef, BlobStore
from shared.storage.names import live_dead_letter_name, live_result_name
from shared.telemetry.events import RawEvent
from shared.telemetry.ingest import prepare_batch
from shared.telemetry.rawbatch import RawBatch, SeriesBatch, read_raw_batch
from shared.timefmt import format_timestamp
from shared.univariate.live import (
    LiveState,
    judge_raw_batch,
    judge_raw_blob,
)
from tests.jsonview import json_blob
from tests.live_fleet import START, Fleet, minute_batches, raw_blob

SPIKES = {(2, "power", 130), (5, "voltage", 150), (7, "power", 165)}


def settings_for(app_env: dict[str, str], **extra: str) -> Settings:
    return Settings.from_env({**app_env, "LIVE_STATE_SHARDS": "4", **extra})


def expected_alerts(spikes: set[tuple[int, str, int]]) -> set[tuple[str, str, str]]:
    return {
        (Fleet.device(m), metric, format_timestamp(START + 60.0 * minute))
        for m, metric, minute in spikes
    }


def run(
    blobs: list[tuple[str, bytes]], store: BlobStore, settings: Settings, state: LiveState
) -> list[tuple[str, str, str, str]]:
    found = []
    for name, data in blobs:
        report = judge_raw_blob(name, data, store, settings, state)
        found += [(a.device_id, a.metric, a.timestamp, a.id) for a in report.alerts]
    return found


def stored(store: BlobStore, settings: Settings) -> dict[str, bytes]:
    container = settings.results_container
    return {
        name: store.get_bytes(BlobRef(container, name))
        for name in store.list_names(container)
        if name.startswith(("live/", "live-state/"))
    }


def test_fleet_spikes_are_the_alerts_at_constant_requests_per_batch(
    app_env: dict[str, str],
) -> None:
    settings = settings_for(app_env)
    store = BlobStore.from_settings(settings)
    fleet = Fleet(12, spikes=SPIKES)
    blobs = minute_batches(fleet, range(180))
    state = LiveState()
    found = run(blobs[:120], store, settings, state)
    per_batch = []
    for name, data in blobs[120:]:
        before = REQUESTS.count
        report = judge_raw_blob(name, data, store, settings, state)
        per_batch.append(REQUESTS.count - before)
        found += [(a.device_id, a.metric, a.timestamp, a.id) for a in report.alerts]
        assert report.points == 24 and report.series == 24
    # Exactly the injected spikes, each once.
    assert sorted((d, m, t) for d, m, t, _ in found) == sorted(expected_alerts(SPIKES))
    # Per batch: a conditional read and a write per shard head touched (4) and the result; the
    # three batches with an anomaly append it to the log (the first creates the hour's append
    # blob). Every LIVE_SNAPSHOT_POINTS (60) batches, each shard also writes its detectors'
    # snapshot, lists its snapshots and deletes the previous one (batch 179: 3 x 4 more).
    assert per_batch.count(2 * 4 + 1) == len(per_batch) - 4
    assert per_batch[179 - 120] == 2 * 4 + 1 + 3 * 4
    assert sorted(n for n in per_batch[:-1] if n > 9) == [10, 10, 11]
    # No detector was rebuilt from storage: the process cache held them all along.
    assert state.decoded == 0
    # A cold process rebuilds each once: per shard the head, then its snapshot, read once.
    cold = LiveState()
    before = REQUESTS.count
    report = judge_raw_blob(*minute_batches(fleet, range(180, 181))[0], store, settings, cold)
    assert (report.series, cold.decoded) == (24, 24)
    assert REQUESTS.count - before == 4 * 2 + 4 + 1
    logged = read_anomalies(store, START, settings=settings)
    assert {(a.device_id, a.metric, a.timestamp) for a in logged} == expected_alerts(SPIKES)


def test_redelivered_resplit_and_late_batches_change_nothing(app_env: dict[str, str]) -> None:
    settings = settings_for(app_env)
    store = BlobStore.from_settings(settings)
    fleet = Fleet(6, spikes={(1, "power", 100)})
    blobs = minute_batches(fleet, range(120))
    first = run(blobs, store, settings, LiveState())
    before = stored(store, settings)
    # Redelivered: every batch again, in reverse order, by a cold process.
    again = run(list(reversed(blobs)), store, settings, LiveState())
    assert stored(store, settings) == before
    assert {a[3] for a in again} == {a[3] for a in first}  # re-emitted with the same ids
    assert len(again) == len(first) == 1
    # Re-split: the same readings in 3-minute batches under other sequence ranges.
    resplit = []
    for start in range(0, 120, 3):
        span = range(start, start + 3)
        resplit.append(raw_blob(fleet.readings(span), 10_000 + start, 10_002 + start, START))
    assert run(resplit, store, settings, LiveState()) == []
    assert stored(store, settings) == before
    # A late batch (readings before the last judged one) is not learned, nothing is written.
    late = raw_blob(fleet.readings(range(50, 51)), 20_000, 20_005, START + 3600)
    report = judge_raw_blob(*late, store, settings)
    assert (report.points, report.result) == (0, None)
    assert stored(store, settings) == before
    assert len(read_anomalies(store, START, settings=settings)) == 1


def test_a_cold_process_judges_exactly_as_a_warm_one(app_env: dict[str, str]) -> None:
    """Snapshot + pending points restore the very detector that judged (byte-identical)."""
    fleet = Fleet(3, spikes={(0, "voltage", 110)})
    blobs = minute_batches(fleet, range(150))
    warm = settings_for(app_env, LIVE_SNAPSHOT_POINTS="25")
    cold = settings_for(
        {**app_env, "RESULTS_CONTAINER": app_env["RESULTS_CONTAINER"] + "c"},
        LIVE_SNAPSHOT_POINTS="25",
    )
    store = BlobStore.from_settings(warm)
    run(blobs, store, warm, LiveState())
    for name, data in blobs:
        judge_raw_blob(name, data, store, cold, LiveState())  # a new process every batch
    assert stored(store, warm) == stored(store, cold)


def test_a_warm_batch_leaves_no_garbage_cycles(app_env: dict[str, str]) -> None:
    """Each unchanged shard head is a 304, which the SDK raises as an error whose frames hold it
    (a cycle that keeps the whole batch alive); they are released, so refcounting frees the
    batch and nothing is left for the cyclic GC (whose full sweeps of the cached detectors
    are the live path's costliest pause)."""
    fleet = Fleet(6)
    blobs = minute_batches(fleet, range(70))
    settings = settings_for(app_env)
    store = BlobStore.from_settings(settings)
    state = LiveState()
    run(blobs[:-1], store, settings, state)
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)  # what a collection finds unreachable stays in gc.garbage
    try:
        report = judge_raw_blob(*blobs[-1], store, settings, state)
        gc.collect()
        kept = [type(o).__name__ for o in gc.garbage if isinstance(o, RawBatch | SeriesBatch)]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert report.points == 12
    assert kept == []  # 1 RawBatch and 12 SeriesBatch without the release


def test_a_silent_meter_resumes_from_its_state_without_reading_history(
    app_env: dict[str, str],
) -> None:
    settings = settings_for(app_env)
    store = BlobStore.from_settings(settings)
    fleet = Fleet(2)
    state = LiveState()
    run(minute_batches(fleet, range(90)), store, settings, state)
    # Three days of silence, then the meters report again.
    later = range(90 + 3 * 1440, 92 + 3 * 1440)
    before = REQUESTS.count
    reports = [
        judge_raw_blob(*blob, store, settings, state) for blob in minute_batches(fleet, later)
    ]
    assert [r.points for r in reports] == [4, 4]
    assert REQUESTS.count - before == 2 * (2 * 2 + 1)  # 2 shards read+written, 1 result each


def test_bad_raw_blobs_are_dead_lettered_whole_and_the_next_batches_go_on(
    app_env: dict[str, str],
) -> None:
    """Empty, truncated, non-JSON and wrong-schema blobs never raise: dead-lettered whole."""
    settings = settings_for(app_env)
    store = BlobStore.from_settings(settings)
    fleet = Fleet(2)
    good = minute_batches(fleet, range(70))
    name, data = good[10]
    bad = {
        "batches/2026/12/01/00/p0-empty.jsonl.gz": b"",
        "batches/2026/12/01/00/p0-truncated.jsonl.gz": data[: len(data) // 2],
        "batches/2026/12/01/00/p0-text.jsonl.gz": b"meter-1,2026-12-01,3.0\n",
        "batches/2026/12/01/00/p0-schema.jsonl.gz": json.dumps({"format": "other"}).encode(),
    }
    state = LiveState()
    run(good[:10], store, settings, state)
    for bad_name, bad_data in bad.items():
        with pytest.raises(RawBatchError):
            read_raw_batch(bad_name, bad_data)
        report = judge_raw_blob(bad_name, bad_data, store, settings, state)
        assert report.points == 0 and report.rejected[0].code
        letter = json_blob(
            store, BlobRef(settings.deadletter_container, live_dead_letter_name(bad_name))
        )
        assert letter["whole"] is True and letter["code"] == report.rejected[0].code
        assert letter["reason"]
    reports = [judge_raw_blob(n, d, store, settings, state) for n, d in good[10:]]
    assert all(r.points == 4 for r in reports)


def test_readings_that_break_the_detector_are_refused_and_the_state_survives(
    app_env: dict[str, str],
) -> None:
    """50 alternating +-1e308 readings break neither that batch nor the
    device's next batches (the reader and the ingest refuse them too; this is the judge's own
    guard, for a batch that reaches it)."""
    settings = settings_for(app_env)
    store = BlobStore.from_settings(settings)
    fleet = Fleet(2, spikes={(0, "power", 110)})
    blobs = minute_batches(fleet, range(120))
    state = LiveState()
    run(blobs[:80], store, settings, state)
    healthy = read_raw_batch(*blobs[80])
    # 50 minutes of readings in one batch (the form that broke the pre-fix detector for that
    # batch and every later one of the device: "Out of range float values are not JSON
    # compliant"; 50 readings within one minute did not break it).
    stamps = tuple(format_timestamp(START + 60.0 * (80 + i)) for i in range(50))
    hostile = SeriesBatch(
        device_id=Fleet.device(0),
        metric="power",
        timestamps=stamps,
        epochs=np.array([START + 60.0 * (80 + i) for i in range(50)]),
        values=np.array([1e308 if i % 2 == 0 else -1e308 for i in range(50)]),
    )
    others = tuple(
        s for s in healthy.series if (s.device_id, s.metric) != (Fleet.device(0), "power")
    )
    mixed = RawBatch(
        name=healthy.name,
        source=healthy.source,
        partition=healthy.partition,
        first_sequence=healthy.first_sequence,
        last_sequence=healthy.last_sequence,
        enqueued_time=healthy.enqueued_time,
        series=(hostile, *others),
    )
    report = judge_raw_batch(mixed, store, settings, state)
    assert report.series == 3 and report.points == 3  # the other series were judged
    assert [(r.device_id, r.metric, r.code) for r in report.rejected] == [
        (Fleet.device(0), "power", "ValueOutOfRange")
    ]
    letter = json_blob(
        store, BlobRef(settings.deadletter_container, live_dead_letter_name(healthy.name))
    )
    assert len(letter["rejected"][0]["timestamps"]) == 50
    # The next batches of the device are judged, and its spike at minute 110 is still found.
    found = run(blobs[81:], store, settings, state)
    assert [(d, m, t) for d, m, t, _ in found] == sorted(expected_alerts({(0, "power", 110)}))
    result = json_blob(store, BlobRef(settings.results_container, live_result_name(blobs[81][0])))
    assert {s["deviceId"] for s in result["series"]} == {Fleet.device(0), Fleet.device(1)}


def test_a_stray_old_reading_does_not_hide_a_spike_from_detection(app_env: dict[str, str]) -> None:
    """Events → ingest → live judge with a 100-day-old reading in the spike's batch: the batch
    is named after its enqueued time, not its oldest reading, so the spike is still judged and
    flagged."""
    settings = settings_for(app_env)
    store = BlobStore.from_settings(settings)
    fleet = Fleet(1, spikes={(0, "power", 75)})
    state = LiveState()
    found = []
    for minute in range(90):
        bodies = [json.loads(message) for message in fleet.messages(minute)]
        if minute == 75:
            stray = format_timestamp(START + 60.0 * minute - 100 * 86_400)
            bodies.append({"deviceId": Fleet.device(0), "timestamp": stray, "power": 1.0})
        enqueued = datetime.fromtimestamp(START + 60.0 * minute + 5, UTC)
        events = [
            RawEvent(json.dumps(body).encode(), "0", 10 * minute + i, enqueued_time=enqueued)
            for i, body in enumerate(bodies)
        ]
        (blob,) = prepare_batch(events).blobs
        report = judge_raw_blob(blob.name, blob.data, store, settings, state)
        found += [(a.device_id, a.metric, a.timestamp) for a in report.alerts]
    assert found == sorted(expected_alerts({(0, "power", 75)}))


def test_a_first_layout_shard_with_inline_states_is_read_and_moved_out(
    app_env: dict[str, str],
) -> None:
    """A version-1 head (each entry with its snapshot inline) judges exactly as the new layout
    and is rewritten as a head plus a snapshot blob on its first save."""
    fleet = Fleet(3, spikes={(2, "power", 95)})
    blobs = minute_batches(fleet, range(110))
    new = settings_for(app_env, LIVE_SNAPSHOT_POINTS="25")
    old = settings_for(
        {**app_env, "RESULTS_CONTAINER": app_env["RESULTS_CONTAINER"] + "v"},
        LIVE_SNAPSHOT_POINTS="25",
    )
    store = BlobStore.from_settings(new)
    run(blobs[:60], store, new, LiveState())
    for name, data in stored(store, new).items():  # the same state, as the first layout
        if name.endswith(".json") and name.startswith("live-state/"):
            head = json.loads(data)
            snapshot_name = head["snapshot"]
            lines = store.get_bytes(BlobRef(new.results_container, snapshot_name)).split(b"\n")
            keys = [tuple(k) for k in json.loads(lines[0])["series"]]
            states = dict(zip(keys, (json.loads(line) for line in lines[1:]), strict=True))
            series = [
                {
                    "deviceId": e["deviceId"],
                    "metric": e["metric"],
                    "last": e["last"],
                    "lastTimestamp": e["lastTimestamp"],
                    "snapshot": states.get((e["deviceId"], e["metric"])),
                    "pending": e["pending"],
                }
                for e in head["series"]
            ]
            document = {"format": "meterwatch.livestate", "version": 1, "shard": head["shard"]}
            store.put_json(BlobRef(old.results_container, name), {**document, "series": series})
    found_new = run(blobs[60:], store, new, LiveState())
    found_old = run(blobs[60:], store, old, LiveState())
    assert found_old == found_new and len(found_new) == 1
    judged_old = {n: b for n, b in stored(store, old).items() if n.startswith("live/")}
    assert len(judged_old) == 50
    assert {n: b for n, b in stored(store, new).items() if n in judged_old} == judged_old
    heads = [n for n in stored(store, old) if n.startswith("live-state/") and n.endswith(".json")]
    assert heads and all(
        json.loads(store.get_bytes(BlobRef(old.results_container, n)))["version"] == 2
        for n in heads
    )
