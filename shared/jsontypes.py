"""The types of JSON documents as ``json.loads`` returns them and ``json.dumps`` takes them.

Every public signature that takes or returns a JSON document uses these instead of ``Any``:
:data:`JSONValue` for any decoded value, :data:`JSONObject` for an object. Readers narrow a
value with ``isinstance`` (or read it through a typed payload) before they use it. A module
with no imports, so every room, the engine included, may use it.
"""

from __future__ import annotations

from typing import TypeAlias

__all__ = ["JSONObject", "JSONScalar", "JSONValue"]

#: A JSON leaf.
JSONScalar: TypeAlias = None | bool | int | float | str
#: Any decoded JSON value.
JSONValue: TypeAlias = JSONScalar | list["JSONValue"] | dict[str, "JSONValue"]
#: A JSON object.
JSONObject: TypeAlias = dict[str, JSONValue]
