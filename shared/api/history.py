"""meterwatch's own routes over the archive: history by series and the anomaly log.

Under ``/meterwatch/v1`` (not a v1.1 operation: the retired service had no archive), keyed like
every route (``Ocp-Apim-Subscription-Key``), errors in the same ``{"code", "message"}`` body:

* ``GET /meterwatch/v1/history/{deviceId}/{metric}?start=&end=&mode=&tail=`` runs
  :func:`shared.history.detection.detect_history`: ``mode`` is ``request`` (the v1.1 request of
  the range, the default), ``entire``, ``changepoint`` or ``stream``;
* ``GET /meterwatch/v1/anomalies?since=&until=&deviceId=`` lists the anomaly log's alerts
  (``meterwatch.alert/1`` documents, one per id, in time order).

Both call the same use cases as the CLI; storage work runs in the storage thread pool.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from shared.api.context import ApiContext
from shared.api.responses import JSONResponse
from shared.errors import InputError
from shared.jsontypes import JSONObject
from shared.telemetry.validation import checked_name

#: Where these routes live.
METERWATCH_ROOT = "/meterwatch"
METERWATCH_V1 = "v1"


def _query(request: Request, name: str, *, required: bool = True) -> str | None:
    value = request.query_params.get(name)
    if value is None or not value.strip():
        if required:
            raise InputError(f"The query parameter {name!r} is required.", "MissingParameter")
        return None
    return value.strip()


def _flag(request: Request, name: str, default: bool) -> bool:
    value = _query(request, name, required=False)
    if value is None:
        return default
    if value.lower() in ("true", "1", "yes"):
        return True
    if value.lower() in ("false", "0", "no"):
        return False
    raise InputError(f"{name}={value!r}: use true or false.", "InvalidParameter")


async def history(request: Request) -> Response:
    """``GET /meterwatch/v1/history/{deviceId}/{metric}``."""
    from shared.history.detection import detect_history
    from shared.univariate.detect import DetectionOptions

    context = ApiContext.of(request)
    device_id = checked_name(request.path_params["device_id"], "deviceId", InputError)
    metric = checked_name(request.path_params["metric"], "metric", InputError)
    start, end = _query(request, "start"), _query(request, "end")
    mode = _query(request, "mode", required=False) or "request"
    tail = _flag(request, "tail", True)
    settings = context.settings

    def run() -> JSONObject:
        return detect_history(
            context.blob_store(),
            settings,
            device_id,
            metric,
            start or "",
            end or "",
            mode,
            DetectionOptions.from_settings(settings),
            tail=tail,
        )

    return JSONResponse(await run_in_threadpool(run))


async def anomalies(request: Request) -> Response:
    """``GET /meterwatch/v1/anomalies``."""
    from shared.history.detection import anomalies_between

    context = ApiContext.of(request)
    since = _query(request, "since")
    until = _query(request, "until", required=False)
    device = _query(request, "deviceId", required=False)
    if device is not None:
        device = checked_name(device, "deviceId", InputError)

    def run() -> list[JSONObject]:
        found = anomalies_between(
            context.blob_store(), context.settings, since or "", until, device
        )
        return [alert.to_dict() for alert in found]

    documents = await run_in_threadpool(run)
    return JSONResponse({"anomalies": documents, "count": len(documents)})


def routes() -> list[BaseRoute]:
    """The routes relative to ``/meterwatch/v1``."""
    return [
        Route("/history/{device_id}/{metric}", history, methods=["GET"], name="history"),
        Route("/anomalies", anomalies, methods=["GET"], name="anomalies"),
    ]
