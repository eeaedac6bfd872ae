"""The multivariate model registry: v1.1 model objects, artifacts, exports and batch results.

Layout in the models container (one folder per model, named by its id)::

    {modelId}/model.json     the v1.1 model object, plus meterwatch's own bookkeeping
    {modelId}/model.mvm      the engine's bytes (MultivariateModel.to_bytes), once READY
    {modelId}/export.zip     the portable export (model.json + the engine's bytes)
    {modelId}/summary.json   the training run's summary

and in the results container::

    multivariate/{resultId}.json   the v1.1 batch detection result
    multivariate/{resultId}.csv    the same, one row per timestamp

``model.json`` holds ``{"model": <v1.1 object>, "meterwatch": <bookkeeping>}``;
:meth:`ModelRegistry.get` returns only the v1.1 object (``modelId``, ``createdTime``,
``lastUpdatedTime``, ``modelInfo`` with ``status``, ``errors`` and ``diagnosticsInfo``).
Every change is a read-modify-write guarded by the blob's ETag, so concurrent workers never
lose each other's updates, and status changes follow CREATED → RUNNING → READY | FAILED (a
RUNNING model may go back to CREATED when its worker gives the training up to be retried).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import cast

from shared.errors import (
    ModelError,
    ModelNotFoundError,
    ModelNotReadyError,
    ResultNotFoundError,
    StateError,
)
from shared.jsontypes import JSONObject
from shared.multivariate.documents import (
    Bookkeeping,
    BookkeepingChange,
    DetectionResult,
    DiagnosticsInfo,
    ModelDocument,
    ModelInfo,
    ModelList,
    StoredModel,
)
from shared.multivariate.statuses import CREATED, FAILED, MODEL_STATUSES, READY, RUNNING
from shared.settings import Settings
from shared.storage.client import BlobRef, BlobStore
from shared.storage.names import (
    MODEL_ARTIFACT,
    MODEL_EXPORT,
    MODEL_OBJECT,
    MODEL_SUMMARY,
    model_blob_name,
    model_prefix,
    multivariate_result_name,
)
from shared.timefmt import format_time, utc_now

logger = logging.getLogger(__name__)

#: Which status may follow which (READY and FAILED are final).
TRANSITIONS: dict[str, frozenset[str]] = {
    CREATED: frozenset({RUNNING, FAILED}),
    RUNNING: frozenset({RUNNING, READY, FAILED, CREATED}),
    READY: frozenset(),
    FAILED: frozenset(),
}
#: v1.1 ``maxCount`` of a model list: how many models an account may hold.
MAX_MODELS = 300
#: Most models one list page returns.
MAX_PAGE = 100
_UPDATE_ATTEMPTS = 10


def empty_diagnostics() -> DiagnosticsInfo:
    """The v1.1 ``diagnosticsInfo`` of a model that has not been trained."""
    return {
        "modelState": {
            "epochIds": [],
            "trainLosses": [],
            "validationLosses": [],
            "latenciesInSeconds": [],
        },
        "variableStates": [],
    }


@dataclass
class ModelRecord:
    """A stored model: the v1.1 object, meterwatch's bookkeeping and the blob's ETag.

    Attributes:
        model: The v1.1 model object.
        internal: Bookkeeping that is not part of the v1.1 contract (data source blob, spec,
            resolved windows, training lease, result ids).
        etag: ETag of the stored blob (``None`` before it is stored).
    """

    model: ModelDocument
    internal: Bookkeeping = field(default_factory=lambda: Bookkeeping())
    etag: str | None = None

    @property
    def model_id(self) -> str:
        """The model id."""
        return str(self.model["modelId"])

    @property
    def info(self) -> ModelInfo:
        """The v1.1 ``modelInfo``."""
        return self.model["modelInfo"]

    @property
    def status(self) -> str:
        """CREATED, RUNNING, READY or FAILED."""
        return str(self.info["status"])

    def to_document(self) -> StoredModel:
        """The stored JSON document."""
        return {"model": self.model, "meterwatch": self.internal}


@dataclass(frozen=True)
class ModelPage:
    """One page of the model list.

    Attributes:
        models: v1.1 model objects, oldest first.
        current_count: How many models exist.
        max_count: How many models may exist (v1.1 ``maxCount``).
        next_skip: ``skip`` of the next page, or ``None`` on the last page.
    """

    models: list[ModelDocument]
    current_count: int
    max_count: int
    next_skip: int | None

    def to_v11(self, next_link: str | None = None) -> ModelList:
        """The v1.1 list response (``nextLink`` is built by the caller, who knows the URL)."""
        return {
            "models": self.models,
            "currentCount": self.current_count,
            "maxCount": self.max_count,
            "nextLink": next_link or "",
        }


class ModelRegistry:
    """Models, artifacts and batch results in blob storage.

    Args:
        store: The blob store.
        models_container: Container of model folders.
        results_container: Container of batch detection results.
        clock: Returns the current time (tests pass a fixed clock).
    """

    def __init__(
        self,
        store: BlobStore,
        models_container: str,
        results_container: str,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.store = store
        self.models_container = models_container
        self.results_container = results_container
        self.clock = clock

    @classmethod
    def from_settings(
        cls, store: BlobStore, settings: Settings, clock: Callable[[], datetime] = utc_now
    ) -> ModelRegistry:
        """A registry on the containers named by the settings."""
        return cls(store, settings.models_container, settings.results_container, clock)

    # ------------------------------------------------------------------ names

    def model_ref(self, model_id: str) -> BlobRef:
        """Blob of the model object."""
        return BlobRef(self.models_container, model_blob_name(_checked_id(model_id), MODEL_OBJECT))

    def artifact_ref(self, model_id: str) -> BlobRef:
        """Blob of the engine's bytes."""
        return BlobRef(
            self.models_container, model_blob_name(_checked_id(model_id), MODEL_ARTIFACT)
        )

    def export_ref(self, model_id: str) -> BlobRef:
        """Blob of the portable export zip."""
        return BlobRef(self.models_container, model_blob_name(_checked_id(model_id), MODEL_EXPORT))

    def summary_ref(self, model_id: str) -> BlobRef:
        """Blob of the training run's summary."""
        return BlobRef(self.models_container, model_blob_name(_checked_id(model_id), MODEL_SUMMARY))

    def result_ref(self, result_id: str, suffix: str = "json") -> BlobRef:
        """Blob of a batch result (``json`` or ``csv``)."""
        name = _checked_id(result_id, ResultNotFoundError)
        return BlobRef(self.results_container, multivariate_result_name(name, suffix))

    # ------------------------------------------------------------------ models

    def create(
        self,
        model_id: str,
        model_info: ModelInfo,
        internal: Bookkeeping | None = None,
    ) -> ModelRecord:
        """Store a new model in status CREATED, or return the one already stored under that id.

        Creating is idempotent: the id is deterministic (one per training input), so a second
        call for the same training returns the first model unchanged.

        Args:
            model_id: The model's id.
            model_info: v1.1 ``modelInfo`` fields (``dataSource``, ``dataSchema``,
                ``startTime``, ``endTime``, ``displayName``, ``slidingWindow``, ``alignPolicy``);
                ``status``, ``errors`` and ``diagnosticsInfo`` are set here.
            internal: Bookkeeping stored beside the v1.1 object.

        Returns:
            The stored record (the existing one when the id was taken).
        """
        now = format_time(self.clock())
        info = model_info.copy()
        info["status"] = CREATED
        info["errors"] = []
        info["diagnosticsInfo"] = empty_diagnostics()
        record = ModelRecord(
            model={
                "modelId": model_id,
                "createdTime": now,
                "lastUpdatedTime": now,
                "modelInfo": info,
            },
            internal=internal.copy() if internal else Bookkeeping(),
        )
        ref = self.model_ref(model_id)
        if self.store.put_json_if_unchanged(ref, record.to_document(), None):
            logger.info("Created model %s", model_id)
            return self.get_record(model_id)
        logger.info("Model %s exists already; keeping it", model_id)
        return self.get_record(model_id)

    def get_record(self, model_id: str) -> ModelRecord:
        """Read a model with its bookkeeping and ETag.

        Raises:
            ModelNotFoundError: No model has that id.
        """
        ref = self.model_ref(model_id)
        document, etag = self.store.get_json_object_with_etag(ref)
        if document is None:
            raise ModelNotFoundError(
                f"No multivariate model has the id {model_id!r}; list the models to see the ids.",
            )
        model, internal = _model_parts(ref, document)
        return ModelRecord(model=model, internal=internal, etag=etag)

    def get(self, model_id: str) -> ModelDocument:
        """Return the v1.1 model object.

        Raises:
            ModelNotFoundError: No model has that id.
        """
        return self.get_record(model_id).model

    def exists(self, model_id: str) -> bool:
        """Whether a model has that id."""
        return self.store.exists(self.model_ref(model_id))

    def update(
        self, model_id: str, mutate: Callable[[ModelRecord], bool]
    ) -> tuple[bool, ModelRecord]:
        """Read, change and write a model, retrying when another writer got there first.

        Args:
            model_id: The model's id.
            mutate: Changes the record in place and returns ``True``, or returns ``False`` to
                leave the stored model as it is.

        Returns:
            Whether the model was changed, and the record as stored now.

        Raises:
            ModelNotFoundError: No model has that id.
            ModelError: ``Conflict`` when the model kept changing under the update.
        """
        for _ in range(_UPDATE_ATTEMPTS):
            current = self.get_record(model_id)
            draft = ModelRecord(
                copy.deepcopy(current.model), copy.deepcopy(current.internal), current.etag
            )
            if not mutate(draft):
                return False, current
            draft.model["lastUpdatedTime"] = format_time(self.clock())
            if self.store.put_json_if_unchanged(
                self.model_ref(model_id), draft.to_document(), current.etag
            ):
                return True, self.get_record(model_id)
        raise ModelError(
            f"The model {model_id} changed {_UPDATE_ATTEMPTS} times during one update; retry.",
            "Conflict",
        )

    def transition(
        self,
        model_id: str,
        status: str,
        *,
        errors: list[dict[str, str]] | None = None,
        diagnostics: DiagnosticsInfo | None = None,
        info: ModelInfo | None = None,
        internal: BookkeepingChange | None = None,
        when: Callable[[ModelRecord], bool] | None = None,
    ) -> tuple[bool, ModelRecord]:
        """Move a model to ``status`` if the transition is allowed (and ``when`` agrees).

        Args:
            model_id: The model's id.
            status: The new status.
            errors: New v1.1 ``errors`` (``[{"code", "message"}]``); unchanged when ``None``.
            diagnostics: New ``diagnosticsInfo``; unchanged when ``None``.
            info: Other ``modelInfo`` fields to set.
            internal: Bookkeeping fields to set (a ``None`` value removes the field).
            when: An extra condition on the current record (e.g. "my lease still holds").

        Returns:
            Whether the model moved, and the record as stored now (a READY or FAILED model
            never moves: its status is final).

        Raises:
            ModelNotFoundError: No model has that id.
            ModelError: ``InvalidStatus`` for an unknown status.
        """
        if status not in MODEL_STATUSES:
            raise ModelError(
                f"Unknown model status {status!r}; use one of {', '.join(MODEL_STATUSES)}.",
                "InvalidStatus",
            )

        def mutate(record: ModelRecord) -> bool:
            if status not in TRANSITIONS[record.status]:
                return False
            if when is not None and not when(record):
                return False
            record.info["status"] = status
            if errors is not None:
                record.info["errors"] = [dict(error) for error in errors]
            if diagnostics is not None:
                record.info["diagnosticsInfo"] = diagnostics
            if info is not None:
                record.info.update(info)
            if internal is not None:
                _change(record.internal, internal)
            return True

        changed, record = self.update(model_id, mutate)
        if changed:
            logger.info("Model %s is now %s", model_id, status)
        return changed, record

    def list(self, skip: int = 0, top: int = 10) -> ModelPage:
        """One page of the models, oldest first (ties by id).

        Args:
            skip: Models to pass over.
            top: Most models on the page (1 to :data:`MAX_PAGE`).

        Raises:
            ModelError: ``InvalidParameter`` for a negative ``skip`` or ``top`` out of range.
        """
        if skip < 0 or not 1 <= top <= MAX_PAGE:
            raise ModelError(
                f"skip must be 0 or more and top from 1 to {MAX_PAGE} (got skip={skip}, "
                f"top={top}).",
                "InvalidParameter",
            )
        models: list[ModelDocument] = []
        for name in self.store.list_names(self.models_container):
            if not name.endswith("/" + MODEL_OBJECT):
                continue
            ref = BlobRef(self.models_container, name)
            document = self.store.get_json_object_or_none(ref)
            if document is not None:  # deleted between listing and reading
                models.append(_model_parts(ref, document)[0])
        models.sort(key=lambda model: (str(model["createdTime"]), str(model["modelId"])))
        page = models[skip : skip + top]
        following = skip + top
        return ModelPage(
            models=page,
            current_count=len(models),
            max_count=MAX_MODELS,
            next_skip=following if following < len(models) else None,
        )

    def delete(self, model_id: str) -> None:
        """Delete a model, its artifact, export, summary and batch results.

        Raises:
            ModelNotFoundError: No model has that id.
        """
        record = self.get_record(model_id)
        # The model object goes first, so a half-finished delete is never listed.
        self.store.delete(self.model_ref(model_id))
        for name in list(self.store.list_names(self.models_container, model_prefix(model_id))):
            self.store.delete(BlobRef(self.models_container, name))
        for result_id in record.internal.get("resultIds", []):
            for suffix in ("json", "csv"):
                self.store.delete(self.result_ref(str(result_id), suffix))
        logger.info("Deleted model %s", model_id)

    # ------------------------------------------------------------------ artifacts

    def ready_record(self, model_id: str, advice: str) -> ModelRecord:
        """Return the record of a READY model.

        Args:
            model_id: The model's id.
            advice: What the caller should do instead, ending the error message.

        Raises:
            ModelNotFoundError: No model has that id.
            ModelNotReadyError: The model is not READY.
        """
        record = self.get_record(model_id)
        if record.status != READY:
            raise ModelNotReadyError(
                f"The model {model_id} is {record.status}, not READY; {advice}"
            )
        return record

    def put_artifact(self, model_id: str, data: bytes) -> BlobRef:
        """Store the engine's bytes of a model, unless they are stored already.

        Create-only: the artifact of a model id is one training's (the id comes from the
        dataset's content and the spec), so a retried training keeps the first bytes and the
        artifact is written once.
        """
        ref = self.artifact_ref(model_id)
        if not self.store.put_bytes_if_absent(ref, data, content_type="application/zip"):
            logger.info("Model %s: artifact stored already; keeping it", model_id)
        return ref

    def get_artifact(self, model_id: str) -> bytes:
        """Return the engine's bytes of a READY model.

        Raises:
            ModelNotFoundError: No model has that id.
            ModelNotReadyError: The model is not READY (yet, or it FAILED).
        """
        self.ready_record(
            model_id, "wait for training to finish (or read its errors if it FAILED)."
        )
        return self.store.get_bytes(self.artifact_ref(model_id))

    def put_export(self, model_id: str, data: bytes) -> BlobRef:
        """Store the portable export zip of a model."""
        ref = self.export_ref(model_id)
        self.store.put_bytes(ref, data, content_type="application/zip")
        return ref

    def get_export(self, model_id: str) -> bytes:
        """Return the export zip of a READY model.

        Raises:
            ModelNotFoundError: No model has that id.
            ModelNotReadyError: The model is not READY or has not been exported yet.
        """
        record = self.get_record(model_id)
        if record.status != READY or not self.store.exists(self.export_ref(model_id)):
            raise ModelNotReadyError(
                f"The model {model_id} is {record.status} and has no export yet.",
            )
        return self.store.get_bytes(self.export_ref(model_id))

    def put_summary(self, model_id: str, summary: JSONObject) -> BlobRef:
        """Store the summary of a model's training run."""
        ref = self.summary_ref(model_id)
        self.store.put_json(ref, dict(summary))
        return ref

    # ------------------------------------------------------------------ results

    def put_result(
        self, model_id: str, result: DetectionResult, csv_text: str | None = None
    ) -> BlobRef:
        """Store a v1.1 batch result (its CSV first) and note its id on the model.

        Raises:
            ModelNotFoundError: No model has that id.
        """
        result_id = str(result["resultId"])
        ref = self.result_ref(result_id)
        # The CSV first: the JSON is what says READY, so nobody reads a READY result whose
        # CSV is not there yet (a storage failure in between leaves the result as it was).
        if csv_text is not None:
            self.store.put_bytes(
                self.result_ref(result_id, "csv"), csv_text.encode(), content_type="text/csv"
            )
        self.store.put_json(ref, dict(result))

        def note(record: ModelRecord) -> bool:
            known = list(record.internal.get("resultIds", []))
            if result_id in known:
                return False
            record.internal["resultIds"] = [*known, result_id]
            return True

        self.update(model_id, note)
        return ref

    def get_result(self, result_id: str) -> DetectionResult:
        """Return a v1.1 batch result.

        Raises:
            ResultNotFoundError: No result has that id.
        """
        document = self.store.get_json_object_or_none(self.result_ref(result_id))
        if document is None:
            raise ResultNotFoundError(f"No detection result has the id {result_id!r}.")
        # This registry is the only writer of result blobs (save_result): the fields are its own.
        return cast("DetectionResult", document)

    def get_result_csv(self, result_id: str) -> str:
        """Return the CSV of a batch result.

        Raises:
            ResultNotFoundError: No result has that id.
        """
        ref = self.result_ref(result_id, "csv")
        if not self.store.exists(ref):
            raise ResultNotFoundError(f"No detection result has the id {result_id!r}.")
        return self.store.get_bytes(ref).decode()


