"""Narrowing of decoded JSON (:data:`shared.jsontypes.JSONValue`) for tests that read into it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from shared.jsontypes import JSONValue
from shared.storage.client import BlobRef, BlobStore


def seq(value: object) -> Sequence[JSONValue]:
    """``value`` as a JSON array (fails the test when it is not one)."""
    assert isinstance(value, list), f"not a JSON array: {value!r}"
    return value


def obj(value: object) -> Mapping[str, JSONValue]:
    """``value`` as a JSON object (fails the test when it is not one)."""
    assert isinstance(value, dict), f"not a JSON object: {value!r}"
    return value


def json_blob(store: BlobStore, ref: BlobRef) -> Any:
    """A JSON blob, for a test to index freely (a wrong shape fails the test's own assertion)."""
    return store.get_json(ref)
