"""Narrowing of decoded JSON (:data:`shared.jsontypes.JSONValue`) for tests that read into it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from shared.jsontypes import JSONValue


def seq(value: object) -> Sequence[JSONValue]:
    """``value`` as a JSON array (fails the test when it is not one)."""
    assert isinstance(value, list), f"not a JSON array: {value!r}"
    return value


def obj(value: object) -> Mapping[str, JSONValue]:
    """``value`` as a JSON object (fails the test when it is not one)."""
    assert isinstance(value, dict), f"not a JSON object: {value!r}"
    return value
