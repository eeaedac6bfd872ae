"""Blob storage: one small facade over ``azure-storage-blob`` and the naming rules.

Writes are idempotent: every blob name is derived from its content's identity (partition and
sequence numbers, device, metric, timestamps), and writes overwrite, so a redelivered batch
rewrites the same blobs with the same bytes instead of adding duplicates. Storage errors are
not caught here: they propagate so that the Functions runtime retries the invocation.
"""

from __future__ import annotations

import functools
import json
import logging
import traceback
import urllib.request
import weakref
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.storage.blob import BlobServiceClient, ContainerClient, ContentSettings, LinearRetry

from shared.errors import ConfigurationError, StateError
from shared.jsontypes import JSONObject, JSONValue
from shared.settings import Settings

if TYPE_CHECKING:
    from azure.core.pipeline import PipelineRequest
    from azure.core.pipeline.transport import HttpRequest

logger = logging.getLogger(__name__)

JSON_CONTENT = ContentSettings(content_type="application/json")
#: Largest block one append may carry (the service's limit for older API versions).
MAX_APPEND_BLOCK_BYTES = 4 * 1024 * 1024

#: The documented, public Azurite development account (not a secret).
DEV_ACCOUNT = "devstoreaccount1"
DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def connection_string(blob: int, queue: int, table: int, host: str = "127.0.0.1") -> str:
    """The Azurite connection string for the given ports."""
    return (
        f"DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={DEV_KEY};"
        f"BlobEndpoint=http://{host}:{blob}/{DEV_ACCOUNT};"
        f"QueueEndpoint=http://{host}:{queue}/{DEV_ACCOUNT};"
        f"TableEndpoint=http://{host}:{table}/{DEV_ACCOUNT};"
    )


@dataclass(frozen=True)
class BlobRef:
    """A blob's container and name."""

    container: str
    name: str

    def __str__(self) -> str:
        return f"{self.container}/{self.name}"


def expand_development_storage(connection: str) -> str:
    """Expand the ``UseDevelopmentStorage=true`` shortcut (which the SDK does not know).

    The Functions host understands it; ``azure-storage-blob`` does not, so it becomes the
    Azurite connection string on the default ports.
    """
    if connection.replace(" ", "").lower().startswith("usedevelopmentstorage=true"):
        return connection_string(10000, 10001, 10002)
    return connection


class RequestCounter:
    """Counts the HTTP requests a client sends (each try: every one is a billed transaction).

    Installed on the process's clients as the storage pipeline's ``raw_request_hook`` (which
    runs inside the retry policy, once per try), so cost per reading is measured where it is
    paid, at the HTTP layer (:mod:`bench.bench_live`, the fleet tests, the demo's cost line).
    """

    def __init__(self) -> None:
        self.count = 0
        self.by_method: dict[str, int] = {}

    def __call__(self, request: PipelineRequest[HttpRequest]) -> None:
        """Count one request (a counter increment: nothing measurable per request)."""
        self.count += 1
        method = request.http_request.method
        self.by_method[method] = self.by_method.get(method, 0) + 1

    def reset(self) -> None:
        """Start counting from zero."""
        self.count = 0
        self.by_method = {}


#: The requests of every client :func:`service_client` builds.
REQUESTS = RequestCounter()


@functools.cache
def service_client(
    connection: str | None, service_uri: str | None, client_id: str | None
) -> BlobServiceClient:
    """The process's one ``BlobServiceClient`` for these settings (built on first use).

    Triggers call :meth:`BlobStore.from_settings` on every invocation; caching the client here
    keeps its connection pool (and, in the cloud, its credential and token) across invocations.

    Args:
        connection: A connection string; when set it wins over the URI.
        service_uri: The blob service URI for managed identity (used when no connection string).
        client_id: The user-assigned identity's client id, or ``""`` for the system identity.
    """
    # requests reads the proxy variables of the environment on every request (about 0.6 ms of
    # CPU each, measured in bench_live); without any proxy configured, it is told not to.
    options: dict[str, Any] = {  # Any: see _connect
        "raw_request_hook": REQUESTS,
        "use_env_settings": bool(urllib.request.getproxies()),
    }
    return _connect(connection, service_uri, client_id, options)


