"""A small pure-Python reader of Avro object container files, for IoT Hub routing blobs.

IoT Hub message routing to a storage endpoint writes Avro by default (encodings ``avro`` and
``avrodeflate``) with the record schema ``Microsoft.Azure.Devices.Message``::

    {"EnqueuedTimeUtc": string, "Properties": map<string>, "SystemProperties": map<string>,
     "Body": ["null", "bytes"]}

This module decodes the container (Avro 1.x specification: magic ``Obj\\x01``, metadata map,
16-byte sync marker, blocks of ``count, size, data, sync``; codecs ``null`` and ``deflate``) and
the binary encoding of any schema made of the primitive and complex types. It is imported only
when an Avro blob arrives (no Avro library in the cold start; about 250 lines of standard library
instead of a dependency). Everything it cannot read raises
:class:`~shared.errors.RawBatchError` with code ``InvalidAvro``.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable, Iterator, Mapping
from typing import TypeAlias

from shared.errors import RawBatchError
from shared.jsontypes import JSONValue
from shared.telemetry.rawbatch.model import MAX_RAW_BATCH_BYTES, RejectedRecord
from shared.telemetry.rawbatch.routing import RoutedMessage

_MAGIC = b"Obj\x01"
_SYNC_SIZE = 16
#: More objects than this in one container is not a routing blob.
_MAX_OBJECTS = 10_000_000
_ROUTING_FIELDS = ("EnqueuedTimeUtc", "Properties", "SystemProperties", "Body")


class _Buffer:
    """A cursor over bytes with the Avro primitive decoders."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def read(self, size: int) -> bytes:
        if size < 0 or self.pos + size > len(self.data):
            raise _Truncated
        chunk = self.data[self.pos : self.pos + size]
        self.pos += size
        return chunk

    def long(self) -> int:
        shift = 0
        accumulated = 0
        while True:
            if self.pos >= len(self.data):
                raise _Truncated
            byte = self.data[self.pos]
            self.pos += 1
            accumulated |= (byte & 0x7F) << shift
            if not byte & 0x80:
                break
            shift += 7
            if shift > 63:
                raise _Invalid("a long of more than 10 bytes")
        return (accumulated >> 1) ^ -(accumulated & 1)  # zig-zag

    def bytes_(self) -> bytes:
        return self.read(self.long())

    def string(self) -> str:
        try:
            return self.bytes_().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _Invalid("a string is not UTF-8") from exc

    def at_end(self) -> bool:
        return self.pos >= len(self.data)


class _Truncated(Exception):
    pass


class _Invalid(Exception):
    pass


#: A decoded Avro value: JSON's types plus ``bytes`` (``bytes`` and ``fixed``).
AvroValue: TypeAlias = (
    None | bool | int | float | str | bytes | list["AvroValue"] | dict[str, "AvroValue"]
)
Decoder = Callable[[_Buffer], AvroValue]


