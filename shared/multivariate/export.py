"""The portable model zip: ``model.json`` (the v1.1 model object) and ``model.mvm`` (the engine).

``meterwatch detect-mv --model`` loads it with no storage account; the export activity writes
it for a READY model.
"""

from __future__ import annotations

import io
import json
import logging
import uuid
import zipfile
from dataclasses import dataclass
from datetime import datetime
from typing import TypedDict

from shared.engine.multivariate import (
    MultivariateModel,
)
from shared.errors import DatasetError, ModelError
from shared.jsontypes import JSONObject
from shared.multivariate.datasets import MIB, AlignPolicy
from shared.multivariate.documents import ModelDocument
from shared.multivariate.statuses import READY
from shared.multivariate.training import TrainedModel, diagnostics_info, model_info
from shared.timefmt import format_time, utc_now

logger = logging.getLogger(__name__)

EXPORT_FORMAT = "meterwatch-multivariate-export"
EXPORT_VERSION = 1
_EXPORT_MODEL = "model.mvm"
_EXPORT_INFO = "model.json"
_MAX_EXPORT_INFO_BYTES = 16 * MIB
_MAX_EXPORT_MODEL_BYTES = 512 * MIB


class ExportManifest(TypedDict):
    """``model.json`` of an export zip: the format, its version and the v1.1 model object."""

    format: str
    formatVersion: int
    model: ModelDocument


@dataclass(frozen=True)
class ExportedModel:
    """A model loaded from an export zip.

    Attributes:
        model: The engine model.
        model_object: The v1.1 model object it was exported with (``{}`` for a bare engine file).
        align_policy: The align policy of training (detection aligns the same way).
    """

    model: MultivariateModel
    model_object: JSONObject
    align_policy: AlignPolicy


def export_model(engine_bytes: bytes, model_object: ModelDocument) -> bytes:
    """The portable model zip: ``model.json`` (the v1.1 model object) and ``model.mvm``.

    ``meterwatch detect-mv --model`` loads it with no storage account. The bytes are the same
    for the same model (fixed member order and dates).
    """
    info: ExportManifest = {
        "format": EXPORT_FORMAT,
        "formatVersion": EXPORT_VERSION,
        "model": model_object.copy(),
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for member, payload in (
            (_EXPORT_INFO, json.dumps(info, indent=2, sort_keys=True).encode()),
            (_EXPORT_MODEL, engine_bytes),
        ):
            entry = zipfile.ZipInfo(member, date_time=(1980, 1, 1, 0, 0, 0))
            entry.compress_type = zipfile.ZIP_DEFLATED
            entry.external_attr = 0o644 << 16
            archive.writestr(entry, payload)
    return buffer.getvalue()


def load_export(data: bytes) -> ExportedModel:
    """Load an export zip (or a bare engine file from ``MultivariateModel.to_bytes``).

    Raises:
        ModelError: ``InvalidModel`` when the bytes are neither.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = {info.filename: info for info in archive.infolist()}
            if _EXPORT_MODEL not in names:
                # A bare engine file: the engine checks it; detection aligns with the defaults.
                return ExportedModel(MultivariateModel.from_bytes(data), {}, AlignPolicy())
            info_entry = names.get(_EXPORT_INFO)
            if (
                info_entry is None
                or info_entry.file_size > _MAX_EXPORT_INFO_BYTES
                or names[_EXPORT_MODEL].file_size > _MAX_EXPORT_MODEL_BYTES
            ):
                raise ModelError(
                    "The model zip lacks model.json or is too large; export it again with "
                    "'meterwatch train'.",
                    "InvalidModel",
                )
            document = json.loads(archive.read(_EXPORT_INFO).decode("utf-8"))
            engine_bytes = archive.read(_EXPORT_MODEL)
    except ModelError:
        raise
    except (zipfile.BadZipFile, ValueError, KeyError, OSError, EOFError) as exc:
        raise ModelError(
            f"Not a meterwatch model zip ({exc}); export one with 'meterwatch train'.",
            "InvalidModel",
        ) from exc
    if not isinstance(document, dict) or document.get("format") != EXPORT_FORMAT:
        raise ModelError("model.json is not a meterwatch model export.", "InvalidModel")
    if document.get("formatVersion") != EXPORT_VERSION:
        raise ModelError(
            f"Export format version {document.get('formatVersion')!r} is not supported "
            f"(this meterwatch reads version {EXPORT_VERSION}).",
            "InvalidModel",
        )
    model_object = document.get("model") or {}
    try:
        policy = AlignPolicy.from_v11((model_object.get("modelInfo") or {}).get("alignPolicy"))
    except DatasetError as exc:
        raise ModelError(
            f"model.json has an invalid alignPolicy ({exc.message}).", "InvalidModel"
        ) from exc
    return ExportedModel(MultivariateModel.from_bytes(engine_bytes), model_object, policy)


def local_model_object(
    trained: TrainedModel, data_source: str, name: str, sha256: str, now: datetime | None = None
) -> ModelDocument:
    """The v1.1 model object of a model trained outside the registry (the CLI)."""
    moment = format_time(now or utc_now())
    info = model_info(data_source, name, trained.spec, trained.windows)
    info["status"] = READY
    info["errors"] = []
    info["diagnosticsInfo"] = diagnostics_info(trained.model, trained.seconds)
    key = f"{sha256}\n{json.dumps(trained.spec.to_dict(), sort_keys=True)}"
    return {
        "modelId": str(uuid.uuid5(uuid.NAMESPACE_URL, "meterwatch:mv-model:" + key)),
        "createdTime": moment,
        "lastUpdatedTime": moment,
        "modelInfo": info,
    }
