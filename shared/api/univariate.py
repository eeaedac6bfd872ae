"""The univariate routes: ``timeseries/{entire,last,changepoint}/detect``, in every version.

Each route reads the JSON body (size-limited), translates it from its API version into v1.1
names (:mod:`shared.api.versions`), hands it to the backend (the embedded engine through
:mod:`shared.univariate.contract`, the very functions the pipeline uses) in a worker thread of
the compute pool, so a long detection never blocks other requests and no storage call can take
its thread, and returns the response in the version's shape.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from anyio import to_thread
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from shared.api.body import read_json_object
from shared.api.context import ApiContext
from shared.api.responses import JSONResponse
from shared.api.versions import V11, univariate_request, univariate_response
from shared.jsontypes import JSONObject
from shared.univariate.contract import UnivariateBackend

MODES = ("entire", "last", "changepoint")


def _handler(mode: str, version: str) -> Callable[[Request], Awaitable[Response]]:
    async def detect(request: Request) -> Response:
        context = ApiContext.of(request)
        body = univariate_request(version, await read_json_object(request, context.max_body_bytes))
        backend: UnivariateBackend = context.backend
        method: Callable[[JSONObject], JSONObject] = getattr(backend, mode)
        # Detection runs on the compute pool, never on the pool storage calls wait in, so a
        # storage outage cannot hold back a request that needs no storage.
        result = await to_thread.run_sync(method, body, limiter=context.compute_limiter())
        return JSONResponse(univariate_response(version, result))

    detect.__name__ = f"detect_{mode}"
    return detect


def routes(version: str = V11) -> list[BaseRoute]:
    """The three univariate routes of ``version`` (relative to ``/anomalydetector/{version}``)."""
    return [
        Route(f"/timeseries/{mode}/detect", _handler(mode, version), methods=["POST"], name=mode)
        for mode in MODES
    ]
