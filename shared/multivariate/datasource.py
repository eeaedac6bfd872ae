"""The one ``dataSource`` policy: which data a multivariate request (API or HTTP starter) may read.

The app's identity owns the whole storage account in Azure (the host's own secrets included),
so what it reads on a caller's behalf is narrowed to what that caller may read. A
``dataSource`` must be one of:

* a blob URL **with a SAS token** (``...?sv=...&sig=...``), in the configured account (any
  container) or another Azure Storage account (``https://ACCOUNT.blob.core.windows.net/...``):
  it is read **with that SAS**, the caller's own right to it, as the retired service read it
  (:class:`SasSource`); the app's identity is never used for it. The SAS is never stored:
  the dataset is copied into the training container under its content hash, and results and
  model records keep the URL without its query (:func:`without_sas`);
* a blob URL **without a SAS**, only in the configured **training container**: read with the
  app's identity (:class:`BlobSource`). Other containers of the account are refused;
* a plain blob name (``site/energy.zip``), read from the training container, only where the
  policy has a default container (the function app's ``POST /api/mv/train``);
* a local path (absolute, or a ``file://`` URL), only when ``API_ALLOW_LOCAL_PATHS`` is true
  (``meterwatch serve`` on a workstation).

Everything else is refused with a :class:`~shared.errors.DatasetError` (an ``InputError``, code
``InvalidDataSource``) that says what is accepted: other hosts, private or loopback addresses
that are not the configured account, other schemes, ``file://`` and local paths by default,
``..`` segments and malformed container names. A refusal never repeats a SAS token (its query
is shown as ``?<SAS>``), and no error about a dataset's content ever quotes that content.
"""

from __future__ import annotations

import io
import ipaddress
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import SplitResult, parse_qs, quote, unquote, urlsplit

from azure.core.exceptions import ResourceNotFoundError

from shared.errors import ConfigurationError, DatasetError
from shared.multivariate.ids import is_dataset_name
from shared.storage.client import BlobRef, BlobStore

INVALID_DATA_SOURCE = "InvalidDataSource"
#: Longest accepted ``dataSource`` (a SAS URL is a few hundred characters).
MAX_URL_LENGTH = 4096
_CONTAINER = re.compile(r"^(?=.{3,63}$)[a-z0-9]+(-[a-z0-9]+)*$")
_DEFAULT_PORTS = {"http": 80, "https": 443}
#: Hosts of other Azure Storage accounts a SAS URL may name (public cloud blob endpoints).
_AZURE_BLOB_HOST = re.compile(r"^[a-z0-9]{3,24}\.blob\.core\.windows\.net$")


@dataclass(frozen=True)
class BlobSource:
    """A blob (or a blob folder, when ``name`` ends with ``/``) in the configured account."""

    container: str
    name: str

    @property
    def ref(self) -> BlobRef:
        """The blob's reference for :class:`~shared.storage.client.BlobStore`."""
        return BlobRef(self.container, self.name)

    @property
    def is_folder(self) -> bool:
        """Whether the URL names a folder (a prefix) rather than one blob."""
        return self.name.endswith("/")


@dataclass(frozen=True)
class SasSource:
    """A blob URL carrying a SAS token: read with that token, never with the app's identity."""

    url: str
    container: str
    name: str

    @property
    def public_url(self) -> str:
        """The URL without its query (what results and records may keep)."""
        return without_sas(self.url)


@dataclass(frozen=True)
class LocalSource:
    """A file or folder on the server's disk (only with ``API_ALLOW_LOCAL_PATHS``)."""

    path: Path


DataSource = BlobSource | SasSource | LocalSource


def without_sas(value: str) -> str:
    """A ``dataSource`` with any query (a SAS token) and fragment removed."""
    text = value.strip()
    for mark in ("?", "#"):
        text = text.split(mark, 1)[0]
    return text


def shown(value: str) -> str:
    """A ``dataSource`` as messages may show it: query replaced, at most 200 characters."""
    text = value.strip()
    base = without_sas(text)
    text = base + ("?<SAS>" if len(base) < len(text) else "")
    return text if len(text) <= 200 else text[:200] + "..."


def has_sas(url: SplitResult) -> bool:
    """Whether a URL's query carries a SAS signature (``sig=``)."""
    try:
        query = parse_qs(url.query, keep_blank_values=True)
    except ValueError:
        return False
    return any(key.lower() == "sig" and any(v for v in values) for key, values in query.items())


