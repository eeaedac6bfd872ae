"""The URLs the API writes (``Location``, ``Operation-Location``, ``nextLink``), Host-proof.

The retired service wrote absolute URLs on its own host. Building them from the request's
``Host`` header would let any caller plant another host in a link that a client then follows
with its key (issue 11). The base is therefore request-independent, in this order:

1. ``API_PUBLIC_URL`` (e.g. ``https://meters.example.com/api``; ``infra/`` sets it to the
   function app's own ``https://<name>.azurewebsites.net/api``);
2. the address ``meterwatch serve`` was started on (``http://127.0.0.1:5000``), plus the route
   prefix the request arrived under;
3. otherwise no host at all: ``Location`` is an absolute path (``/anomalydetector/...``) and
   ``nextLink`` a path relative to the version's base (``multivariate/models?skip=10&top=10``),
   which every ``azure-ai-anomalydetector`` release (3.0.0b3 to b6) joins to its endpoint and
   version (azure-core ``PipelineClient.format_url``).
"""

from __future__ import annotations

from starlette.requests import Request

from shared.api.context import ApiContext

#: The path every route lives under (the service's ``{endpoint}/anomalydetector``).
ROOT = "/anomalydetector"


def _prefix(request: Request) -> str:
    """The route prefix the request came in under (``/api`` in the function app, else ``""``).

    Inside a version's ``Mount`` Starlette's ``root_path`` ends with the mount's own path
    (``/anomalydetector/v1.1``), which is cut off here.
    """
    root = str(request.scope.get("root_path", "")).rstrip("/")
    at = root.find(ROOT + "/")
    if at >= 0 and "/" not in root[at + len(ROOT) + 1 :]:
        root = root[:at]
    return root


def public_base(request: Request) -> str | None:
    """The absolute URL ``/anomalydetector`` hangs off (no trailing slash), or ``None``."""
    context = ApiContext.of(request)
    settings = context.settings
    prefix = _prefix(request)
    if settings.api_public_url:
        return settings.api_public_url.rstrip("/")
    if context.public_url:
        return context.public_url.rstrip("/") + prefix
    return None


def location(request: Request, version: str, path: str) -> str:
    """A ``Location`` / ``Operation-Location`` URL for ``path`` under ``version``.

    Args:
        request: The request being answered (only its route prefix is used).
        version: The API version (``v1.1``...).
        path: The resource path below the version, e.g. ``multivariate/models/ID``.
    """
    base = public_base(request)
    return f"{base if base is not None else _prefix(request)}{ROOT}/{version}/{path.lstrip('/')}"


def next_link(request: Request, version: str, path: str) -> str:
    """A ``nextLink``: absolute with a known base, else relative to the version's base."""
    base = public_base(request)
    if base is None:
        return path.lstrip("/")
    return f"{base}{ROOT}/{version}/{path.lstrip('/')}"
