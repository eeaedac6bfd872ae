"""The types of JSON documents as ``json.loads`` returns them and ``json.dumps`` takes them.

Every public signature that takes or returns a JSON document uses these instead of ``Any``:
:data:`JSONValue` for any decoded value, :data:`JSONObject` for an object. Readers narrow a
value with ``isinstance`` (or read it through a typed payload) before they use it. A module
with no imports, so every room, the engine included, may use it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypeAlias

__all__ = ["JSONObject", "JSONScalar", "JSONValue"]

#: A JSON leaf.
JSONScalar: TypeAlias = None | bool | int | float | str
#: Any JSON value. Arrays and objects are the read-only ``Sequence`` and ``Mapping`` (which
#: ``json.loads`` gives as ``list`` and ``dict``), so a ``list[float]`` or a ``dict[str, str]``
#: is a JSON value as it is: the containers are covariant, unlike ``list`` and ``dict``.
JSONValue: TypeAlias = JSONScalar | Sequence["JSONValue"] | Mapping[str, "JSONValue"]
#: A JSON object (a ``dict``, so a document can be built up key by key).
JSONObject: TypeAlias = dict[str, JSONValue]
