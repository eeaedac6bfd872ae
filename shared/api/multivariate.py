"""The multivariate routes of the v1.1 API: request → :mod:`shared.multivariate.service` → response.

Train (``POST multivariate/models``), list, get, delete, batch detect (``:detect-batch``, 202
with ``Operation-Location``), results, last detect (``:detect-last``) and export. Each route
reads the request, calls one method of
:class:`~shared.multivariate.service.MultivariateService` and shapes the answer; the work (the
data-source policy, registering a training, starting an orchestration unless it exists,
detecting with a stored model) lives in the multivariate room.

The preview routes serve the same operations in the preview's shapes (``source`` for
``dataSource``, ``$skip``/``$top``, model snapshots in lists, 201 + ``Location`` for detection,
the export zip): ``v1.1-preview.1`` (``azure-ai-anomalydetector`` 3.0.0b4, b5) and
``v1.1-preview`` (3.0.0b3: ``contributors`` instead of ``interpretation`` in results, no
last-point detection), see :mod:`shared.api.versions`.

Lists take a ``top`` up to 10,000 (the notebook's ``list_multivariate_model(skip=0,
top=10000)``) and serve it in pages of at most 100 linked by ``nextLink``, which every SDK
release follows. The URLs written (``Location``, ``Operation-Location``, ``nextLink``) never
come from the request's ``Host`` header (:mod:`shared.api.links`). Storage-bound work runs on
the API's storage thread pool, never on the one univariate detection uses.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar, TypeVarTuple

from anyio import to_thread
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from shared.api.body import read_json_object
from shared.api.context import ApiContext
from shared.api.links import location, next_link
from shared.api.responses import JSONResponse
from shared.api.versions import V11, V11_PREVIEW, multivariate_result
from shared.errors import InputError, ModelNotFoundError, ResultNotFoundError, StateError
from shared.jsontypes import JSONObject, JSONValue
from shared.multivariate.documents import ModelDocument, ModelInfo
from shared.multivariate.registry import MAX_PAGE
from shared.multivariate.service import MultivariateService

#: Default page size of the model list.
DEFAULT_TOP = 10
#: Largest ``top`` of a list request (the service's; served in pages of ``MAX_PAGE``).
MAX_TOP = 10_000


def _service(request: Request) -> MultivariateService:
    context = ApiContext.of(request)
    service: MultivariateService = context.multivariate_service(
        lambda: MultivariateService(context.settings, context.blob_store())
    )
    return service


def _is_plain_id(value: str) -> bool:
    """Ids the app mints are at most 128 letters, digits, ``-`` and ``_``: nothing else is one."""
    return bool(value) and len(value) <= 128 and all(c.isalnum() or c in "-_" for c in value)


_T = TypeVar("_T")
_Ts = TypeVarTuple("_Ts")


def _model_id(request: Request) -> str:
    model_id = str(request.path_params["modelId"])
    if not _is_plain_id(model_id):
        raise ModelNotFoundError(f"No multivariate model has the id {model_id!r}.")
    return model_id


def _result_id(request: Request) -> str:
    """The path's result id, refused (404) before storage is reached when it cannot be one."""
    result_id = str(request.path_params["resultId"])
    if not _is_plain_id(result_id):
        raise ResultNotFoundError(f"No detection result has the id {result_id!r}.")
    return result_id


async def _storage(request: Request, function: Callable[[*_Ts], _T], *args: *_Ts) -> _T:
    """Run a storage-bound call on the API's storage thread pool."""
    limiter = ApiContext.of(request).storage_limiter()
    return await to_thread.run_sync(function, *args, limiter=limiter)


def _client_request_id(request: Request) -> str | None:
    """The ``x-ms-client-request-id`` every SDK sends (the same on its retries)."""
    value = request.headers.get("x-ms-client-request-id", "").strip()
    return value[:200] or None


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
    if values["skip"] < 0 or not 1 <= values["top"] <= MAX_TOP:
        raise InputError(
            f"skip must be 0 or more and top from 1 to {MAX_TOP:,} (got skip={values['skip']}, "
            f"top={values['top']}).",
            "InvalidParameter",
        )
    return values["skip"], values["top"]


def _preview_body(body: JSONObject) -> JSONObject:
    """A preview request (``source``) in v1.1 names (``dataSource``)."""
    converted = dict(body)
    if "source" in converted and "dataSource" not in converted:
        converted["dataSource"] = converted.pop("source")
    return converted


