"""Subscription keys: ``Ocp-Apim-Subscription-Key`` checked against ``METERWATCH_API_KEYS``.

The check is constant-time: the candidate is compared with every configured key using
:func:`hmac.compare_digest`, without stopping at the first match, so the response time tells an
attacker neither how much of a key was right nor which key matched.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Sequence

from starlette.types import ASGIApp, Receive, Scope, Send

from shared.api.errors import UNAUTHORIZED, error_response
from shared.errors import ConfigurationError

logger = logging.getLogger(__name__)

#: The header the service (and its SDK's ``AzureKeyCredential``) uses for the key.
KEY_HEADER = "Ocp-Apim-Subscription-Key"
_KEY_HEADER_BYTES = KEY_HEADER.lower().encode("latin-1")

_DENIED = (
    "Access denied due to a missing or invalid subscription key: send one of the keys in "
    f"METERWATCH_API_KEYS in the {KEY_HEADER} header."
)


class KeyRing:
    """The accepted subscription keys.

    Args:
        keys: The configured keys (blanks are not allowed).

    Raises:
        ConfigurationError: No key is configured: the API must not run open.
    """

    def __init__(self, keys: Sequence[str]) -> None:
        cleaned = [k.strip() for k in keys if k.strip()]
        if not cleaned:
            raise ConfigurationError(
                "No API key is configured: set METERWATCH_API_KEYS to one or more "
                "comma-separated keys (the API refuses to start without one).",
                "MissingApiKeys",
            )
        self._keys = tuple(k.encode("utf-8") for k in cleaned)

    def accepts(self, candidate: str | bytes | None) -> bool:
        """Whether ``candidate`` is one of the keys (constant-time in the candidate)."""
        if candidate is None:
            return False
        given = candidate.encode("utf-8") if isinstance(candidate, str) else candidate
        matched = False
        for key in self._keys:
            matched |= hmac.compare_digest(given, key)
        return matched


class SubscriptionKeyMiddleware:
    """ASGI middleware answering 401 to HTTP requests without an accepted key.

    Args:
        app: The application behind it.
        keys: The accepted keys.
    """

    def __init__(self, app: ASGIApp, keys: KeyRing) -> None:
        self.app = app
        self.keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        candidate = None
        for name, value in scope.get("headers") or ():
            if name.lower() == _KEY_HEADER_BYTES:
                candidate = value
                break
        if not self.keys.accepts(candidate):
            logger.info("Refused %s %s: missing or wrong key", scope["method"], scope["path"])
            await error_response(401, UNAUTHORIZED, _DENIED)(scope, receive, send)
            return
        await self.app(scope, receive, send)
