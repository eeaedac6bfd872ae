"""The multivariate routes: train, list, get, delete, batch detect, results, last detect, export.

Everything here is plumbing around the multivariate use cases of
:mod:`shared.multivariate.pipeline`, :mod:`shared.multivariate.registry` and
:mod:`shared.multivariate.workflow`; nothing is implemented twice:

* **Train** (``POST multivariate/models``): the ``dataSource`` passes the policy of
  :mod:`shared.api.datasource`, its bytes are hashed, and the request becomes the same
  :class:`~shared.multivariate.workflow.TrainingRequest` an uploaded zip becomes (deterministic
  instance and model ids). The model is registered at once by the orchestration's own ``prepare``
  activity (so ``GET`` right after the 201 finds it, CREATED, or FAILED with the coded error of
  a bad dataset), then the training orchestration is started (prepare → train → monitor →
  detect → export → summary) by the Durable host in the function app, or by the in-process
  runner of :mod:`shared.multivariate.local_runner` under ``meterwatch serve``.
* **Batch detection** (``POST ...:detect-batch``) stores a CREATED result and starts the
  detection orchestration of :mod:`shared.api.batch` (its activity runs
  :func:`shared.multivariate.pipeline.detect_batch` on the request's window and stores the v1.1
  result,
  READY or FAILED, in the registry); the 202 carries the CREATED result and
  ``Operation-Location`` points at it.
* **Last detection** (``POST ...:detect-last``) aligns the request's variables as in training
  and judges the last timestamp.

The ``v1.1-preview.1`` routes serve the same operations in the preview's shapes (``source``
for ``dataSource``, ``$skip``/``$top``, model snapshots in lists, 201 + ``Location`` for
detection, the export zip).
"""

from __future__ import annotations

import asyncio
import io
import logging
import math
import threading
import zipfile
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd
from azure.core.exceptions import ResourceNotFoundError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from shared.api.batch import (
    DETECT_ACTIVITY,
    DETECT_FAILED_ACTIVITY,
    DETECTION_ORCHESTRATOR,
    DetectionJob,
    detection_orchestration,
    pending_result,
)
from shared.api.body import json_type, read_json_object
from shared.api.context import ApiContext
from shared.api.datasource import BlobSource, DataSourcePolicy, LocalSource
from shared.api.orchestration import OrchestrationStarter, current_starter
from shared.api.responses import JSONResponse
from shared.engine.multivariate import MultivariateModel
from shared.errors import (
    ConfigurationError,
    DatasetError,
    InputError,
    ModelError,
    ModelNotFoundError,
    ModelNotReadyError,
    ResultNotFoundError,
)
from shared.multivariate.datasets import MIB, AlignPolicy, align
from shared.multivariate.pipeline import (
    DEFAULT_TOP_CONTRIBUTORS,
    MAX_TOP_CONTRIBUTORS,
    TrainingActivities,
    dataset_limits,
    detect_batch,
    export_model,
    failed_result,
    parse_training_spec,
    read_dataset,
    result_csv,
    result_id_for,
    setup_info,
    variable_states,
)
from shared.multivariate.registry import MAX_PAGE, ModelRegistry
from shared.multivariate.statuses import FAILED, READY
from shared.multivariate.workflow import (
    ORCHESTRATOR,
    RETRY_FIRST_INTERVAL_MS,
    RETRY_MAX_ATTEMPTS,
    TrainingRequest,
    content_hash,
    is_dataset_name,
    should_start,
    training_orchestration,
)
from shared.settings import Settings
from shared.storage.client import BlobRef, BlobStore
from shared.timefmt import iso, to_datetime64

logger = logging.getLogger(__name__)

#: Where datasets given as a local path or a blob folder are stored for training.
MATERIALIZED_PREFIX = "api-datasets/"
#: Default page size of the model list.
DEFAULT_TOP = 10
#: Most variables of a dataset or detect-last request (v1.1: 300), most points per variable.
MAX_VARIABLES = 300
MAX_LAST_POINTS = 2880 * 4


