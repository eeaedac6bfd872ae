"""Raw batch v2: the one writer and the one reader (v2, v1 archive, IoT Hub routing JSON/Avro)."""

from __future__ import annotations

import gzip
import json
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.errors import RawBatchError
from shared.storage.names import raw_batch_v2_name, raw_hour_prefix
from shared.telemetry.rawbatch import (
    MAX_RAW_BATCH_BYTES,
    RAW_BATCH_FORMAT,
    RawBatch,
    encode_raw_batch,
    read_raw_batch,
)
from shared.timefmt import iso_epoch
from tests.unit.telemetry.routing_blobs import (
    avro_message,
    routed_avro_blob,
    routed_json_blob,
    routed_json_line,
)

NAME = "batches/2026/11/01/10/p3-00000000000000000010-00000000000000000042.jsonl.gz"
SERIES = {
    ("m2", "power"): {"2026-11-01T10:01:00Z": 2.5, "2026-11-01T10:00:00Z": 2.0},
    ("m1", "voltage"): {"2026-11-01T10:00:00Z": 230.0},
    ("m1", "power"): {
        "2026-11-01T10:00:00.500000Z": 1.25,
        "2026-11-01T10:00:00Z": 1.0,
        "2026-11-01T09:59:59.999999Z": 0.5,
    },
}


def encode(series: dict[tuple[str, str], dict[str, float]] = SERIES) -> bytes:
    return encode_raw_batch(
        series,
        partition="3",
        first_sequence=10,
        last_sequence=42,
        enqueued_time="2026-11-01T10:00:03.120000Z",
    )


def lines_of(data: bytes) -> list[dict[str, object]]:
    return [json.loads(line) for line in gzip.decompress(data).decode().splitlines()]


def regzip(lines: list[dict[str, object]] | list[str]) -> bytes:
    text = "\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n"
    return gzip.compress(text.encode(), mtime=0)


def test_v2_name_is_the_hour_of_the_enqueued_time_and_the_sequence_range() -> None:
    enqueued = iso_epoch("2026-11-01T10:59:59.900000+00:00")
    assert raw_batch_v2_name(enqueued, "3", 10, 42) == NAME.replace("/10/p3", "/10/p3")
    assert raw_hour_prefix(iso_epoch("2026-01-02T03:04:05+00:00")) == "batches/2026/01/02/03/"


def test_content_is_the_documented_header_then_one_sorted_line_per_series() -> None:
    lines = lines_of(encode())
    assert lines[0] == {
        "format": RAW_BATCH_FORMAT,
        "version": 2,
        "source": "eventhub",
        "partition": "3",
        "firstSequence": 10,
        "lastSequence": 42,
        "enqueuedTime": "2026-11-01T10:00:03.120000Z",
        "readings": 6,
    }
    assert list(lines[0]) == list(lines[0].keys())  # key order as documented
    assert [(line["deviceId"], line["metric"]) for line in lines[1:]] == [
        ("m1", "power"),
        ("m1", "voltage"),
        ("m2", "power"),
    ]
    # Chronological, not text order: a whole second sorts before its fractions.
    assert lines[1]["timestamps"] == [
        "2026-11-01T09:59:59.999999Z",
        "2026-11-01T10:00:00Z",
        "2026-11-01T10:00:00.500000Z",
    ]
    assert lines[1]["values"] == [0.5, 1.0, 1.25]


def test_bytes_are_deterministic_whatever_the_insertion_order() -> None:
    shuffled = {key: dict(reversed(list(rows.items()))) for key, rows in reversed(SERIES.items())}
    first, second = encode(), encode(shuffled)
    assert first == second
    assert first[4:8] == b"\x00\x00\x00\x00"  # gzip mtime 0


def test_read_back_gives_the_batch_with_epochs_and_values() -> None:
    batch = read_raw_batch(NAME, encode())
    assert (batch.name, batch.source, batch.partition) == (NAME, "eventhub", "3")
    assert (batch.first_sequence, batch.last_sequence) == (10, 42)
    assert batch.enqueued_time == "2026-11-01T10:00:03.120000Z"
    assert batch.readings == 6 and batch.rejected == ()
    power = batch.series[0]
    assert (power.device_id, power.metric) == ("m1", "power")
    assert power.timestamps[1] == "2026-11-01T10:00:00Z"
    base = iso_epoch("2026-11-01T10:00:00+00:00")
    np.testing.assert_allclose(power.epochs, [base - 0.000001, base, base + 0.5], rtol=0, atol=1e-6)
    assert power.epochs.dtype == np.float64 and power.values.dtype == np.float64
    assert power.values.tolist() == [0.5, 1.0, 1.25]


