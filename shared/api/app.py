"""The Anomaly Detector v1.1 REST API as an ASGI application (Starlette).

The same application runs in the function app (behind ``func.AsgiMiddleware``, see
``functions/api.py``) and standalone (``meterwatch serve``, on uvicorn). Routes live under
``/anomalydetector/{version}`` for every version the service published (v1.0 univariate only;
v1.1-preview, v1.1-preview.1 and v1.1, see :mod:`shared.api.versions`); every request needs an
accepted ``Ocp-Apim-Subscription-Key``; every failure is the service's ``{"code", "message"}``
body with an ``x-ms-error-code`` header, and bad input is always a 4xx
(see :mod:`shared.api.errors`). meterwatch's own archive routes (history by series, the
anomaly log) live under ``/meterwatch/v1`` (:mod:`shared.api.history`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from azure.core.exceptions import AzureError, ServiceRequestError, ServiceResponseError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount
from starlette.types import ASGIApp, Receive, Scope, Send

from shared.api.auth import KeyRing, SubscriptionKeyMiddleware
from shared.api.body import DEFAULT_MAX_BODY_BYTES
from shared.api.context import ApiContext
from shared.api.errors import (
    INTERNAL_ERROR,
    METHOD_NOT_ALLOWED,
    NOT_FOUND,
    STORAGE_UNAVAILABLE,
    error_response,
    response_for,
)
from shared.api.history import METERWATCH_ROOT, METERWATCH_V1
from shared.api.history import routes as history_routes
from shared.api.links import ROOT
from shared.api.multivariate import routes as multivariate_routes
from shared.api.univariate import routes as univariate_routes
from shared.api.versions import UNIVARIATE_VERSIONS
from shared.errors import MeterwatchError
from shared.settings import Settings
from shared.univariate.contract import EmbeddedBackend, UnivariateBackend

if TYPE_CHECKING:
    from shared.multivariate.service import MultivariateService
    from shared.storage.client import BlobStore

logger = logging.getLogger(__name__)

#: API versions served (see :mod:`shared.api.versions` for how their shapes differ).
V11 = "v1.1"
V11_PREVIEW = "v1.1-preview.1"
VERSIONS = ("v1.0", "v1.1-preview", V11_PREVIEW, V11)
#: Versions with multivariate routes (v1.0 had none).
MULTIVARIATE_VERSIONS = ("v1.1-preview", V11_PREVIEW, V11)


def create_app(
    settings: Settings,
    *,
    backend: UnivariateBackend | None = None,
    store: BlobStore | None = None,
    multivariate: MultivariateService | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    public_url: str | None = None,
) -> Starlette:
    """Build the API application.

    Args:
        settings: App settings (keys from ``METERWATCH_API_KEYS``, storage, containers).
        backend: Who answers univariate requests (default: the embedded engine).
        store: A :class:`~shared.storage.client.BlobStore` (default: connected from the settings on
            first use, so univariate-only use never touches storage).
        multivariate: The multivariate service behind the model routes (default: built on
            first use from the store and settings).
        max_body_bytes: Largest accepted request body (larger: 413 ``PayloadTooLarge``).
        public_url: The address the server listens on (``meterwatch serve``): the base of the
            URLs the API writes unless ``API_PUBLIC_URL`` is set; never the request's ``Host``.

    Returns:
        The ASGI application.

    Raises:
        ConfigurationError: No API key is configured (the API refuses to run open).
    """
    keys = KeyRing(settings.api_key_list)
    context = ApiContext(
        settings=settings,
        backend=backend or EmbeddedBackend(),
        max_body_bytes=max_body_bytes,
        store=store,
        multivariate=multivariate,
        public_url=public_url,
    )
    app = Starlette(
        routes=[
            *(Mount(f"{ROOT}/{version}", routes=_version_routes(version)) for version in VERSIONS),
            Mount(f"{METERWATCH_ROOT}/{METERWATCH_V1}", routes=history_routes()),
        ],
        exception_handlers={
            MeterwatchError: _meterwatch_error,
            HTTPException: _http_error,
            AzureError: _storage_error,
            Exception: _unexpected_error,
        },
    )
    app.state.meterwatch = context
    app.add_middleware(SubscriptionKeyMiddleware, keys=keys)
    return app


def _version_routes(version: str) -> list[BaseRoute]:
    routes = univariate_routes(version) if version in UNIVARIATE_VERSIONS else []
    if version in MULTIVARIATE_VERSIONS:
        routes += multivariate_routes(version)
    return routes


async def _meterwatch_error(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, MeterwatchError):  # registered for MeterwatchError only
        raise exc
    response = response_for(exc)
    if response.status_code >= 500:
        logger.error(
            "%s %s failed: %s (%s)", request.method, request.url.path, exc.message, exc.code
        )
    return response


async def _http_error(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, HTTPException):  # registered for HTTPException only
        raise exc
    if exc.status_code == 404:
        return error_response(
            404,
            NOT_FOUND,
            f"No operation at {request.url.path}: the API serves "
            + ", ".join(f"{ROOT}/{version}/..." for version in VERSIONS)
            + " (see the compatibility table in the README) and "
            + f"{METERWATCH_ROOT}/{METERWATCH_V1}/... (history, anomalies).",
        )
    if exc.status_code == 405:
        return error_response(
            405, METHOD_NOT_ALLOWED, f"{request.method} is not allowed on {request.url.path}."
        )
    return error_response(exc.status_code, str(exc.status_code), str(exc.detail))


async def _storage_error(request: Request, exc: Exception) -> Response:
    logger.error("%s %s: storage failed", request.method, request.url.path, exc_info=exc)
    if isinstance(exc, ServiceRequestError | ServiceResponseError):
        return error_response(
            503,
            STORAGE_UNAVAILABLE,
            "The storage account did not answer; retry later (locally: is Azurite running?).",
        )
    return error_response(
        503, STORAGE_UNAVAILABLE, "The storage account refused the operation; retry later."
    )


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    logger.error("%s %s failed unexpectedly", request.method, request.url.path, exc_info=exc)
    return error_response(
        500, INTERNAL_ERROR, "The server failed to process the request; retry later."
    )


class RoutePrefixStripper:
    """Serve the API below any route prefix (the Functions host's ``/api`` by default).

    A request for ``/api/anomalydetector/v1.1/...`` is passed on with ``/api`` as its
    ``root_path``, so it is routed as ``/anomalydetector/v1.1/...`` and the URLs the API writes
    (``Location``, ``Operation-Location``, ``nextLink``) keep the prefix.

    Args:
        app: The API application.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope.get("root_path"):
            path: str = scope["path"]
            at = path.find(ROOT + "/")
            if at < 0:
                at = path.find(METERWATCH_ROOT + "/")
            if at > 0:
                # Starlette keeps the full path and routes on what follows root_path.
                scope = {**scope, "root_path": path[:at]}
        await self.app(scope, receive, send)
