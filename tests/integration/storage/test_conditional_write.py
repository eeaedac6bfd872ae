"""The one conditional write (ETag read-modify-write) against Azurite, and a fold that keeps
losing the race raising :class:`~shared.errors.ConflictError`."""

from __future__ import annotations

import numpy as np
import pytest
from azure.storage.blob import ContentSettings

from shared.errors import ConflictError, StateError
from shared.history.compaction import MAX_ATTEMPTS, fold_day
from shared.history.daily import RankedPoints
from shared.settings import Settings
from shared.storage.client import BlobRef, BlobStore


@pytest.fixture
def settings(app_env: dict[str, str]) -> Settings:
    return Settings.from_env(app_env)


@pytest.fixture
def store(settings: Settings) -> BlobStore:
    return BlobStore.from_settings(settings)


def test_create_only_if_absent_then_only_on_the_etag_read(
    store: BlobStore, settings: Settings
) -> None:
    ref = BlobRef(settings.results_container, "cas/one.bin")
    assert store.get_bytes_with_etag(ref) == (None, None)
    first = store.put_bytes_if_unchanged(ref, b"a", None)
    assert first is not None
    assert store.put_bytes_if_unchanged(ref, b"lost", None) is None  # it exists now
    data, etag = store.get_bytes_with_etag(ref)
    assert (data, etag) == (b"a", first)
    second = store.put_bytes_if_unchanged(
        ref, b"b", etag, content_settings=ContentSettings(content_type="text/plain")
    )
    assert second is not None and second != first
    assert store.put_bytes_if_unchanged(ref, b"stale", first) is None  # another writer won
    assert store.get_bytes_with_etag(ref) == (b"b", second)
    props = store.service.get_blob_client(ref.container, ref.name).get_blob_properties()
    assert props.content_settings.content_type == "text/plain"


def test_json_documents_go_through_the_same_write(store: BlobStore, settings: Settings) -> None:
    ref = BlobRef(settings.results_container, "cas/doc.json")
    assert store.put_json_if_unchanged(ref, {"n": 1}, None)
    document, etag = store.get_json_with_etag(ref)
    assert document == {"n": 1}
    assert not store.put_json_if_unchanged(ref, {"n": 2}, None)
    assert store.put_json_if_unchanged(ref, {"n": 2}, etag)
    assert not store.put_json_if_unchanged(ref, {"n": 3}, etag)
    assert store.get_json(ref) == {"n": 2}


def test_object_readers_refuse_a_blob_holding_another_json_value(
    store: BlobStore, settings: Settings
) -> None:
    ref = BlobRef(settings.results_container, "cas/object.json")
    assert store.get_json_object_or_none(ref) is None
    assert store.get_json_object_with_etag(ref) == (None, None)
    store.put_json(ref, {"n": [1, 2]})
    assert store.get_json_object(ref) == {"n": [1, 2]}
    assert store.get_json_object_with_etag(ref)[0] == {"n": [1, 2]}
    store.put_json(ref, [1, 2])
    assert store.get_json(ref) == [1, 2]
    with pytest.raises(StateError, match="cas/object.json holds a JSON list"):
        store.get_json_object(ref)
    with pytest.raises(StateError):
        store.get_json_object_or_none(ref)


class AlwaysLosing(BlobStore):
    """A real store whose every conditional write finds another writer got there first."""

    attempts = 0

    def put_bytes_if_unchanged(self, *args: object, **kwargs: object) -> str | None:
        self.attempts += 1
        return None


def test_a_fold_that_loses_every_race_is_a_conflict_error(settings: Settings) -> None:
    store = AlwaysLosing(BlobStore.from_settings(settings).service)
    points = RankedPoints(
        np.array([1.7e9]), np.array([1.0]), np.array([1], dtype=np.int64), np.array([1])
    )
    with pytest.raises(ConflictError) as caught:
        fold_day(store, settings, "m1", "2023-11-14", {"power": points})
    assert caught.value.code == "Conflict"
    assert store.attempts == MAX_ATTEMPTS