def _change(bookkeeping: Bookkeeping, change: BookkeepingChange) -> None:
    if "lease" in change:
        lease = change["lease"]
        if lease is None:
            bookkeeping.pop("lease", None)
        else:
            bookkeeping["lease"] = lease
    if "variables" in change:
        bookkeeping["variables"] = change["variables"]


def _checked_id(
    identifier: str, error: type[ModelNotFoundError | ResultNotFoundError] = ModelNotFoundError
) -> str:
    """Refuse ids that would escape their folder (they come from URLs in the API)."""
    text = str(identifier)
    if not text or "/" in text or "\\" in text or ".." in text or len(text) > 128:
        raise error(f"{text!r} is not a valid id.")
    return text


def _model_parts(ref: BlobRef, document: JSONObject) -> tuple[ModelDocument, Bookkeeping]:
    """The v1.1 model and the bookkeeping (``{}`` when none) of a model blob (a StoredModel)."""
    model, internal = document.get("model"), document.get("meterwatch") or {}
    if not isinstance(model, dict) or not isinstance(internal, dict):
        raise StateError(f"The model blob {ref.name} holds no model object: it is damaged.")
    # This registry is the only writer of model blobs (StoredModel): the fields are its own.
    return cast("ModelDocument", model), cast("Bookkeeping", internal)
