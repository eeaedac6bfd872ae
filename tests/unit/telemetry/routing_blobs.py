"""Realistic IoT Hub message-routing blobs (JSON and Avro encodings), built as IoT Hub writes them.

The JSON encoding writes one message object per line; a body sent with ``contentType``
``application/json`` and ``contentEncoding`` ``UTF-8`` is embedded as JSON, any other body is
base64 text. The Avro encoding is an Avro object container with the record schema
``Microsoft.Azure.Devices.Message`` (as in blobs routed by IoT Hub: codec ``null`` for ``avro``,
``deflate`` for ``avrodeflate``). The Avro writer below follows the Avro 1.x specification
(zig-zag varints, length-prefixed bytes, map blocks, 16-byte sync marker) independently of the
reader under test.
"""

from __future__ import annotations

import base64
import json
import zlib
from typing import Any

IOTHUB_AVRO_SCHEMA = {
    "type": "record",
    "name": "Message",
    "namespace": "Microsoft.Azure.Devices",
    "fields": [
        {"name": "EnqueuedTimeUtc", "type": "string"},
        {"name": "Properties", "type": {"type": "map", "values": "string"}},
        {"name": "SystemProperties", "type": {"type": "map", "values": "string"}},
        {"name": "Body", "type": ["null", "bytes"]},
    ],
}

AUTH = '{"scope":"device","type":"sas","issuer":"iothub","acceptingIpFilterRule":null}'


def system_properties(device: str, enqueued: str, json_body: bool) -> dict[str, str]:
    props = {
        "connectionDeviceId": device,
        "connectionAuthMethod": AUTH,
        "connectionDeviceGenerationId": "637162428862774710",
        "enqueuedTime": enqueued,
    }
    if json_body:
        props["contentType"] = "application/json"
        props["contentEncoding"] = "utf-8"
    return props


def routed_json_line(
    device: str,
    enqueued: str,
    body: dict[str, Any] | bytes,
    properties: dict[str, str] | None = None,
) -> str:
    """One line of a JSON-encoded routing blob (embedded JSON body, or base64 of bytes)."""
    json_body = isinstance(body, dict)
    message = {
        "EnqueuedTimeUtc": enqueued,
        "Properties": properties or {},
        "SystemProperties": system_properties(device, enqueued, json_body),
        "Body": body if json_body else base64.b64encode(body).decode("ascii"),  # type: ignore[arg-type]
    }
    return json.dumps(message, separators=(",", ":"))


def routed_json_blob(lines: list[str]) -> bytes:
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


# ------------------------------------------------------------------------------ Avro writer


def _long(value: int) -> bytes:
    zigzag = (value << 1) ^ (value >> 63)
    out = bytearray()
    while True:
        byte = zigzag & 0x7F
        zigzag >>= 7
        if zigzag:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _bytes(value: bytes) -> bytes:
    return _long(len(value)) + value


def _string(value: str) -> bytes:
    return _bytes(value.encode("utf-8"))


def _map(values: dict[str, str]) -> bytes:
    if not values:
        return _long(0)
    body = b"".join(_string(k) + _string(v) for k, v in values.items())
    return _long(len(values)) + body + _long(0)


def avro_message(device: str, enqueued: str, body: bytes | None, json_body: bool = True) -> bytes:
    return (
        _string(enqueued)
        + _map({})
        + _map(system_properties(device, enqueued, json_body))
        + (_long(0) if body is None else _long(1) + _bytes(body))
    )


def routed_avro_blob(records: list[bytes], codec: str = "null", per_block: int = 2) -> bytes:
    """An Avro object container of routed messages (``codec`` null or deflate)."""
    sync = bytes(range(16))
    header = b"Obj\x01" + _long(2)
    header += _string("avro.codec") + _bytes(codec.encode())
    header += _string("avro.schema") + _bytes(json.dumps(IOTHUB_AVRO_SCHEMA).encode())
    header += _long(0) + sync
    blocks = b""
    for start in range(0, len(records), per_block):
        chunk = records[start : start + per_block]
        data = b"".join(chunk)
        if codec == "deflate":
            deflater = zlib.compressobj(wbits=-zlib.MAX_WBITS)
            data = deflater.compress(data) + deflater.flush()
        blocks += _long(len(chunk)) + _long(len(data)) + data + sync
    return header + blocks