def _connect(
    connection: str | None, service_uri: str | None, client_id: str | None, options: dict[str, Any]
) -> BlobServiceClient:
    """A client from a connection string, or by managed identity from the service URI."""
    # Any (private): the SDK's keyword options each have their own type (hook, bool, policy).
    if connection:
        return BlobServiceClient.from_connection_string(
            expand_development_storage(connection), **options
        )
    from azure.identity import DefaultAzureCredential  # only the cloud path needs it

    credential = DefaultAzureCredential(managed_identity_client_id=client_id or None)
    if not service_uri:  # Settings refuses this; a hand-built call may not
        raise ConfigurationError(
            "Missing app setting AzureWebJobsStorage: set a storage connection string or "
            "AzureWebJobsStorage__blobServiceUri for identity-based access."
        )
    return BlobServiceClient(service_uri, credential=credential, **options)


#: Bounds of the client that serves API requests (:meth:`BlobStore.for_requests`): a caller is
#: waiting, so a storage outage must become a 503 in seconds, not after the SDK's default
#: exponential retries (10 tries from 15 s backoff: about 84 s seen on a stopped Azurite).
REQUEST_CONNECT_TIMEOUT_SECONDS = 2.0
REQUEST_READ_TIMEOUT_SECONDS = 4.0
REQUEST_RETRIES = 1
REQUEST_RETRY_BACKOFF_SECONDS = 1


@functools.cache
def request_service_client(
    connection: str | None, service_uri: str | None, client_id: str | None
) -> BlobServiceClient:
    """The process's one bounded ``BlobServiceClient`` for request-serving code (the API).

    Like :func:`service_client`, but each request gives up after
    :data:`REQUEST_CONNECT_TIMEOUT_SECONDS` to connect or :data:`REQUEST_READ_TIMEOUT_SECONDS`
    without data, and is retried at most :data:`REQUEST_RETRIES` time after a short linear
    backoff. Triggers keep the default client: the Functions runtime retries them anyway.
    """
    options: dict[str, Any] = {  # Any: see _connect
        "connection_timeout": REQUEST_CONNECT_TIMEOUT_SECONDS,
        "read_timeout": REQUEST_READ_TIMEOUT_SECONDS,
        "retry_policy": LinearRetry(
            backoff=REQUEST_RETRY_BACKOFF_SECONDS,
            random_jitter_range=0,
            retry_total=REQUEST_RETRIES,
        ),
    }
    return _connect(connection, service_uri, client_id, options)


def line_blocks(lines: Iterable[str], limit: int = MAX_APPEND_BLOCK_BYTES) -> Iterator[bytes]:
    """Newline-terminated UTF-8 lines, grouped into append blocks of at most ``limit`` bytes.

    A line longer than ``limit`` is a block of its own (the service refuses it, loudly).
    """
    chunk: list[bytes] = []
    size = 0
    for line in lines:
        encoded = line.encode("utf-8") + b"\n"
        if chunk and size + len(encoded) > limit:
            yield b"".join(chunk)
            chunk, size = [], 0
        chunk.append(encoded)
        size += len(encoded)
    if chunk:
        yield b"".join(chunk)


def _account(settings: Settings) -> tuple[str | None, str | None, str | None]:
    """How settings reach the storage account: connection string, service URI, client id."""
    return (
        settings.storage_connection_string,
        settings.storage_blob_service_uri,
        settings.storage_client_id,
    )


#: Per service client: the containers it has created or found (with their clients: building
#: one costs about 0.1 ms) and the append blobs it has created.
_CREATED: weakref.WeakKeyDictionary[
    BlobServiceClient, tuple[dict[str, ContainerClient], set[BlobRef]]
] = weakref.WeakKeyDictionary()