@dataclass(frozen=True)
class Materialized:
    """A dataset the API resolved: its blob, content hash and bytes."""

    ref: BlobRef
    sha256: str
    data: bytes


class MultivariateService:
    """The multivariate operations of the API over one storage account.

    Args:
        settings: App settings (containers, upload limit, local-path switch, polling).
        store: The blob store.
        starter: Who starts orchestrations; ``None`` means the request's starter
            (:data:`~shared.api.orchestration.current_starter`, set by the HTTP function).
    """

    def __init__(
        self,
        settings: Settings,
        store: BlobStore,
        starter: OrchestrationStarter | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.activities = TrainingActivities(store, settings)
        self.registry: ModelRegistry = self.activities.registry
        self.policy = DataSourcePolicy(
            str(store.service.url), allow_local_paths=settings.api_allow_local_paths
        )
        self._starter = starter

    @classmethod
    def in_process(cls, settings: Settings, store: BlobStore) -> MultivariateService:
        """A service whose orchestrations run in this process (``meterwatch serve``)."""
        service = cls(settings, store)
        activities = {
            **service.activities.handlers(),
            **BatchDetectionActivities(store, settings).handlers(),
        }
        service._starter = InProcessStarter(activities)
        return service

    def close(self) -> None:
        """Wait for in-process orchestrations to finish."""
        close: Callable[[], None] | None = getattr(self._starter, "close", None)
        if close is not None:
            close()

    def starter(self) -> OrchestrationStarter:
        """The orchestration starter for this request.

        Raises:
            ConfigurationError: Neither an in-process runner nor a Durable client is available.
        """
        starter = self._starter or current_starter.get()
        if starter is None:
            raise ConfigurationError(
                "No orchestration runner is available to train models: call the API through "
                "the function app's HTTP function or `meterwatch serve`.",
                "NoOrchestrationRunner",
            )
        return starter

    # ------------------------------------------------------------------ data sources

    def materialize(self, value: Any) -> Materialized:
        """Resolve a ``dataSource`` to a dataset blob of this account and read it.

        Blob URLs of the configured account are read where they are; a blob folder (MultiTable
        as one CSV per variable) and a local path (only with ``API_ALLOW_LOCAL_PATHS``) are
        packed or copied into the training container under :data:`MATERIALIZED_PREFIX`, so
        the orchestration reads every dataset from a blob.

        Raises:
            InputError: ``InvalidDataSource`` (refused by the policy), ``DataSourceNotFound``,
                ``UnsupportedFormat`` or ``TooLarge``.
        """
        source = self.policy.resolve(value)
        limit = self.settings.mv_max_upload_mb * MIB
        if isinstance(source, LocalSource):
            name, data = _read_local(source.path, limit)
            return self._store_copy(name, data)
        if source.is_folder:
            return self._store_copy(*self._pack_folder(source, limit))
        if not is_dataset_name(source.name):
            raise DatasetError(
                f"dataSource names {source.name!r}: point it at a .zip (one timestamp,value CSV "
                "per variable), a .csv (a timestamp column and one column per variable) or a "
                "folder of CSVs (ending with /).",
                "UnsupportedFormat",
            )
        ref = source.ref
        blob = self.store.service.get_blob_client(ref.container, ref.name)
        try:
            size = int(blob.get_blob_properties().size)
            if size > limit:
                raise _too_large(str(ref), size, limit)
            data = self.store.get_bytes(ref)
        except ResourceNotFoundError as exc:
            raise DatasetError(
                f"dataSource {ref} does not exist in the storage account; upload it first.",
                "DataSourceNotFound",
            ) from exc
        return Materialized(ref, content_hash(data), data)

    def _store_copy(self, name: str, data: bytes) -> Materialized:
        digest = content_hash(data)
        ref = BlobRef(
            self.settings.training_container, f"{MATERIALIZED_PREFIX}{digest[:32]}/{name}"
        )
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
                raise _too_large(f"{source.container}/{source.name}", total, limit)
            members.append((relative, data))
        if not members:
            raise DatasetError(
                f"The folder {source.container}/{source.name} holds no CSV files; put one "
                "timestamp,value CSV per variable in it.",
                "DataSourceNotFound",
            )
        folder = PurePosixPath(source.name.rstrip("/")).name or "dataset"
        return f"{folder}.zip", _zip(members)

    # ------------------------------------------------------------------ models

    async def train(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Register and start a training; return the v1.1 model object.

        Raises:
            InputError: A bad request (spec field, data source).
        """
        request, fresh = await run_in_threadpool(self._register, body)
        starter = self.starter()
        status = None if fresh else await starter.runtime_status(request.instance_id)
        if fresh or should_start(status):
            await starter.start(ORCHESTRATOR, request.instance_id, request.to_dict())
            logger.info("Started training %s (model %s)", request.instance_id, request.model_id)
        else:
            logger.info(
                "Training %s exists (%s); not starting it again", request.instance_id, status
            )
        return await run_in_threadpool(self.registry.get, request.model_id)

    def _register(self, body: Mapping[str, Any]) -> tuple[TrainingRequest, bool]:
        fields = {key: value for key, value in body.items() if key not in _NOT_SPEC}
        # A bad field is a 400 now, not a FAILED model later; the canonical spec (defaults
        # filled in) makes the same request give the same ids as the function app's starter.
        spec = parse_training_spec(fields).to_dict()
        dataset = self.materialize(body.get("dataSource"))
        request = TrainingRequest.create(
            dataset.ref.container,
            dataset.ref.name,
            dataset.sha256,
            spec=spec,
            poll_interval_seconds=self.settings.mv_poll_interval_seconds,
            deadline_minutes=self.settings.mv_training_deadline_minutes,
        )
        fresh = not self.registry.exists(request.model_id)
        # The orchestration's own first step registers the model (idempotent): the API runs it
        # now so that the model exists when the 201 is answered.
        self.activities.prepare(request.to_dict())
        return request, fresh

    def get_model(self, model_id: str) -> dict[str, Any]:
        """The v1.1 model object."""
        return self.registry.get(model_id)

    def delete_model(self, model_id: str) -> None:
        """Delete a model and everything stored with it."""
        self.registry.delete(model_id)

    def export(self, model_id: str) -> bytes:
        """The portable model zip of a READY model (built now if the export step is pending)."""
        record = self.registry.ready_record(model_id, "export it once training has finished.")
        try:
            return self.registry.get_export(model_id)
        except ModelNotReadyError:
            return export_model(self.registry.get_artifact(model_id), record.model)

    # ------------------------------------------------------------------ detection

    async def detect_batch(self, model_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Accept a batch detection: store a CREATED result and start its orchestration.

        A request identical to an earlier one (same model, window, top contributors and data)
        gets the earlier result back and starts nothing.

        Returns:
            The v1.1 batch result as it stands (CREATED, or the earlier READY/FAILED one).

        Raises:
            ModelNotFoundError: No such model.
            ModelNotReadyError: The model is not READY.
            InputError: A bad request (times, top contributors, data source).
        """
        job, existing = await run_in_threadpool(self._register_detection, model_id, body)
        status = existing["summary"]["status"] if existing else None
        if status in (READY, FAILED):
            return existing or {}
        starter = self.starter()
        runtime = None if existing is None else await starter.runtime_status(job.instance_id)
        if existing is None or should_start(runtime):
            await starter.start(DETECTION_ORCHESTRATOR, job.instance_id, job.to_dict())
            logger.info("Started detection %s on model %s", job.result_id, model_id)
        return existing or pending_result(job)

    def _register_detection(
        self, model_id: str, body: Mapping[str, Any]
    ) -> tuple[DetectionJob, dict[str, Any] | None]:
        self.registry.ready_record(model_id, "poll it until READY before detecting.")
        top = _top_contributors(body.get("topContributorCount", DEFAULT_TOP_CONTRIBUTORS))
        start = _time(body.get("startTime"), "startTime", "InvalidStartTime")
        end = _time(body.get("endTime"), "endTime", "InvalidEndTime")
        if end < start:
            raise DatasetError(
                f"endTime {body.get('endTime')} is before startTime {body.get('startTime')}.",
                "InvalidEndTime",
            )
        dataset = self.materialize(body.get("dataSource"))
        job = DetectionJob(
            model_id=model_id,
            result_id=result_id_for(model_id, start, end, top, dataset.sha256),
            container=dataset.ref.container,
            name=dataset.ref.name,
            sha256=dataset.sha256,
            data_source=str(body.get("dataSource")).strip(),
            start_time=iso(start),
            end_time=iso(end),
            top_contributor_count=top,
        )
        try:
            return job, self.registry.get_result(job.result_id)
        except ResultNotFoundError:
            self.registry.put_result(model_id, pending_result(job))
            return job, None

    def get_result(self, result_id: str) -> dict[str, Any]:
        """A stored v1.1 batch result."""
        return self.registry.get_result(result_id)

    def detect_last(self, model_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Judge the last timestamp of the request's variables (v1.1 ``detect-last``).

        Raises:
            ModelNotFoundError: No such model.
            ModelNotReadyError: The model is not READY.
            InputError: Malformed variables, or variables that differ from training.
        """
        record = self.registry.ready_record(model_id, "poll it until READY before detecting.")
        top = _top_contributors(body.get("topContributorCount", DEFAULT_TOP_CONTRIBUTORS))
        series = _variables(body.get("variables"))
        policy = AlignPolicy.from_v11(record.info.get("alignPolicy"))
        aligned = align(series, policy)
        points = _detecting_points(body.get("detectingPoints", 1), len(aligned))
        model = MultivariateModel.from_bytes(self.registry.get_artifact(model_id))
        detection = detect_batch(
            model,
            series,
            policy,
            start=aligned.timestamps[-points],
            end=aligned.timestamps[-1],
            top_contributor_count=top,
        )
        return {
            "variableStates": variable_states(aligned),
            "results": detection.to_v11()["results"],
        }


_NOT_SPEC = frozenset({"dataSource", "status", "errors", "diagnosticsInfo"})


def _detecting_points(value: Any, available: int) -> int:
    """How many trailing timestamps to judge (``detectingPoints`` of the preview; v1.1: 1)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise DatasetError(
            f"detectingPoints {value!r} must be a whole number of 1 or more.", "InvalidVariables"
        )
    return min(value, available)


def _read_local(path: Path, limit: int) -> tuple[str, bytes]:
    if path.is_dir():
        members: list[tuple[str, bytes]] = []
        total = 0
        for item in sorted(path.glob("*.csv")):
            total += item.stat().st_size
            if total > limit:
                raise _too_large(str(path), total, limit)
            members.append((item.name, item.read_bytes()))
        if not members:
            raise DatasetError(f"The folder {path} holds no CSV files.", "DataSourceNotFound")
        return f"{path.name or 'dataset'}.zip", _zip(members)
    if not is_dataset_name(path.name):
        raise DatasetError(
            f"{path} is not a .zip or .csv dataset (or a folder of CSVs).", "UnsupportedFormat"
        )
    size = path.stat().st_size
    if size > limit:
        raise _too_large(str(path), size, limit)
    return path.name, path.read_bytes()


def _zip(members: list[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members:
            entry = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            entry.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(entry, data)
    return buffer.getvalue()


def _too_large(what: str, size: int, limit: int) -> DatasetError:
    return DatasetError(
        f"{what} is {size:,} bytes; the limit is {limit:,} (MV_MAX_UPLOAD_MB).", "TooLarge"
    )


def _top_contributors(value: Any) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or (isinstance(value, float) and (not math.isfinite(value) or not value.is_integer()))
        or not 1 <= int(value) <= MAX_TOP_CONTRIBUTORS
    ):
        raise DatasetError(
            f"topContributorCount {value!r} must be a whole number from 1 to "
            f"{MAX_TOP_CONTRIBUTORS}.",
            "InvalidTopContributorCount",
        )
    return int(value)


def _time(value: Any, field_name: str, code: str) -> np.datetime64:
    if not isinstance(value, str) or not value.strip():
        raise DatasetError(
            f"{field_name} is required: an ISO 8601 time such as 2006-12-19T00:00:00Z.", code
        )
    try:
        return to_datetime64(value, field_name)
    except DatasetError as exc:
        raise DatasetError(exc.message, code) from exc


def _variables(value: Any) -> dict[str, pd.Series]:
    """The ``variables`` of a detect-last request as raw series (v1.1 and preview names)."""
    if not isinstance(value, list) or not value:
        raise DatasetError(
            "variables must be a non-empty array of {variable, timestamps, values}.",
            "InvalidVariables",
        )
    if len(value) > MAX_VARIABLES:
        raise DatasetError(
            f"variables holds {len(value)} variables; at most {MAX_VARIABLES}.",
            "TooManyVariables",
        )
    series: dict[str, pd.Series] = {}
    for i, item in enumerate(value):
        if not isinstance(item, Mapping):
            raise DatasetError(
                f"variables[{i}] must be an object, got {json_type(item)}.", "InvalidVariables"
            )
        name = item.get("variable", item.get("name"))
        stamps = item.get("timestamps")
        values = item.get("values")
        if not isinstance(name, str) or not name.strip():
            raise DatasetError(f"variables[{i}].variable must be a name.", "InvalidVariables")
        if name in series:
            raise DatasetError(f"The variable {name!r} appears twice.", "InvalidVariables")
        if not isinstance(stamps, list) or not isinstance(values, list):
            raise DatasetError(
                f"variables[{i}] ({name}) needs arrays 'timestamps' and 'values'.",
                "InvalidVariables",
            )
        if len(stamps) != len(values) or not stamps:
            raise DatasetError(
                f"variables[{i}] ({name}) has {len(stamps)} timestamps and {len(values)} values; "
                "send one value per timestamp (at least one).",
                "InvalidVariables",
            )
        if len(stamps) > MAX_LAST_POINTS:
            raise DatasetError(
                f"variables[{i}] ({name}) has {len(stamps)} points; send at most "
                f"{MAX_LAST_POINTS} (the sliding window plus the points to judge).",
                "InvalidVariables",
            )
        numbers = np.empty(len(values), dtype=np.float64)
        for j, number in enumerate(values):
            if isinstance(number, bool) or not isinstance(number, int | float):
                raise DatasetError(
                    f"variables[{i}] ({name}) values[{j}] must be a number, got "
                    f"{json_type(number)}.",
                    "InvalidVariables",
                )
            numbers[j] = float(number)
        if not np.isfinite(numbers).all():
            raise DatasetError(
                f"variables[{i}] ({name}) has values that are not finite.", "InvalidVariables"
            )
        if not all(isinstance(stamp, str) for stamp in stamps):
            raise DatasetError(
                f"variables[{i}] ({name}) timestamps must be ISO 8601 texts.", "InvalidTimestamp"
            )
        try:
            index = pd.DatetimeIndex(pd.to_datetime(stamps, utc=True, format="ISO8601"))
        except (ValueError, TypeError, OverflowError) as exc:
            raise DatasetError(
                f"variables[{i}] ({name}) has a timestamp that is not ISO 8601 ({exc}).",
                "InvalidTimestamp",
            ) from exc
        series[name] = pd.Series(numbers, index=index.tz_convert(None))
    return series


# ---------------------------------------------------------------------------------- runner


class BatchDetectionActivities:
    """The activities of the API's batch-detection orchestration (:mod:`shared.api.batch`).

    Args:
        store: The blob store.
        settings: App settings (containers, upload limit).
    """

    def __init__(self, store: BlobStore, settings: Settings) -> None:
        self.store = store
        self.registry = ModelRegistry.from_settings(store, settings)
        self.limits = dataset_limits(settings)

    def handlers(self) -> dict[str, Callable[[Any], dict[str, Any]]]:
        """Activity name → function."""
        return {DETECT_ACTIVITY: self.detect, DETECT_FAILED_ACTIVITY: self.fail}

    def detect(self, payload: Any) -> dict[str, Any]:
        """Run the detection and store its v1.1 result (READY, or FAILED for unusable data).

        Storage errors propagate, so the runtime retries the activity.

        Returns:
            ``{"resultId", "status", "anomalies"}``.
        """
        job = DetectionJob.from_dict(payload)
        setup = setup_info(job.data_source, job.top_contributor_count, job.start_time, job.end_time)
        try:
            record = self.registry.get_record(job.model_id)
            model = MultivariateModel.from_bytes(self.registry.get_artifact(job.model_id))
            data = self._read(job)
            detection = detect_batch(
                model,
                read_dataset(data, job.name, self.limits),
                AlignPolicy.from_v11(record.info.get("alignPolicy")),
                start=job.start_time,
                end=job.end_time,
                top_contributor_count=job.top_contributor_count,
                data_source=job.data_source,
                result_id=job.result_id,
            )
            result = detection.to_v11()
        except ModelNotFoundError:
            logger.info("Model %s was deleted before detection %s ran", job.model_id, job.result_id)
            return {"resultId": job.result_id, "status": FAILED, "anomalies": 0}
        except (InputError, ModelError) as exc:
            # As the service did: the detection was accepted; its result says why it failed.
            logger.warning("Detection %s failed: %s (%s)", job.result_id, exc.message, exc.code)
            result = failed_result(job.result_id, setup, [exc.to_dict()])
        self.registry.put_result(job.model_id, result, result_csv(result))
        anomalies = sum(1 for item in result["results"] if item["value"]["isAnomaly"])
        return {"resultId": job.result_id, "status": result["summary"]["status"],
                "anomalies": anomalies}  # fmt: skip

    def fail(self, payload: Any) -> dict[str, Any]:
        """Record the detection as FAILED (``DetectionFailed``) after the retries were spent."""
        job = DetectionJob.from_dict(payload)
        error = {"code": "DetectionFailed", "message": str(payload.get("message", ""))}
        setup = setup_info(job.data_source, job.top_contributor_count, job.start_time, job.end_time)
        result = failed_result(job.result_id, setup, [error])
        try:
            self.registry.put_result(job.model_id, result, result_csv(result))
        except ModelNotFoundError:
            logger.info("Model %s was deleted; detection %s dropped", job.model_id, job.result_id)
        return {"resultId": job.result_id, "status": FAILED, "anomalies": 0}

    def _read(self, job: DetectionJob) -> bytes:
        ref = BlobRef(job.container, job.name)
        try:
            data = self.store.get_bytes(ref)
        except ResourceNotFoundError as exc:
            raise DatasetError(
                f"The data {ref} was deleted before the detection ran; send it again.",
                "DataSourceNotFound",
            ) from exc
        if content_hash(data) != job.sha256:
            raise DatasetError(
                f"The data {ref} changed after the detection was requested; request it again.",
                "DataSourceChanged",
            )
        return data


class InProcessStarter:
    """Runs the training and detection orchestrations in background threads (``serve``).

    The orchestrator generators (:mod:`shared.multivariate.workflow`, :mod:`shared.api.batch`) are
    driven by :class:`shared.multivariate.local_runner.LocalTaskHub`, the runner the demo and
    the tests use;
    instances that are still running report ``Running`` so a duplicate request does not start
    a second run.

    Args:
        activities: Activity name → function (training and detection activities).
        workers: Orchestrations run at the same time.
    """

    def __init__(self, activities: Mapping[str, Callable[[Any], Any]], workers: int = 2) -> None:
        from shared.multivariate.local_runner import LocalRetry, LocalTaskHub

        retry = LocalRetry(RETRY_FIRST_INTERVAL_MS, RETRY_MAX_ATTEMPTS)
        self.hub = LocalTaskHub(
            {
                ORCHESTRATOR: lambda context: training_orchestration(context, retry),
                DETECTION_ORCHESTRATOR: lambda context: detection_orchestration(context, retry),
            },
            activities,
        )
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="mv-orchestration")
        self._running: set[str] = set()
        self._lock = threading.Lock()

    async def start(self, orchestrator: str, instance_id: str, client_input: Any) -> None:
        """Start the instance in a background thread (returns at once)."""
        with self._lock:
            if instance_id in self._running:
                return
            self._running.add(instance_id)
        self._pool.submit(self._run, orchestrator, instance_id, client_input)

    async def runtime_status(self, instance_id: str) -> str | None:
        """``Running`` while the instance runs, then the local hub's status."""
        with self._lock:
            if instance_id in self._running:
                return "Running"
        return self.hub.runtime_status(instance_id)

    def _run(self, orchestrator: str, instance_id: str, client_input: Any) -> None:
        try:
            run = self.hub.start_new(orchestrator, instance_id, client_input)
            logger.info("Orchestration %s: %s", instance_id, run.runtime_status)
        except Exception:
            logger.exception("Orchestration %s crashed", instance_id)
        finally:
            with self._lock:
                self._running.discard(instance_id)

    def close(self) -> None:
        """Wait for running orchestrations, then stop the threads."""
        self._pool.shutdown(wait=True)

    async def wait(self, timeout: float = 60.0) -> None:
        """Wait until no orchestration runs (tests and benchmarks)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            with self._lock:
                if not self._running:
                    return
            if loop.time() > deadline:
                raise TimeoutError("orchestrations still running")
            await asyncio.sleep(0.02)


# ---------------------------------------------------------------------------------- routes


def _service(request: Request) -> MultivariateService:
    context = ApiContext.of(request)
    service: MultivariateService = context.multivariate_service(
        lambda: MultivariateService(context.settings, context.blob_store())
    )
    return service


def _model_id(request: Request) -> str:
    model_id = str(request.path_params["modelId"])
    if not model_id or len(model_id) > 128 or not all(c.isalnum() or c in "-_" for c in model_id):
        raise ModelNotFoundError(f"No multivariate model has the id {model_id!r}.")
    return model_id


def _api_base(request: Request, version: str) -> str:
    return f"{str(request.base_url).rstrip('/')}/anomalydetector/{version}"


def _paging(request: Request, preview: bool) -> tuple[int, int]:
    values: dict[str, int] = {}
    for name, default in (("skip", 0), ("top", DEFAULT_TOP)):
        raw = request.query_params.get(f"${name}" if preview else name)
        if raw is None and preview:
            raw = request.query_params.get(name)
        if raw is None or raw == "":
            values[name] = default
            continue
        try:
            values[name] = int(raw)
        except ValueError as exc:
            raise InputError(
                f"{name} must be a whole number, got {raw!r}.", "InvalidParameter"
            ) from exc
    if values["skip"] < 0 or not 1 <= values["top"] <= MAX_PAGE:
        raise InputError(
            f"skip must be 0 or more and top from 1 to {MAX_PAGE} (got skip={values['skip']}, "
            f"top={values['top']}).",
            "InvalidParameter",
        )
    return values["skip"], values["top"]


def _preview_body(body: dict[str, Any]) -> dict[str, Any]:
    """A preview request (``source``) in v1.1 names (``dataSource``)."""
    converted = dict(body)
    if "source" in converted and "dataSource" not in converted:
        converted["dataSource"] = converted.pop("source")
    return converted


def _preview_object(document: Any) -> Any:
    """A v1.1 response in preview names (``dataSource`` → ``source``), recursively."""
    if isinstance(document, dict):
        return {
            ("source" if key == "dataSource" else key): _preview_object(value)
            for key, value in document.items()
        }
    if isinstance(document, list):
        return [_preview_object(item) for item in document]
    return document


def _snapshot(model: Mapping[str, Any]) -> dict[str, Any]:
    """A preview ``ModelSnapshot`` of a v1.1 model object."""
    info = model.get("modelInfo") or {}
    variables = (info.get("diagnosticsInfo") or {}).get("variableStates") or []
    return {
        "modelId": model["modelId"],
        "createdTime": model["createdTime"],
        "lastUpdatedTime": model["lastUpdatedTime"],
        "status": info.get("status"),
        "displayName": info.get("displayName", ""),
        "variablesCount": len(variables),
    }


def routes(version: str) -> list[BaseRoute]:
    """The multivariate routes of one API version (relative to ``/anomalydetector/{version}``)."""
    preview = version != "v1.1"

    async def train(request: Request) -> Response:
        context = ApiContext.of(request)
        body = await read_json_object(request, context.max_body_bytes)
        model = await _service(request).train(_preview_body(body) if preview else body)
        location = f"{_api_base(request, version)}/multivariate/models/{model['modelId']}"
        if preview:
            return Response(status_code=201, headers={"Location": location})
        return JSONResponse(model, status_code=201, headers={"Location": location})

    async def list_models(request: Request) -> Response:
        skip, top = _paging(request, preview)
        page = await run_in_threadpool(_service(request).registry.list, skip, top)
        next_link = None
        if page.next_skip is not None:
            names = ("$skip", "$top") if preview else ("skip", "top")
            next_link = (
                f"{_api_base(request, version)}/multivariate/models?"
                f"{names[0]}={page.next_skip}&{names[1]}={top}"
            )
        document = page.to_v11(next_link)
        if preview:
            document["models"] = [_snapshot(model) for model in page.models]
        return JSONResponse(document)

    async def get_model(request: Request) -> Response:
        model = await run_in_threadpool(_service(request).get_model, _model_id(request))
        return JSONResponse(_preview_object(model) if preview else model)

    async def delete_model(request: Request) -> Response:
        await run_in_threadpool(_service(request).delete_model, _model_id(request))
        return Response(status_code=204)

    async def detect(request: Request) -> Response:
        context = ApiContext.of(request)
        body = await read_json_object(request, context.max_body_bytes)
        if preview:
            body = _preview_body(body)
        result = await _service(request).detect_batch(_model_id(request), body)
        result_id = result["resultId"]
        if preview:
            location = f"{_api_base(request, version)}/multivariate/results/{result_id}"
            return Response(status_code=201, headers={"Location": location})
        location = f"{_api_base(request, version)}/multivariate/detect-batch/{result_id}"
        return JSONResponse(
            result,
            status_code=202,
            headers={"Operation-Location": location, "Operation-Id": result_id},
        )

    async def get_result(request: Request) -> Response:
        result_id = str(request.path_params["resultId"])
        result = await run_in_threadpool(_service(request).get_result, result_id)
        return JSONResponse(_preview_object(result) if preview else result)

    async def detect_last(request: Request) -> Response:
        context = ApiContext.of(request)
        body = await read_json_object(request, context.max_body_bytes)
        result = await run_in_threadpool(_service(request).detect_last, _model_id(request), body)
        return JSONResponse(result)

    async def export(request: Request) -> Response:
        data = await run_in_threadpool(_service(request).export, _model_id(request))
        return Response(data, media_type="application/zip")

    models = "/multivariate/models"
    if not preview:
        return [
            Route(models, train, methods=["POST"]),
            Route(models, list_models, methods=["GET"]),
            Route(f"{models}/{{modelId}}:detect-batch", detect, methods=["POST"]),
            Route(f"{models}/{{modelId}}:detect-last", detect_last, methods=["POST"]),
            Route(f"{models}/{{modelId}}", get_model, methods=["GET"]),
            Route(f"{models}/{{modelId}}", delete_model, methods=["DELETE"]),
            Route("/multivariate/detect-batch/{resultId}", get_result, methods=["GET"]),
        ]
    return [
        Route(models, train, methods=["POST"]),
        Route(models, list_models, methods=["GET"]),
        Route(f"{models}/{{modelId}}/detect", detect, methods=["POST"]),
        Route(f"{models}/{{modelId}}/last/detect", detect_last, methods=["POST"]),
        Route(f"{models}/{{modelId}}/export", export, methods=["GET"]),
        Route(f"{models}/{{modelId}}", get_model, methods=["GET"]),
        Route(f"{models}/{{modelId}}", delete_model, methods=["DELETE"]),
        Route("/multivariate/results/{resultId}", get_result, methods=["GET"]),
    ]
