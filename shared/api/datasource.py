"""The ``dataSource`` policy: which data the API may read for a multivariate request.

The server never fetches an arbitrary URL. A ``dataSource`` must be one of:

* a blob URL in the configured storage account (``https://ACCOUNT.blob.core.windows.net/
  CONTAINER/NAME`` in the cloud, ``http://127.0.0.1:PORT/devstoreaccount1/CONTAINER/NAME`` on
  Azurite), with or without a SAS query: the URL is only *parsed* into a container and a blob
  name, which are then read through the app's own storage client (its identity or connection
  string). Nothing is ever requested from the URL itself;
* a local path (absolute, or a ``file://`` URL), and only when ``API_ALLOW_LOCAL_PATHS`` is true
  (for ``meterwatch serve`` on a workstation).

Everything else is refused with a :class:`~shared.errors.InputError` (code
``InvalidDataSource``) that says what is accepted: other hosts, private or loopback addresses
that are not the configured account, other schemes, ``file://`` and local paths by default,
``..`` segments and malformed container names.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import SplitResult, unquote, urlsplit

from shared.errors import InputError
from shared.storage.client import BlobRef

INVALID_DATA_SOURCE = "InvalidDataSource"
#: Longest accepted ``dataSource`` (a SAS URL is a few hundred characters).
MAX_URL_LENGTH = 4096
_CONTAINER = re.compile(r"^(?=.{3,63}$)[a-z0-9]+(-[a-z0-9]+)*$")
_DEFAULT_PORTS = {"http": 80, "https": 443}


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
class LocalSource:
    """A file or folder on the server's disk (only with ``API_ALLOW_LOCAL_PATHS``)."""

    path: Path


DataSource = BlobSource | LocalSource


def _refuse(value: str, why: str, accepted: str) -> InputError:
    shown = value if len(value) <= 200 else value[:200] + "..."
    return InputError(f"dataSource {shown!r} is refused: {why}. {accepted}", INVALID_DATA_SOURCE)


class DataSourcePolicy:
    """Decides what a ``dataSource`` may point at.

    Args:
        blob_endpoint: The configured account's blob endpoint, e.g.
            ``https://acct.blob.core.windows.net/`` or
            ``http://127.0.0.1:10000/devstoreaccount1/``.
        allow_local_paths: Whether local paths (and ``file://`` URLs) are accepted.
    """

    def __init__(self, blob_endpoint: str, *, allow_local_paths: bool = False) -> None:
        endpoint = urlsplit(blob_endpoint)
        if endpoint.scheme not in _DEFAULT_PORTS or not endpoint.hostname:
            raise ValueError(f"not a blob endpoint: {blob_endpoint!r}")
        self._scheme = endpoint.scheme
        self._host = endpoint.hostname.lower()
        self._port = endpoint.port or _DEFAULT_PORTS[endpoint.scheme]
        self._base_path = endpoint.path.rstrip("/")  # "/devstoreaccount1" on Azurite, "" else
        self.allow_local_paths = allow_local_paths
        self.endpoint = f"{endpoint.scheme}://{endpoint.netloc}{self._base_path}/"

    @property
    def accepted(self) -> str:
        """One sentence saying what is accepted (ends every refusal message)."""
        local = (
            " or an absolute local path"
            if self.allow_local_paths
            else " (local paths only when API_ALLOW_LOCAL_PATHS=true)"
        )
        return (
            f"Use a blob URL in the configured storage account, {self.endpoint}CONTAINER/NAME"
            f"{local}."
        )

    def resolve(self, value: Any) -> DataSource:
        """Check a ``dataSource`` and say where it points.

        Args:
            value: The request's ``dataSource`` field.

        Returns:
            A :class:`BlobSource` in the configured account, or a :class:`LocalSource`.

        Raises:
            InputError: ``InvalidDataSource``: the value is not accepted (the message says why
                and what is).
        """
        if not isinstance(value, str) or not value.strip():
            raise InputError(
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
        if host != self._host or (port or _DEFAULT_PORTS[scheme]) != self._port:
            raise _refuse(text, _why_other_host(host), self.accepted)
        if scheme != self._scheme and self._scheme == "https":
            raise _refuse(text, "the storage account is only reachable over https", self.accepted)
        return self._blob(text, url)

    def _blob(self, text: str, url: SplitResult) -> BlobSource:
        path = unquote(url.path)
        if self._base_path:
            if not (path == self._base_path or path.startswith(self._base_path + "/")):
                raise _refuse(text, "it is not in the configured storage account", self.accepted)
            path = path[len(self._base_path) :]
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