def _refuse(value: str, why: str, accepted: str) -> DatasetError:
    return DatasetError(
        f"dataSource {shown(value)!r} is refused: {why}. {accepted}", INVALID_DATA_SOURCE
    )


class DataSourcePolicy:
    """Decides what a ``dataSource`` may point at.

    Args:
        blob_endpoint: The configured account's blob endpoint, e.g.
            ``https://acct.blob.core.windows.net/`` or
            ``http://127.0.0.1:10000/devstoreaccount1/``.
        allow_local_paths: Whether local paths (and ``file://`` URLs) are accepted.
        default_container: Container of plain blob names (``site/energy.zip``); ``None``: plain
            names are refused (only URLs of the account name a blob).
        training_container: The one container read with the app's identity (blob URLs
            without a SAS elsewhere are refused); ``None`` with no ``default_container``: any
            container of the account (for tests of the URL rules only).

    Raises:
        ConfigurationError: ``InvalidBlobEndpoint``: the endpoint is not an http(s) URL.
    """

    def __init__(
        self,
        blob_endpoint: str,
        *,
        allow_local_paths: bool = False,
        default_container: str | None = None,
        training_container: str | None = None,
    ) -> None:
        endpoint = urlsplit(blob_endpoint)
        if endpoint.scheme not in _DEFAULT_PORTS or not endpoint.hostname:
            raise ConfigurationError(
                f"The storage account's blob endpoint {blob_endpoint!r} is not an http(s) URL; "
                "check the storage connection setting.",
                "InvalidBlobEndpoint",
            )
        self._scheme = endpoint.scheme
        self._host = endpoint.hostname.lower()
        self._port = endpoint.port or _DEFAULT_PORTS[endpoint.scheme]
        self._base_path = endpoint.path.rstrip("/")  # "/devstoreaccount1" on Azurite, "" else
        self.allow_local_paths = allow_local_paths
        self.default_container = default_container
        self.training_container = training_container or default_container
        self.endpoint = f"{endpoint.scheme}://{endpoint.netloc}{self._base_path}/"

    @property
    def accepted(self) -> str:
        """One sentence saying what is accepted (ends every refusal message)."""
        local = (
            " or an absolute local path"
            if self.allow_local_paths
            else " (local paths only when API_ALLOW_LOCAL_PATHS=true)"
        )
        plain = (
            f", a blob name in the container {self.default_container}"
            if self.default_container is not None
            else ""
        )
        where = (
            f"{self.endpoint}{self.training_container}/NAME"
            if self.training_container
            else f"{self.endpoint}CONTAINER/NAME"
        )
        return (
            f"Use a blob URL with a SAS token that grants read, or a blob URL in the training "
            f"container, {where}{plain}{local}."
        )

    def resolve(self, value: object) -> DataSource:
        """Check a ``dataSource`` and say where it points.

        Args:
            value: The request's ``dataSource`` field.

        Returns:
            A :class:`SasSource` (read with its SAS), a :class:`BlobSource` in the training
            container (read with the app's identity), or a :class:`LocalSource`.

        Raises:
            DatasetError: ``InvalidDataSource``: the value is not accepted (the message says why
                and what is).
        """
        if not isinstance(value, str) or not value.strip():
            raise DatasetError(
                f"dataSource must be a non-empty string. {self.accepted}", INVALID_DATA_SOURCE
            )
        text = value.strip()
        if len(text) > MAX_URL_LENGTH:
            raise _refuse(text, f"longer than {MAX_URL_LENGTH} characters", self.accepted)
        if any(ord(c) < 32 for c in text):
            raise _refuse(text, "it contains control characters", self.accepted)
        if _looks_like_local_path(text):
            return self._local(text, text)
        try:
            url = urlsplit(text)
            port = url.port
        except ValueError as exc:
            raise _refuse(text, f"it is not a valid URL ({exc})", self.accepted) from exc
        scheme = url.scheme.lower()
        if not scheme and self.default_container is not None:
            return self._plain(text)
        if scheme == "file":
            if url.netloc not in ("", "localhost"):
                raise _refuse(text, "file URLs to other hosts are not supported", self.accepted)
            return self._local(text, unquote(url.path))
        if scheme not in _DEFAULT_PORTS:
            raise _refuse(
                text, f"the scheme {url.scheme or '(none)'!r} is not supported", self.accepted
            )
        host = (url.hostname or "").lower()
        if url.username is not None or url.password is not None:
            raise _refuse(text, "URLs with user names or passwords are not accepted", self.accepted)
        ours = host == self._host and (port or _DEFAULT_PORTS[scheme]) == self._port
        if has_sas(url):
            if not ours and not (
                scheme == "https" and port in (None, 443) and _AZURE_BLOB_HOST.match(host)
            ):
                raise _refuse(text, _why_other_host(host), self.accepted)
            if ours and scheme != self._scheme and self._scheme == "https":
                raise _refuse(
                    text, "the storage account is only reachable over https", self.accepted
                )
            base = self._base_path if ours else ""
            blob = self._blob(text, url, base)
            if blob.is_folder:
                raise _refuse(text, "a SAS URL must name one blob (.zip or .csv)", self.accepted)
            return SasSource(text, blob.container, blob.name)
        if not ours:
            raise _refuse(text, _why_other_host(host), self.accepted)
        if scheme != self._scheme and self._scheme == "https":
            raise _refuse(text, "the storage account is only reachable over https", self.accepted)
        blob = self._blob(text, url, self._base_path)
        if self.training_container and blob.container != self.training_container:
            raise _refuse(
                text,
                f"without a SAS token only the training container {self.training_container} is "
                "read with the app's identity (add a SAS that grants read, or upload there)",
                self.accepted,
            )
        return blob

    def _blob(self, text: str, url: SplitResult, base_path: str) -> BlobSource:
        path = unquote(url.path)
        if base_path:
            if not (path == base_path or path.startswith(base_path + "/")):
                raise _refuse(text, "it is not in the configured storage account", self.accepted)
            path = path[len(base_path) :]
        parts = path.lstrip("/").split("/", 1)
        container = parts[0]
        name = parts[1] if len(parts) > 1 else ""
        if not _CONTAINER.match(container):
            raise _refuse(text, f"{container!r} is not a valid container name", self.accepted)
        if not name or name == "/":
            raise _refuse(text, "it names a container but no blob", self.accepted)
        segments = name.split("/")
        if any(s in (".", "..") for s in segments) or "\\" in name:
            raise _refuse(
                text, "blob names with '.' or '..' segments are not accepted", self.accepted
            )
        if len(name) > 1024:
            raise _refuse(text, "the blob name is longer than 1,024 characters", self.accepted)
        return BlobSource(container, name)

    def dataset_blob(self, value: object) -> BlobRef:
        """Resolve a ``dataSource`` that must name one dataset blob (``.zip`` or ``.csv``).

        Raises:
            DatasetError: ``InvalidDataSource`` (refused, or not one blob) or
                ``UnsupportedFormat`` (neither ``.zip`` nor ``.csv``).
        """
        source = self.resolve(value)
        if isinstance(source, LocalSource):
            raise _refuse(str(value), "this request reads blobs only", self.accepted)
        if isinstance(source, SasSource):
            raise _refuse(
                str(value), "this request reads the training container only", self.accepted
            )
        if not is_dataset_name(source.name):
            raise DatasetError(
                f"dataSource {shown(str(value))!r}: upload a .zip (MultiTable) or a .csv "
                "(OneTable).",
                "UnsupportedFormat",
            )
        return source.ref

    def _plain(self, text: str) -> BlobSource:
        segments = [segment for segment in text.split("/") if segment]
        if not segments or ".." in segments:
            raise _refuse(text, "it does not name a blob (CONTAINER/NAME)", self.accepted)
        return BlobSource(str(self.default_container), text)

    def _local(self, text: str, raw_path: str) -> LocalSource:
        if not self.allow_local_paths:
            raise _refuse(
                text, "local paths and file URLs are not allowed on this server", self.accepted
            )
        path = Path(raw_path)
        if not path.is_absolute():
            raise _refuse(text, "local paths must be absolute", self.accepted)
        if any(part == ".." for part in PurePosixPath(raw_path).parts):
            raise _refuse(text, "local paths with '..' are not accepted", self.accepted)
        resolved = path.resolve()
        if not resolved.exists():
            raise _refuse(text, f"{resolved} does not exist on the server", self.accepted)
        return LocalSource(resolved)