def _compile(schema: JSONValue, names: dict[str, Decoder], namespace: str = "") -> Decoder:
    """Build a decoder for a parsed Avro schema (names resolves named types)."""
    if isinstance(schema, str):
        return _primitive(schema, names, namespace)
    if isinstance(schema, list):
        branches = [_compile(branch, names, namespace) for branch in schema]

        def union(buffer: _Buffer) -> AvroValue:
            index = buffer.long()
            if not 0 <= index < len(branches):
                raise _Invalid(f"union branch {index} of {len(branches)}")
            return branches[index](buffer)

        return union
    if not isinstance(schema, dict):
        raise _Invalid(f"schema {str(schema)[:60]!r}")
    kind = schema.get("type")
    if kind == "record" or kind == "error":
        full = _full_name(schema, namespace)
        fields: list[tuple[str, Decoder]] = []

        def record(buffer: _Buffer) -> AvroValue:
            return {field: decode(buffer) for field, decode in fields}

        names[full] = record  # before the fields: a record may refer to itself
        inner = full.rpartition(".")[0]
        declared = schema.get("fields", [])
        if not isinstance(declared, list):
            raise _Invalid("record fields that are not a list")
        for field in declared:
            field_name = field.get("name") if isinstance(field, dict) else None
            if not isinstance(field, dict) or not isinstance(field_name, str):
                raise _Invalid("a record field without a name")
            fields.append((field_name, _compile(field.get("type"), names, inner)))
        return record
    if kind == "enum":
        declared_symbols = schema.get("symbols") or []
        if not isinstance(declared_symbols, list):
            raise _Invalid("enum symbols that are not a list")
        symbols = [str(symbol) for symbol in declared_symbols]

        def enum(buffer: _Buffer) -> AvroValue:
            index = buffer.long()
            if not 0 <= index < len(symbols):
                raise _Invalid(f"enum index {index}")
            return symbols[index]

        names[_full_name(schema, namespace)] = enum
        return enum
    if kind == "fixed":
        declared_size = schema.get("size", -1)
        if not isinstance(declared_size, int | float | str):
            raise _Invalid("a fixed type without a size")
        size = int(declared_size)

        def fixed(buffer: _Buffer) -> AvroValue:
            return buffer.read(size)

        names[_full_name(schema, namespace)] = fixed
        return fixed
    if kind == "array":
        items = _compile(schema.get("items"), names, namespace)
        return lambda buffer: [items(buffer) for _ in _blocks(buffer)]
    if kind == "map":
        values = _compile(schema.get("values"), names, namespace)

        def mapping(buffer: _Buffer) -> AvroValue:
            out: dict[str, AvroValue] = {}
            for _ in _blocks(buffer):
                key = buffer.string()
                out[key] = values(buffer)
            return out

        return mapping
    if isinstance(kind, str | list | dict):
        return _compile(kind, names, namespace)  # {"type": "string"} and the like
    raise _Invalid(f"schema type {str(kind)[:60]!r}")


def _blocks(buffer: _Buffer) -> Iterator[None]:
    """Yield once per item of an array or map (blocks of items, a negative count has a size)."""
    total = 0
    while True:
        count = buffer.long()
        if count == 0:
            return
        if count < 0:
            count = -count
            buffer.long()  # the block's byte size, not needed to read it
        total += count
        if total > _MAX_OBJECTS or count > len(buffer.data) - buffer.pos + 1:
            raise _Invalid("more items than the data can hold")
        for _ in range(count):
            yield None


def _primitive(kind: str, names: dict[str, Decoder], namespace: str) -> Decoder:
    if kind == "null":
        return lambda buffer: None
    if kind == "boolean":
        return lambda buffer: buffer.read(1) != b"\x00"
    if kind == "int" or kind == "long":
        return _Buffer.long
    if kind == "float":
        import struct

        return lambda buffer: struct.unpack("<f", buffer.read(4))[0]
    if kind == "double":
        import struct

        return lambda buffer: struct.unpack("<d", buffer.read(8))[0]
    if kind == "bytes":
        return _Buffer.bytes_
    if kind == "string":
        return _Buffer.string
    for candidate in (kind, f"{namespace}.{kind}" if namespace else kind):
        if candidate in names:
            named: Decoder = names[candidate]
            return named
    raise _Invalid(f"unknown type {kind[:60]!r}")


def _full_name(schema: Mapping[str, JSONValue], namespace: str) -> str:
    name = str(schema.get("name", ""))
    if "." in name:
        return name
    space = schema.get("namespace", namespace)
    return f"{space}.{name}" if space else name


def read_container(name: str, data: bytes) -> tuple[JSONValue, list[AvroValue]]:
    """Decode an Avro object container file: its schema and every record.

    Raises:
        RawBatchError: ``InvalidAvro``: bad magic, truncated, unknown codec or schema, or
            records that do not decode.
    """
    try:
        return _read_container(data)
    except _Truncated as exc:
        raise RawBatchError(f"{name}: the Avro file is truncated.", "InvalidAvro") from exc
    except _Invalid as exc:
        raise RawBatchError(f"{name}: not a readable Avro file ({exc}).", "InvalidAvro") from exc
    except (ValueError, TypeError, KeyError, IndexError, OverflowError, RecursionError) as exc:
        raise RawBatchError(
            f"{name}: not a readable Avro file ({type(exc).__name__}).", "InvalidAvro"
        ) from exc