def _preview_object(document: Mapping[str, object]) -> JSONObject:
    """A v1.1 response in preview names (``dataSource`` → ``source``), recursively."""
    return {
        ("source" if key == "dataSource" else key): _preview_value(value)
        for key, value in document.items()
    }


def _preview_value(value: object) -> JSONValue:
    if isinstance(value, dict):
        return _preview_object(value)
    if isinstance(value, list):
        return [_preview_value(item) for item in value]
    if value is None or isinstance(value, str | int | float):
        return value
    raise StateError(f"A stored multivariate document holds a {type(value).__name__}, not JSON.")


def _snapshot(model: ModelDocument) -> JSONObject:
    """A preview ``ModelSnapshot`` of a v1.1 model object."""
    info: ModelInfo = model.get("modelInfo") or {}
    diagnostics = info.get("diagnosticsInfo")
    variables = (diagnostics.get("variableStates") if diagnostics else None) or []
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
    preview = version != V11

    async def train(request: Request) -> Response:
        context = ApiContext.of(request)
        body = await read_json_object(request, context.max_body_bytes)
        model = await _service(request).train(
            _preview_body(body) if preview else body, request_id=_client_request_id(request)
        )
        url = location(request, version, f"multivariate/models/{model['modelId']}")
        if preview:
            return Response(status_code=201, headers={"Location": url})
        return JSONResponse(model, status_code=201, headers={"Location": url})

    async def list_models(request: Request) -> Response:
        skip, top = _paging(request, preview)
        page = await _storage(request, _service(request).registry.list, skip, min(top, MAX_PAGE))
        link = None
        if page.next_skip is not None:
            names = ("$skip", "$top") if preview else ("skip", "top")
            link = next_link(
                request,
                version,
                f"multivariate/models?{names[0]}={page.next_skip}&{names[1]}={top}",
            )
        document = page.to_v11(link)
        if preview:
            snapshots: JSONObject = {
                "models": [_snapshot(model) for model in page.models],
                "currentCount": document["currentCount"],
                "maxCount": document["maxCount"],
                "nextLink": document["nextLink"],
            }
            return JSONResponse(snapshots)
        return JSONResponse(document)

    async def get_model(request: Request) -> Response:
        model = await _storage(request, _service(request).get_model, _model_id(request))
        return JSONResponse(_preview_object(model) if preview else model)

    async def delete_model(request: Request) -> Response:
        await _storage(request, _service(request).delete_model, _model_id(request))
        return Response(status_code=204)

    async def detect(request: Request) -> Response:
        context = ApiContext.of(request)
        body = await read_json_object(request, context.max_body_bytes)
        if preview:
            body = _preview_body(body)
        result = await _service(request).detect_batch(_model_id(request), body)
        result_id = result["resultId"]
        if preview:
            url = location(request, version, f"multivariate/results/{result_id}")
            return Response(status_code=201, headers={"Location": url})
        url = location(request, version, f"multivariate/detect-batch/{result_id}")
        return JSONResponse(
            result,
            status_code=202,
            headers={"Operation-Location": url, "Operation-Id": result_id},
        )

    async def get_result(request: Request) -> Response:
        result = await _storage(request, _service(request).get_result, _result_id(request))
        if preview:
            return JSONResponse(multivariate_result(version, _preview_object(result)))
        return JSONResponse(result)

    async def detect_last(request: Request) -> Response:
        context = ApiContext.of(request)
        body = await read_json_object(request, context.max_body_bytes)
        result = await _storage(request, _service(request).detect_last, _model_id(request), body)
        return JSONResponse(result)

    async def export(request: Request) -> Response:
        data = await _storage(request, _service(request).export, _model_id(request))
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
    # v1.1-preview (3.0.0b3) had no last-point detection; v1.1-preview.1 added it.
    last = [] if version == V11_PREVIEW else [
        Route(f"{models}/{{modelId}}/last/detect", detect_last, methods=["POST"])
    ]  # fmt: skip
    return [
        Route(models, train, methods=["POST"]),
        Route(models, list_models, methods=["GET"]),
        Route(f"{models}/{{modelId}}/detect", detect, methods=["POST"]),
        *last,
        Route(f"{models}/{{modelId}}/export", export, methods=["GET"]),
        Route(f"{models}/{{modelId}}", get_model, methods=["GET"]),
        Route(f"{models}/{{modelId}}", delete_model, methods=["DELETE"]),
        Route("/multivariate/results/{resultId}", get_result, methods=["GET"]),
    ]