def _looks_like_local_path(text: str) -> bool:
    return text.startswith(("/", "\\", "~", "./", "../")) or bool(
        re.match(r"^[A-Za-z]:[\\/]", text)
    )


def _why_other_host(host: str) -> str:
    if not host:
        return "it has no host"
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        if host == "localhost" or host.endswith((".localhost", ".local", ".internal")):
            return f"{host} is a private address, not the configured storage account"
        return f"{host} is not the configured storage account (the server fetches no other URL)"
    if (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_reserved
        or address.is_unspecified
        or address.is_multicast
    ):
        return f"{host} is a private address, not the configured storage account"
    return f"{host} is not the configured storage account (the server fetches no other URL)"


def read_with_sas(source: SasSource, limit: int) -> bytes:
    """A SAS blob's bytes, read with the SAS alone: the caller's right, never the app's identity.

    Bounded like the API's storage client (short timeouts, one retry).

    Raises:
        DatasetError: ``DataSourceNotFound``, ``TooLarge``, or ``InvalidDataSource`` when the
            SAS does not grant read; the message shows the URL without its SAS.
    """
    from azure.core.exceptions import ClientAuthenticationError, HttpResponseError
    from azure.storage.blob import BlobClient, LinearRetry

    from shared.storage.client import (
        REQUEST_CONNECT_TIMEOUT_SECONDS,
        REQUEST_READ_TIMEOUT_SECONDS,
    )

    client = BlobClient.from_blob_url(
        source.url,
        connection_timeout=REQUEST_CONNECT_TIMEOUT_SECONDS,
        read_timeout=REQUEST_READ_TIMEOUT_SECONDS,
        retry_policy=LinearRetry(backoff=1, random_jitter_range=0, retry_total=1),
    )
    where = shown(source.url)
    try:
        size = int(client.get_blob_properties().size)
        if size > limit:
            raise too_large(without_sas(source.url), size, limit)
        return bytes(client.download_blob().readall())
    except ResourceNotFoundError as exc:
        raise DatasetError(
            f"dataSource {where!r} does not exist; check the blob name.", "DataSourceNotFound"
        ) from exc
    except (ClientAuthenticationError, HttpResponseError) as exc:
        status = getattr(exc, "status_code", None)
        if status not in (401, 403):
            raise
        raise DatasetError(
            f"dataSource {where!r} is refused: its SAS token does not grant read of that blob "
            "(expired, wrong signature or no 'r' permission). Create a new SAS with read "
            "permission.",
            "InvalidDataSource",
        ) from exc