def _read_container(data: bytes) -> tuple[JSONValue, list[AvroValue]]:
    buffer = _Buffer(data)
    if buffer.read(4) != _MAGIC:
        raise _Invalid("no Obj\\x01 magic")
    metadata: dict[str, bytes] = {}
    for _ in _blocks(buffer):
        key = buffer.string()
        metadata[key] = buffer.bytes_()
    sync = buffer.read(_SYNC_SIZE)
    try:
        schema: JSONValue = json.loads(metadata["avro.schema"].decode("utf-8"))
    except KeyError as exc:
        raise _Invalid("no avro.schema in the header") from exc
    except (UnicodeDecodeError, ValueError) as exc:
        raise _Invalid("avro.schema is not JSON") from exc
    codec = metadata.get("avro.codec", b"null").decode("utf-8", "replace")
    if codec not in ("null", "deflate"):
        raise _Invalid(f"codec {codec[:40]!r} (IoT Hub writes null or deflate)")
    decode = _compile(schema, {})
    records: list[AvroValue] = []
    inflated = 0
    while not buffer.at_end():
        count = buffer.long()
        size = buffer.long()
        if count < 0 or size < 0 or len(records) + count > _MAX_OBJECTS:
            raise _Invalid("a negative or oversized block")
        block = buffer.read(size)
        if codec == "deflate":
            inflater = zlib.decompressobj(wbits=-zlib.MAX_WBITS)
            try:
                block = inflater.decompress(block, MAX_RAW_BATCH_BYTES + 1)
            except zlib.error as exc:
                raise _Invalid(f"a deflate block does not inflate ({exc})") from exc
        inflated += len(block)
        if inflated > MAX_RAW_BATCH_BYTES:
            raise _Invalid(f"inflates to more than {MAX_RAW_BATCH_BYTES} bytes")
        if buffer.read(_SYNC_SIZE) != sync:
            raise _Invalid("a block's sync marker does not match the header's")
        items = _Buffer(block)
        for _ in range(count):
            records.append(decode(items))
        if not items.at_end():
            raise _Invalid("bytes left over in a block")
    return schema, records


def read_routed_avro(name: str, data: bytes) -> list[RoutedMessage | RejectedRecord]:
    """The messages of an IoT Hub routing blob in Avro encoding.

    Raises:
        RawBatchError: ``InvalidAvro`` (see :func:`read_container`), or ``InvalidSchema`` when
            the records are not IoT Hub messages.
    """
    schema, records = read_container(name, data)
    fields = schema.get("fields") if isinstance(schema, dict) else None
    declared = fields if isinstance(fields, list) else []
    field_names = {f.get("name") for f in declared if isinstance(f, dict)}
    if not set(_ROUTING_FIELDS) <= field_names:
        raise RawBatchError(
            f"{name}: Avro records are not IoT Hub routing messages (fields "
            f"{', '.join(_ROUTING_FIELDS)} expected).",
            "InvalidSchema",
        )
    messages: list[RoutedMessage | RejectedRecord] = []
    for index, message in enumerate(records):
        record = message if isinstance(message, dict) else {}
        body = record.get("Body")
        enqueued = record.get("EnqueuedTimeUtc")
        properties = record.get("Properties")
        system = record.get("SystemProperties")
        if (
            not isinstance(body, bytes)
            or not isinstance(enqueued, str)
            or not isinstance(properties, dict)
            or not isinstance(system, dict)
        ):
            messages.append(
                RejectedRecord(index, "MissingField", "a routed message without a body", "")
            )
            continue
        messages.append(RoutedMessage(enqueued, properties, system, body))
    return messages
