"""Datasets in the account: the one dataset reader, and a ``dataSource`` made a dataset blob.

* :class:`DatasetReader` reads a dataset blob: its size against the upload limit, its bytes, its
  content hash against the one the request saw, its series. Training, the detect step and the
  API's batch detection all read through it.
* :class:`DatasetMaterializer` resolves a request's ``dataSource`` with the one data-source
  policy (:class:`~shared.multivariate.datasource.DataSourcePolicy`) and, where the data is not
  already a dataset blob of the training container, copies or packs it there, so an
  orchestration reads every dataset from a blob with no SAS to keep.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

import pandas as pd
from azure.core.exceptions import ResourceNotFoundError

from shared.errors import DatasetError
from shared.multivariate.datasets import MIB
from shared.multivariate.datasource import (
    MAX_VARIABLES,
    BlobSource,
    DataSourcePolicy,
    LocalSource,
    SasSource,
    read_local,
    read_with_sas,
    shown,
    too_large,
    zip_members,
)
from shared.multivariate.ids import content_hash, is_dataset_name
from shared.multivariate.training import dataset_limits, read_dataset
from shared.settings import Settings
from shared.storage.client import BlobRef, BlobStore
from shared.storage.names import materialized_dataset_name


class DatasetReader:
    """Reads dataset blobs: size limit, bytes, content hash, series.

    Args:
        store: The blob store.
        settings: App settings (``MV_MAX_UPLOAD_MB``); ``None``: the engine's limits.
    """

    def __init__(self, store: BlobStore, settings: Settings | None = None) -> None:
        self.store = store
        self.limits = dataset_limits(settings)

    def read_bytes(self, ref: BlobRef, sha256: str = "") -> bytes:
        """The blob's bytes, checked against the upload limit and the expected hash.

        Raises:
            DatasetError: ``DataSourceNotFound`` (no such blob), ``TooLarge`` or
                ``DataSourceChanged`` (the content hash is not ``sha256``).
        """
        blob = self.store.service.get_blob_client(ref.container, ref.name)
        try:
            size = int(blob.get_blob_properties().size)
            if size > self.limits.max_zip_bytes:
                raise too_large(str(ref), size, self.limits.max_zip_bytes)
            data = self.store.get_bytes(ref)
        except ResourceNotFoundError as exc:
            raise DatasetError(
                f"The dataset {ref} does not exist (deleted after it was sent?); upload it or "
                "send the request again.",
                "DataSourceNotFound",
            ) from exc
        if sha256 and content_hash(data) != sha256.lower():
            raise DatasetError(
                f"{ref} changed after it was sent; a newer upload is trained by its own run, a "
                "detection must be requested again.",
                "DataSourceChanged",
            )
        return data

    def read(
        self, ref: BlobRef, sha256: str = "", date_format: str = "auto"
    ) -> dict[str, pd.Series]:
        """The blob's raw series per variable (:meth:`read_bytes`, then parsed).

        ``date_format`` is the training spec's ``dateFormat`` (how numeric dates read).

        Raises:
            DatasetError: As :meth:`read_bytes`, or the dataset cannot be used (coded).
        """
        return read_dataset(self.read_bytes(ref, sha256), ref.name, self.limits, date_format)


@dataclass(frozen=True)
class Materialized:
    """A dataset the service resolved: its blob, content hash and bytes."""

    ref: BlobRef
    sha256: str
    data: bytes


class DatasetMaterializer:
    """Turns a request's ``dataSource`` into a dataset blob of this account.

    Args:
        settings: App settings (training container, upload limit).
        store: The blob store.
        reader: Reads a dataset blob that is already in the account.
        policy: Which data sources are accepted and what they resolve to.
    """

    def __init__(
        self,
        settings: Settings,
        store: BlobStore,
        reader: DatasetReader,
        policy: DataSourcePolicy,
    ) -> None:
        self.settings = settings
        self.store = store
        self.reader = reader
        self.policy = policy

    def materialize(self, value: object) -> Materialized:
        """Resolve a ``dataSource`` to a dataset blob of this account and read it.

        Blob URLs of the training container are read where they are; a SAS URL is read with
        its SAS; a SAS dataset, a blob folder (MultiTable as one CSV per variable) and a local
        path (only with ``API_ALLOW_LOCAL_PATHS``) are copied or packed into the training
        container (:func:`~shared.storage.names.materialized_dataset_name`), so the
        orchestration reads every dataset from a blob with no SAS to keep.

        Raises:
            InputError: ``InvalidDataSource`` (refused by the policy, or a SAS that does not
                grant read), ``DataSourceNotFound``, ``UnsupportedFormat`` or ``TooLarge``.
        """
        source = self.policy.resolve(value)
        limit = self.settings.mv_max_upload_mb * MIB
        if isinstance(source, LocalSource):
            return self._store_copy(*read_local(source.path, limit))
        if isinstance(source, SasSource):
            if not is_dataset_name(source.name):
                raise DatasetError(
                    f"dataSource {shown(source.url)!r}: point it at a .zip (one "
                    "timestamp,value CSV per variable) or a .csv (a timestamp column and one "
                    "column per variable).",
                    "UnsupportedFormat",
                )
            name = PurePosixPath(source.name).name
            return self._store_copy(name, read_with_sas(source, limit))
        if source.is_folder:
            return self._store_copy(*self._pack_folder(source, limit))
        if not is_dataset_name(source.name):
            raise DatasetError(
                f"dataSource names {source.name!r}: point it at a .zip (one timestamp,value CSV "
                "per variable), a .csv (a timestamp column and one column per variable) or a "
                "folder of CSVs (ending with /).",
                "UnsupportedFormat",
            )
        data = self.reader.read_bytes(source.ref)
        return Materialized(source.ref, content_hash(data), data)

    def _store_copy(self, name: str, data: bytes) -> Materialized:
        digest = content_hash(data)
        ref = BlobRef(self.settings.training_container, materialized_dataset_name(digest, name))
        if not self.store.exists(ref):
            self.store.put_bytes(ref, data, content_type="application/octet-stream")
        return Materialized(ref, digest, data)

    def _pack_folder(self, source: BlobSource, limit: int) -> tuple[str, bytes]:
        members: list[tuple[str, bytes]] = []
        total = 0
        for name in self.store.list_names(source.container, source.name):
            relative = name[len(source.name) :]
            if "/" in relative or not relative.lower().endswith(".csv"):
                continue
            if len(members) >= MAX_VARIABLES:
                raise DatasetError(
                    f"The folder {source.container}/{source.name} holds more than "
                    f"{MAX_VARIABLES} CSV files (one per variable).",
                    "TooManyVariables",
                )
            data = self.store.get_bytes(BlobRef(source.container, name))
            total += len(data)
            if total > limit:
                raise too_large(f"{source.container}/{source.name}", total, limit)
            members.append((relative, data))
        if not members:
            raise DatasetError(
                f"The folder {source.container}/{source.name} holds no CSV files; put one "
                "timestamp,value CSV per variable in it.",
                "DataSourceNotFound",
            )
        folder = PurePosixPath(source.name.rstrip("/")).name or "dataset"
        return f"{folder}.zip", zip_members(members)