def test_plain_json_lines_are_read_too() -> None:
    assert read_raw_batch("x.jsonl", gzip.decompress(encode())).readings == 6


def test_a_batch_of_only_bad_events_has_no_series() -> None:
    batch = read_raw_batch(NAME, encode({}))
    assert batch.series == () and batch.readings == 0


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (lambda data: b"", "EmptyBlob"),
        (lambda data: data[: len(data) // 2], "InvalidGzip"),
        (lambda data: data[:10] + b"\x00" * 20, "InvalidGzip"),
        (lambda data: data + data, "InvalidGzip"),
        (lambda data: b"hello, world", "InvalidJson"),
        (lambda data: b'{"deviceId": "m1", "value": 1}', "InvalidSchema"),
        (lambda data: b"{not json", "InvalidJson"),
        (lambda data: b"\xff\xfe\x00", "InvalidEncoding"),
        (lambda data: gzip.compress(b"[" * 100_000, mtime=0), "InvalidJson"),
    ],
    ids=[
        "empty",
        "truncated",
        "corrupt",
        "two-members",
        "text",
        "other-json",
        "not-json",
        "utf16",
        "nested",
    ],
)
def test_unreadable_blobs_raise_coded_errors(mutate: object, code: str) -> None:
    with pytest.raises(RawBatchError) as caught:
        read_raw_batch(NAME, mutate(encode()))  # type: ignore[operator]
    assert caught.value.code == code
    assert NAME in caught.value.message or code == "EmptyBlob"


def _edited(edit: object) -> bytes:
    lines = lines_of(encode())
    edit(lines)  # type: ignore[operator]
    return regzip(lines)


@pytest.mark.parametrize(
    ("edit", "code"),
    [
        (lambda lines: lines[0].update(version=3), "UnsupportedVersion"),
        (lambda lines: lines[0].update(version="2"), "UnsupportedVersion"),
        (lambda lines: lines[0].update(format="other"), "InvalidSchema"),
        (lambda lines: lines[0].pop("partition"), "InvalidSchema"),
        (lambda lines: lines[0].update(readings=7), "InvalidSchema"),
        (lambda lines: lines[0].update(firstSequence=-1), "InvalidSchema"),
        (lambda lines: lines[0].update(enqueuedTime="yesterday"), "InvalidTimestamp"),
        (lambda lines: lines.pop(), "InvalidSchema"),  # a series lost: readings mismatch
        (lambda lines: lines.insert(1, lines.pop(2)), "InvalidSchema"),  # unsorted series
        (lambda lines: lines[1]["timestamps"].reverse(), "InvalidSchema"),
        (
            lambda lines: lines[1]["timestamps"].__setitem__(0, "2026-11-01 10:00"),
            "InvalidTimestamp",
        ),
        (lambda lines: lines[1]["values"].pop(), "InvalidSchema"),
        (lambda lines: lines[1]["values"].__setitem__(0, 1e308), "ValueOutOfRange"),
        (lambda lines: lines[1]["values"].__setitem__(0, "1.5"), "InvalidValue"),
        (lambda lines: lines[1]["values"].__setitem__(0, True), "InvalidValue"),
        (lambda lines: lines[1].update(deviceId="m1\n"), "InvalidName"),
        (lambda lines: lines[1].update(metric=["x"]), "InvalidName"),
        (lambda lines: lines.__setitem__(1, [1, 2]), "InvalidSchema"),
    ],
)
def test_wrong_schema_or_values_raise_coded_errors(edit: object, code: str) -> None:
    with pytest.raises(RawBatchError) as caught:
        read_raw_batch(NAME, _edited(edit))
    assert caught.value.code == code