def release_error(error: BaseException) -> None:
    """Break the reference cycles a storage SDK error leaves behind, so its frames go now.

    The SDK raises an error from a frame that still holds it in a local (``map_error``), and
    chains the errors it handled; each such exception and frame form a cycle, and the frames
    keep their callers alive (in an invocation: the whole batch being judged). Refcounting
    cannot free a cycle, so without this a batch's objects wait for the cyclic GC and, in a
    process holding many detectors, make its full collections frequent and slow. Call it in an
    ``except`` block that handles an expected error (a 304, a create-only write refused).
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        traceback.clear_frames(current.__traceback__)  # skips the frames still running
        current = current.__context__ or current.__cause__


class BlobStore:
    """Reads and writes blobs of one storage account.

    Args:
        service: A ready ``BlobServiceClient`` (Azurite in tests, identity-based in the cloud).
    """

    def __init__(self, service: BlobServiceClient) -> None:
        self._service = service
        # What this service client has created, shared by every store over it: the triggers
        # build a store per invocation, and each "create if missing" is a billed request.
        known = _CREATED.get(service)
        if known is None:
            known = _CREATED[service] = ({}, set())
        self._ready, self._appendable = known

    @classmethod
    def from_settings(cls, settings: Settings) -> BlobStore:
        """Connect with a connection string, or with managed identity when only a URI is set."""
        return cls(service_client(*_account(settings)))

    @classmethod
    def for_requests(cls, settings: Settings) -> BlobStore:
        """Connect like :meth:`from_settings`, with bounded timeouts and retries (the API's)."""
        return cls(request_service_client(*_account(settings)))

    @property
    def service(self) -> BlobServiceClient:
        """The underlying service client."""
        return self._service

    def container(self, name: str) -> ContainerClient:
        """Return a client for ``name``, creating the container once per process."""
        client = self._ready.get(name)
        if client is None:
            client = self._service.get_container_client(name)
            try:
                client.create_container()
            except ResourceExistsError:
                pass
            self._ready[name] = client
        return client

    def put_bytes(
        self,
        ref: BlobRef,
        data: bytes,
        *,
        content_type: str = "application/octet-stream",
        metadata: dict[str, str] | None = None,
    ) -> None:
        """Write (overwrite) a blob."""
        self.container(ref.container).upload_blob(
            ref.name,
            data,
            overwrite=True,
            content_settings=ContentSettings(content_type=content_type),
            metadata=metadata,
        )

    def put_bytes_if_absent(
        self, ref: BlobRef, data: bytes, *, content_type: str = "application/octet-stream"
    ) -> bool:
        """Create a blob only if it does not exist yet (one request either way).

        For blobs whose name determines their content (raw batches, dead letters): a
        redelivery finds the blob there and writes nothing, so no second blob trigger fires.

        Returns:
            ``False`` when the blob already existed (nothing written).
        """
        try:
            self.container(ref.container).upload_blob(
                ref.name,
                data,
                overwrite=False,
                content_settings=ContentSettings(content_type=content_type),
            )
        except ResourceExistsError:
            return False
        return True

    def put_json(self, ref: BlobRef, document: object) -> None:
        """Write a JSON document (compact, keys in insertion order)."""
        data = json.dumps(document, separators=(",", ":"), allow_nan=False).encode()
        self.put_bytes(ref, data, content_type="application/json")

    def get_bytes(self, ref: BlobRef) -> bytes:
        """Read a blob.

        Raises:
            azure.core.exceptions.ResourceNotFoundError: No such blob.
        """
        return bytes(self.container(ref.container).download_blob(ref.name).readall())

    def get_json(self, ref: BlobRef) -> JSONValue:
        """Read a JSON blob (narrow the value, or read it through a typed reader, to use it)."""
        value: JSONValue = json.loads(self.get_bytes(ref))
        return value

    def get_json_or_none(self, ref: BlobRef) -> JSONValue | None:
        """Read a JSON blob, or return ``None`` when it does not exist."""
        try:
            return self.get_json(ref)
        except ResourceNotFoundError:
            return None

    def get_json_object(self, ref: BlobRef) -> JSONObject:
        """Read a JSON blob that holds an object (every document the app writes is one).

        Raises:
            azure.core.exceptions.ResourceNotFoundError: No such blob.
            StateError: The blob holds another JSON value.
        """
        return _json_object(ref, self.get_json(ref))

    def get_json_object_or_none(self, ref: BlobRef) -> JSONObject | None:
        """:meth:`get_json_object`, or ``None`` when the blob does not exist."""
        value = self.get_json_or_none(ref)
        return None if value is None else _json_object(ref, value)

    def get_bytes_with_etag(self, ref: BlobRef) -> tuple[bytes | None, str | None]:
        """Read a blob and its ETag (one request); ``(None, None)`` when it does not exist.

        The read half of every read-modify-write: change the bytes, then write them back with
        :meth:`put_bytes_if_unchanged` on this ETag.
        """
        try:
            downloader = self.container(ref.container).download_blob(ref.name)
            data = bytes(downloader.readall())
        except ResourceNotFoundError:
            return None, None
        return data, str(downloader.properties.etag)

    def put_bytes_if_unchanged(
        self,
        ref: BlobRef,
        data: bytes,
        etag: str | None,
        *,
        content_settings: ContentSettings | None = None,
    ) -> str | None:
        """Write a blob only if it still has ``etag`` (``None``: only if it still does not exist).

        The one conditional write of the app (model records, history days, job cursors).

        Returns:
            The blob's new ETag, or ``None`` when another writer got there first (re-read and
            retry).
        """
        blob = self.container(ref.container).get_blob_client(ref.name)
        try:
            if etag is None:
                result = blob.upload_blob(data, overwrite=False, content_settings=content_settings)
            else:
                result = blob.upload_blob(
                    data,
                    overwrite=True,
                    content_settings=content_settings,
                    etag=etag,
                    match_condition=MatchConditions.IfNotModified,
                )
        except (ResourceExistsError, ResourceModifiedError):
            return None
        return str(result["etag"])

    def get_json_with_etag(self, ref: BlobRef) -> tuple[JSONValue | None, str | None]:
        """Read a JSON blob and its ETag; ``(None, None)`` when it does not exist."""
        data, etag = self.get_bytes_with_etag(ref)
        return (None, None) if data is None else (json.loads(data), etag)

    def get_json_object_with_etag(self, ref: BlobRef) -> tuple[JSONObject | None, str | None]:
        """:meth:`get_json_with_etag` of a blob that holds an object (``StateError`` if not)."""
        value, etag = self.get_json_with_etag(ref)
        return (None, None) if value is None else (_json_object(ref, value), etag)

    def put_json_if_unchanged(self, ref: BlobRef, document: object, etag: str | None) -> bool:
        """Write a JSON blob only if it still has ``etag`` (or still does not exist).

        Returns:
            ``False`` when another writer got there first (re-read and retry).
        """
        data = json.dumps(document, separators=(",", ":"), allow_nan=False).encode()
        written = self.put_bytes_if_unchanged(ref, data, etag, content_settings=JSON_CONTENT)
        return written is not None

    def get_metadata(self, ref: BlobRef) -> dict[str, str]:
        """Return a blob's user metadata."""
        props = self.container(ref.container).get_blob_client(ref.name).get_blob_properties()
        return dict(props.metadata or {})

    def exists(self, ref: BlobRef) -> bool:
        """Whether the blob exists."""
        return bool(self.container(ref.container).get_blob_client(ref.name).exists())

    def list_names(self, container: str, prefix: str = "") -> Iterator[str]:
        """Yield blob names under ``prefix`` in lexical order."""
        for item in self.container(container).list_blobs(name_starts_with=prefix or None):
            yield str(item.name)

    def list_prefixes(self, container: str, prefix: str = "") -> list[str]:
        """The "folders" right under ``prefix`` (names up to the next ``/``), in lexical order."""
        found: list[str] = []
        for item in self.container(container).walk_blobs(
            name_starts_with=prefix or None, delimiter="/"
        ):
            name = str(item.name)
            if name.endswith("/"):
                found.append(name)
        return found

    def append(self, ref: BlobRef, data: bytes) -> None:
        """Append ``data`` (at most 4 MiB) as one atomic block to an append blob.

        The blob is created on first use (one request more, once per blob and process);
        appends of concurrent writers never interleave within a block.
        """
        blob = self.container(ref.container).get_blob_client(ref.name)
        if ref not in self._appendable:
            try:
                blob.create_append_blob(
                    content_settings=ContentSettings(content_type="application/x-ndjson"),
                    match_condition=MatchConditions.IfMissing,
                )
            except ResourceExistsError:
                pass
            self._appendable.add(ref)
        try:
            blob.append_block(data)
        except ResourceNotFoundError:  # deleted since (a retention rule): create it once more
            blob.create_append_blob(
                content_settings=ContentSettings(content_type="application/x-ndjson"),
                match_condition=MatchConditions.IfMissing,
            )
            blob.append_block(data)

    def delete(self, ref: BlobRef) -> bool:
        """Delete a blob; return whether it existed."""
        try:
            self.container(ref.container).delete_blob(ref.name, delete_snapshots="include")
        except ResourceNotFoundError:
            return False
        return True


def _json_object(ref: BlobRef, value: JSONValue) -> JSONObject:
    """``value`` (read from ``ref``) as the JSON object it must be."""
    if not isinstance(value, dict):
        raise StateError(
            f"The blob {ref.container}/{ref.name} holds a JSON {type(value).__name__}, not an "
            "object: it was not written by meterwatch (or is damaged)."
        )
    return value
