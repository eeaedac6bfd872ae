"""A remote v1.1 endpoint as the univariate backend, through the ``azure-ai-anomalydetector`` SDK.

When ``ANOMALY_DETECTOR_ENDPOINT`` (and ``ANOMALY_DETECTOR_KEY``) are set,
:func:`shared.univariate.contract.backend_for` returns a :class:`RemoteBackend`: the pipeline's v1.1
requests go, unchanged, through the SDK's ``AnomalyDetectorClient`` to that endpoint (a second
meterwatch running ``meterwatch serve`` or the API in a function app, or any compatible
service) and the responses come back as the same v1.1 dictionaries the embedded engine returns.

Errors keep their meaning: a request the endpoint refuses (HTTP 400) becomes a
:class:`~shared.errors.DetectionRequestError` with the endpoint's code and message, exactly as the
embedded engine would raise it; a refused key is a :class:`~shared.errors.ConfigurationError`
naming the setting; network failures and server errors propagate as the SDK's
``azure.core.exceptions`` (after the SDK's own retries), so the Functions runtime retries the
invocation.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import cast, get_type_hints

from azure.ai.anomalydetector import AnomalyDetectorClient
from azure.core.credentials import AzureKeyCredential
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError

from shared.errors import ConfigurationError, DetectionRequestError, MeterwatchError
from shared.jsontypes import JSONObject, JSONValue
from shared.univariate.contract import (
    ChangePointResponse,
    EntireResponse,
    LastResponse,
)

logger = logging.getLogger(__name__)

#: Seconds to wait for a connection and for a response (the SDK retries on top of this).
CONNECTION_TIMEOUT_S = 10
READ_TIMEOUT_S = 60


class RemoteBackend:
    """Univariate detection by a remote Anomaly Detector v1.1 endpoint.

    Args:
        endpoint: The endpoint (``https://NAME.cognitiveservices.azure.com`` for the retired
            service, ``http://127.0.0.1:5000`` for ``meterwatch serve``); the SDK appends
            ``/anomalydetector/v1.1``.
        key: The endpoint's key (sent in ``Ocp-Apim-Subscription-Key``).
        **client_options: Passed to ``AnomalyDetectorClient`` (e.g. ``retry_total`` in tests).
    """

    def __init__(self, endpoint: str, key: str, **client_options: object) -> None:
        self.endpoint = endpoint.rstrip("/")
        client_options.setdefault("connection_timeout", CONNECTION_TIMEOUT_S)
        client_options.setdefault("read_timeout", READ_TIMEOUT_S)
        self._client = AnomalyDetectorClient(
            self.endpoint, AzureKeyCredential(key), **client_options
        )

    def entire(self, body: Mapping[str, object]) -> EntireResponse:
        """``timeseries/entire/detect`` on the remote endpoint."""
        plain = self._call("entire", self._client.detect_univariate_entire_series, body)
        return cast(EntireResponse, _with_fields(plain, _ENTIRE_FIELDS))

    def last(self, body: Mapping[str, object]) -> LastResponse:
        """``timeseries/last/detect`` on the remote endpoint."""
        plain = self._call("last", self._client.detect_univariate_last_point, body)
        return cast(LastResponse, _with_fields(plain, _LAST_FIELDS))

    def changepoint(self, body: Mapping[str, object]) -> ChangePointResponse:
        """``timeseries/changepoint/detect`` on the remote endpoint."""
        plain = self._call("changepoint", self._client.detect_univariate_change_point, body)
        return cast(ChangePointResponse, _with_fields(plain, _CHANGEPOINT_FIELDS))

    def close(self) -> None:
        """Close the client's connections."""
        self._client.close()

    def _call(
        self, mode: str, operation: Callable[..., object], body: Mapping[str, object]
    ) -> JSONObject:
        # Leave out nulls: the service treated a missing field and null alike, and the SDK
        # would otherwise send "period": null to a stricter endpoint.
        request = {key: value for key, value in body.items() if value is not None}
        try:
            result = operation(request)
        except ClientAuthenticationError as exc:
            raise ConfigurationError(
                f"The endpoint {self.endpoint} refused ANOMALY_DETECTOR_KEY (HTTP "
                f"{exc.status_code}): check the key.",
                "RemoteAuthenticationFailed",
            ) from exc
        except HttpResponseError as exc:
            if (
                exc.status_code is not None
                and 400 <= exc.status_code < 500
                and exc.status_code != 429
            ):
                code, message = _error_of(exc)
                raise DetectionRequestError(
                    f"{self.endpoint} refused the {mode} request: {message}", code
                ) from exc
            raise
        logger.debug("Remote %s detection by %s", mode, self.endpoint)
        plain = _plain(result)
        if not isinstance(plain, dict):
            raise MeterwatchError(
                "The endpoint's answer is not a JSON object.", "InvalidRemoteResponse"
            )
        return plain


#: The fields of each v1.1 response (the SDK gives the endpoint's JSON as it came).
_ENTIRE_FIELDS = frozenset(get_type_hints(EntireResponse))
_LAST_FIELDS = frozenset(get_type_hints(LastResponse))
_CHANGEPOINT_FIELDS = frozenset(get_type_hints(ChangePointResponse))


def _with_fields(plain: JSONObject, fields: frozenset[str]) -> JSONObject:
    """``plain`` once it has every field of its v1.1 response (the typed views' only check)."""
    missing = sorted(fields - plain.keys())
    if missing:
        raise MeterwatchError(
            f"The endpoint's answer lacks {', '.join(missing)}.", "InvalidRemoteResponse"
        )
    return plain


def _error_of(exc: HttpResponseError) -> tuple[str, str]:
    """The endpoint's error code and message (from the SDK's error model or the body)."""
    model = getattr(exc, "model", None)
    code = getattr(model, "code", None) if model is not None else None
    message = getattr(model, "message", None) if model is not None else None
    headers = getattr(exc.response, "headers", None)
    if not code and headers is not None:
        code = headers.get("x-ms-error-code")
    return str(code or "BadArgument"), str(message or exc.message or exc.reason or "bad request")


def _plain(value: object) -> JSONValue:
    """The SDK's models (mappings over the JSON) as plain dictionaries and lists."""
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise MeterwatchError(
        f"The endpoint answered with a {type(value).__name__}, not JSON.", "InvalidRemoteResponse"
    )