def test_decompression_bomb_is_refused_without_inflating_it_all() -> None:
    deflater = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    chunk = b" " * (1 << 20)
    bomb = b"".join(deflater.compress(chunk) for _ in range(MAX_RAW_BATCH_BYTES // len(chunk) + 2))
    bomb += deflater.flush()
    assert len(bomb) < 2_000_000
    with pytest.raises(RawBatchError) as caught:
        read_raw_batch(NAME, bomb)
    assert caught.value.code == "TooLarge"


def test_v1_documents_of_the_archive_are_read() -> None:
    document = {
        "version": 1,
        "deviceId": "m1",
        "metric": "power",
        "partitionId": "0",
        "firstSequenceNumber": 5,
        "lastSequenceNumber": 9,
        "readings": [["2026-11-01T10:01:00Z", 2.0], ["2026-11-01T10:00:00Z", 1.0]],
    }
    batch = read_raw_batch("m1/power/2026-11-01/p0-5-9.json", json.dumps(document).encode())
    assert batch.series[0].timestamps == ("2026-11-01T10:00:00Z", "2026-11-01T10:01:00Z")
    assert batch.series[0].values.tolist() == [1.0, 2.0]
    assert (batch.first_sequence, batch.last_sequence, batch.partition) == (5, 9, "0")
    with pytest.raises(RawBatchError) as caught:
        read_raw_batch("x.json", json.dumps({**document, "version": 0}).encode())
    assert caught.value.code == "UnsupportedVersion"


# ------------------------------------------------------------------------- IoT Hub routing

ROUTED_NAME = "meterhub/1/2026/11/01/10/05"


def _routing_lines() -> list[str]:
    return [
        routed_json_line(
            "meter-7",
            "2026-11-01T10:05:00.1230000Z",
            {"timestamp": "2026-11-01T10:04:00Z", "power": 1.5, "voltage": 231},
        ),
        # A body without contentType/contentEncoding is stored as base64 (the tutorial's shape).
        routed_json_line(
            "meter-8",
            "2026-11-01T10:05:01.0000000Z",
            b'{"timestamp": "12/16/2006 17:24", "value": "0.418"}',
            properties={"metric": "power"},
        ),
        routed_json_line("meter-9", "2026-11-01T10:05:02.0000000Z", b"\x00\x01 not json"),
        # The same meter and minute again, later in the blob: the later reading wins.
        routed_json_line(
            "meter-7",
            "2026-11-01T10:05:03.0000000Z",
            {"timestamp": "2026-11-01T10:04:00Z", "power": 1.75},
        ),
    ]


def test_iothub_json_routing_blob_is_read_with_bad_messages_rejected() -> None:
    batch = read_raw_batch(ROUTED_NAME, routed_json_blob(_routing_lines()))
    assert (batch.source, batch.partition) == ("iothub", "1")
    assert (batch.first_sequence, batch.last_sequence) == (0, 3)
    assert batch.enqueued_time == "2026-11-01T10:05:00.123000Z"
    found = {(s.device_id, s.metric): (s.timestamps, s.values.tolist()) for s in batch.series}
    assert found == {
        ("meter-7", "power"): (("2026-11-01T10:04:00Z",), [1.75]),
        ("meter-7", "voltage"): (("2026-11-01T10:04:00Z",), [231.0]),
        ("meter-8", "power"): (("2006-12-16T17:24:00Z",), [0.418]),
    }
    assert [(r.index, r.code) for r in batch.rejected] == [(2, "InvalidJson")]


def test_iothub_routing_blob_with_a_broken_line_keeps_the_others() -> None:
    lines = _routing_lines()[:2] + ['{"EnqueuedTimeUtc": "2026-11-01T10:05:09Z", "Bo']
    batch = read_raw_batch(ROUTED_NAME, routed_json_blob(lines))
    assert batch.readings == 3
    assert [(r.index, r.code) for r in batch.rejected] == [(2, "InvalidJson")]
    assert batch.rejected[0].payload.startswith('{"EnqueuedTimeUtc"')


@pytest.mark.parametrize("codec", ["null", "deflate"])
def test_iothub_avro_routing_blob_is_read(codec: str) -> None:
    records = [
        avro_message(
            "meter-1",
            "2026-11-01T10:05:00.0000000Z",
            b'{"timestamp":"2026-11-01T10:04:00Z","power":2.5}',
        ),
        avro_message(
            "meter-2",
            "2026-11-01T10:05:01.0000000Z",
            b'{"timestamp":"2026-11-01T10:04:00Z","power":3.5}',
        ),
        avro_message("meter-3", "2026-11-01T10:05:02.0000000Z", None),
        avro_message(
            "meter-1",
            "2026-11-01T10:05:03.0000000Z",
            b'{"timestamp":"2026-11-01T10:05:00Z","power":2.75}',
        ),
    ]
    blob = routed_avro_blob(records, codec=codec)
    batch = read_raw_batch("meterhub/0/2026/11/01/10/05.avro", blob)
    assert batch.source == "iothub" and batch.partition == "0"
    assert [(s.device_id, s.timestamps, s.values.tolist()) for s in batch.series] == [
        ("meter-1", ("2026-11-01T10:04:00Z", "2026-11-01T10:05:00Z"), [2.5, 2.75]),
        ("meter-2", ("2026-11-01T10:04:00Z",), [3.5]),
    ]
    assert [(r.index, r.code) for r in batch.rejected] == [(2, "MissingField")]


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (lambda blob: blob[: len(blob) - 20], "InvalidAvro"),
        (lambda blob: blob[:-1] + b"\x00", "InvalidAvro"),  # sync marker
        (lambda blob: blob.replace(b'"Body"', b'"Bodx"'), "InvalidSchema"),
        (lambda blob: blob.replace(b"null", b"snap", 1), "InvalidAvro"),  # codec
        (lambda blob: b"Obj\x01", "InvalidAvro"),
    ],
)
def test_unreadable_avro_raises_coded_errors(mutate: object, code: str) -> None:
    blob = routed_avro_blob([avro_message("m1", "2026-11-01T10:05:00Z", b'{"timestamp":1,"v":1}')])
    with pytest.raises(RawBatchError) as caught:
        read_raw_batch("hub/0/x.avro", mutate(blob))  # type: ignore[operator]
    assert caught.value.code == code


