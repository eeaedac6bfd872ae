"""HTTP trigger serving the Anomaly Detector v1.1 REST API (``anomalydetector/{*path}``).

One anonymous HTTP function forwards every request under ``anomalydetector/`` to the ASGI
application of :mod:`shared.api.app` through ``func.AsgiMiddleware``; the application checks
its own keys (``METERWATCH_API_KEYS`` in ``Ocp-Apim-Subscription-Key``), so the function's auth
level is ANONYMOUS. The function also takes a Durable client binding and lends it to the
application for the request, so training requested through the API starts the same
orchestration as an uploaded dataset, and batch detection runs as an orchestration too
(:func:`shared.multivariate.workflow.detection_orchestration`: its orchestrator and
activities are registered in :mod:`functions.multivariate`).

The API application (Starlette and the rest of :mod:`shared.api`) is imported on the first
request, not when the function app is indexed.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING

import azure.durable_functions as df
import azure.functions as func

from functions.bindings import DurableStarter
from shared.errors import ConfigurationError

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    from shared.settings import Settings

bp = df.Blueprint()

API_FUNCTION = "anomalydetector_api"
ROUTE = "anomalydetector/{*path}"
METHODS = (func.HttpMethod.GET, func.HttpMethod.POST, func.HttpMethod.DELETE)
CLIENT_BINDING = "client"

#: The app built for the current settings object: ``{"api": (settings, middleware)}``.
_cache: dict[str, tuple[Settings, func.AsgiMiddleware]] = {}


def asgi_middleware() -> func.AsgiMiddleware:
    """The API behind ``func.AsgiMiddleware``, built once per settings object."""
    from shared.api.app import RoutePrefixStripper, create_app
    from shared.settings import get_settings

    settings = get_settings()
    cached = _cache.get("api")
    if cached is None or cached[0] is not settings:
        middleware = func.AsgiMiddleware(RoutePrefixStripper(create_app(settings)))
        cached = _cache["api"] = (settings, middleware)
    return cached[1]


@bp.function_name(API_FUNCTION)
@bp.route(route=ROUTE, methods=METHODS, auth_level=func.AuthLevel.ANONYMOUS)
@bp.durable_client_input(client_name=CLIENT_BINDING)
async def anomalydetector_api(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    """Serve one v1.1 API request (the application answers every error itself).

    Without valid settings (no ``METERWATCH_API_KEYS`` above all) the API does not run: every
    request gets a coded 503 saying what the operator must set, and the reason is logged.
    """
    from shared.multivariate.workflow import current_starter

    try:
        middleware = asgi_middleware()
    except ConfigurationError as exc:
        return _not_configured("The v1.1 API", exc)
    token = current_starter.set(DurableStarter(client))
    try:
        response: func.HttpResponse = await middleware.handle_async(req)
        return response
    finally:
        current_starter.reset(token)


#: meterwatch's own routes (history by series, the anomaly log): the same application.
METERWATCH_FUNCTION = "meterwatch_api"
METERWATCH_ROUTE = "meterwatch/{*path}"


@bp.function_name(METERWATCH_FUNCTION)
@bp.route(
    route=METERWATCH_ROUTE, methods=(func.HttpMethod.GET,), auth_level=func.AuthLevel.ANONYMOUS
)
async def meterwatch_api(req: func.HttpRequest) -> func.HttpResponse:
    """Serve one ``/meterwatch/v1/...`` request (history, anomalies) through the same app."""

    try:
        middleware = asgi_middleware()
    except ConfigurationError as exc:
        return _not_configured("The API", exc)
    response: func.HttpResponse = await middleware.handle_async(req)
    return response


def _not_configured(what: str, exc: ConfigurationError) -> func.HttpResponse:
    """The coded 503 both HTTP functions answer while the API's settings are invalid."""
    logger.error("%s is not running: %s (%s)", what, exc.message, exc.code)
    return func.HttpResponse(
        json.dumps({"code": exc.code, "message": f"The API is not configured: {exc.message}"}),
        status_code=503,
        headers={"x-ms-error-code": exc.code},
        mimetype="application/json",
    )
