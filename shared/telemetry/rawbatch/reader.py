"""The one reader of raw blobs, :func:`read_raw_batch`: it tells the layout from the bytes.

Gzip is inflated (bounded), Avro goes to the routing reader, JSON text is told apart by its
first line: a v2 header (:mod:`.v2`), an IoT Hub routing message (:mod:`.routing`) or a v1
document (:mod:`.v1`).
"""

from __future__ import annotations

import zlib

from shared.errors import InputError, RawBatchError
from shared.telemetry.rawbatch.model import (
    MAX_RAW_BATCH_BYTES,
    RAW_BATCH_FORMAT,
    RawBatch,
    json_line,
)
from shared.telemetry.rawbatch.routing import read_iothub_avro, read_iothub_json
from shared.telemetry.rawbatch.v1 import read_v1
from shared.telemetry.rawbatch.v2 import read_v2

_GZIP_MAGIC = b"\x1f\x8b"
_AVRO_MAGIC = b"Obj\x01"


def read_raw_batch(name: str, data: bytes) -> RawBatch:
    """Read a raw blob: raw batch v2 or v1, or an IoT Hub routing blob (JSON or Avro).

    Args:
        name: The blob's name in the raw container (labels the result; gives an IoT Hub
            routing blob its partition, ``{iothub}/{partition}/{YYYY}/{MM}/{DD}/{HH}/{mm}``).
        data: The blob's bytes.

    Returns:
        The batch.

    Raises:
        RawBatchError: The blob is empty, truncated, not JSON, not one of the layouts above, of
            another version, or holds an invalid name, value or timestamp.
    """
    if not data:
        raise RawBatchError(f"{name}: the blob is empty.", "EmptyBlob")
    try:
        if data[:4] == _AVRO_MAGIC:
            return read_iothub_avro(name, data)
        if data[:2] == _GZIP_MAGIC:
            data = _gunzip(name, data)
            if data[:4] == _AVRO_MAGIC:
                return read_iothub_avro(name, data)
        if len(data) > MAX_RAW_BATCH_BYTES:
            raise RawBatchError(
                f"{name}: {len(data)} bytes is more than a raw batch may hold "
                f"({MAX_RAW_BATCH_BYTES}).",
                "TooLarge",
            )
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise RawBatchError(
                f"{name}: not UTF-8 text at byte {exc.start}.", "InvalidEncoding"
            ) from exc
        return _read_json_text(name, text.removeprefix("\ufeff"))
    except RawBatchError:
        raise
    except InputError as exc:
        raise RawBatchError(f"{name}: {exc.message}", exc.code) from exc
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError) as exc:
        # The layouts are validated field by field; this is the guard that keeps the contract
        # (a RawBatch or a RawBatchError, never another exception) for shapes nobody thought of.
        raise RawBatchError(
            f"{name}: not a readable raw batch ({type(exc).__name__}: {str(exc)[:200]}).",
            "InvalidSchema",
        ) from exc
    except RecursionError as exc:
        raise RawBatchError(f"{name}: JSON nested too deeply.", "InvalidJson") from exc


def _gunzip(name: str, data: bytes) -> bytes:
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, MAX_RAW_BATCH_BYTES + 1)
    except zlib.error as exc:
        raise RawBatchError(f"{name}: not valid gzip ({exc}).", "InvalidGzip") from exc
    if len(out) > MAX_RAW_BATCH_BYTES or inflater.unconsumed_tail:
        raise RawBatchError(
            f"{name}: inflates to more than {MAX_RAW_BATCH_BYTES} bytes.", "TooLarge"
        )
    if not inflater.eof:
        raise RawBatchError(f"{name}: the gzip stream is truncated.", "InvalidGzip")
    if inflater.unused_data:
        raise RawBatchError(f"{name}: data after the end of the gzip stream.", "InvalidGzip")
    return out


def _read_json_text(name: str, text: str) -> RawBatch:
    lines = [line for line in text.split("\n") if line.strip()]
    if not lines:
        raise RawBatchError(f"{name}: no JSON in the blob.", "EmptyBlob")
    first = json_line(name, lines[0], 1)
    if isinstance(first, dict) and "format" in first:
        return read_v2(name, first, lines[1:])
    if isinstance(first, dict) and "EnqueuedTimeUtc" in first:
        return read_iothub_json(name, lines)
    if isinstance(first, dict) and "readings" in first and "deviceId" in first:
        if len(lines) != 1:
            raise RawBatchError(f"{name}: a v1 raw batch is one JSON document.", "InvalidSchema")
        return read_v1(name, first)
    raise RawBatchError(
        f'{name}: line 1 is neither a raw batch header ({{"format": '
        f'"{RAW_BATCH_FORMAT}", ...}}) nor an IoT Hub routing message '
        '({"EnqueuedTimeUtc": ..., "Body": ...}).',
        "InvalidSchema",
    )