def test_avro_decoder_is_not_imported_for_json_blobs() -> None:
    import subprocess
    import sys

    code = (
        "import sys, gzip; from shared.telemetry.rawbatch import read_raw_batch, encode_raw_batch;"
        "read_raw_batch('x', encode_raw_batch({('m','v'):{'2026-11-01T10:00:00Z':1.0}},"
        "partition='0', first_sequence=0, last_sequence=0, enqueued_time='2026-11-01T10:00:00Z'));"
        "print('shared.telemetry.avro' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ------------------------------------------------------------------------ property tests


def _assert_batch_or_coded_error(data: bytes) -> None:
    try:
        batch = read_raw_batch(NAME, data)
    except RawBatchError as exc:
        assert exc.code and exc.message
    else:
        assert isinstance(batch, RawBatch)
        for one in batch.series:
            assert len(one.timestamps) == one.epochs.size == one.values.size
            assert np.all(np.isfinite(one.values))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2048))
def test_any_bytes_give_a_batch_or_a_coded_error(data: bytes) -> None:
    _assert_batch_or_coded_error(data)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_any_damage_to_a_valid_blob_gives_a_batch_or_a_coded_error(data: st.DataObject) -> None:
    for blob in (encode(), gzip.decompress(encode()), routed_json_blob(_routing_lines())):
        cut = data.draw(st.integers(0, len(blob)))
        flips = data.draw(
            st.lists(st.tuples(st.integers(0, len(blob) - 1), st.integers(0, 255)), max_size=4)
        )
        damaged = bytearray(blob[:cut] if data.draw(st.booleans()) else blob)
        for position, byte in flips:
            if position < len(damaged):
                damaged[position] = byte
        _assert_batch_or_coded_error(bytes(damaged))


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_any_json_in_the_documented_keys_gives_a_batch_or_a_coded_error(
    data: st.DataObject,
) -> None:
    lines = lines_of(encode())
    line = data.draw(st.integers(0, len(lines) - 1))
    key = data.draw(st.sampled_from(sorted(lines[line])))
    lines[line][key] = data.draw(JSON_VALUES)
    _assert_batch_or_coded_error(regzip(lines))
