"""The univariate routes: ``timeseries/{entire,last,changepoint}/detect``.

Each route reads the JSON body (size-limited), hands it to the backend (the embedded engine
through :mod:`shared.univariate.contract`, the very functions the pipeline uses) in a worker thread
so a
long detection never blocks other requests, and returns the v1.1 response unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from shared.api.body import read_json_object
from shared.api.context import ApiContext
from shared.api.responses import JSONResponse
from shared.univariate.contract import UnivariateBackend

MODES = ("entire", "last", "changepoint")


def _handler(mode: str) -> Callable[[Request], Any]:
    async def detect(request: Request) -> Response:
        context = ApiContext.of(request)
        body = await read_json_object(request, context.max_body_bytes)
        backend: UnivariateBackend = context.backend
        method: Callable[[dict[str, Any]], dict[str, Any]] = getattr(backend, mode)
        result = await run_in_threadpool(method, body)
        return JSONResponse(result)

    detect.__name__ = f"detect_{mode}"
    return detect


def routes() -> list[BaseRoute]:
    """The three univariate routes (relative to ``/anomalydetector/{version}``)."""
    return [
        Route(f"/timeseries/{mode}/detect", _handler(mode), methods=["POST"], name=mode)
        for mode in MODES
    ]