def blob_url(store: BlobStore, ref: BlobRef) -> str:
    """The URL of a blob in the store's account (the v1.1 ``dataSource`` of a model)."""
    base = str(store.service.url).rstrip("/")
    return f"{base}/{quote(ref.container)}/{quote(ref.name)}"


#: Most CSV files (variables) of a dataset folder (v1.1: 300).
MAX_VARIABLES = 300


def read_local(path: Path, limit: int) -> tuple[str, bytes]:
    """A local dataset (a .zip, a .csv, or a folder of CSVs packed as a zip): name and bytes."""
    if path.is_dir():
        members: list[tuple[str, bytes]] = []
        total = 0
        for item in sorted(path.glob("*.csv")):
            total += item.stat().st_size
            if total > limit:
                raise too_large(str(path), total, limit)
            members.append((item.name, item.read_bytes()))
        if not members:
            raise DatasetError(f"The folder {path} holds no CSV files.", "DataSourceNotFound")
        return f"{path.name or 'dataset'}.zip", zip_members(members)
    if not is_dataset_name(path.name):
        raise DatasetError(
            f"{path} is not a .zip or .csv dataset (or a folder of CSVs).", "UnsupportedFormat"
        )
    size = path.stat().st_size
    if size > limit:
        raise too_large(str(path), size, limit)
    return path.name, path.read_bytes()


def zip_members(members: list[tuple[str, bytes]]) -> bytes:
    """A MultiTable zip of ``(name, CSV bytes)`` members (fixed dates: same bytes each time)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members:
            entry = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            entry.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(entry, data)
    return buffer.getvalue()


def too_large(what: str, size: int, limit: int) -> DatasetError:
    """The ``TooLarge`` error of a dataset over the upload limit."""
    return DatasetError(
        f"{what} is {size:,} bytes; the limit is {limit:,} (MV_MAX_UPLOAD_MB).", "TooLarge"
    )
