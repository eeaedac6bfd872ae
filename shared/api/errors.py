"""How errors leave the API: ``{"code", "message"}`` bodies with an ``x-ms-error-code`` header.

The retired service answered every failure with the same small body and put the code in the
``x-ms-error-code`` header too; clients (the ``azure-ai-anomalydetector`` SDK among them) map the
status to an exception (401 → ``ClientAuthenticationError``, 404 → ``ResourceNotFoundError``) and
read the body for the rest. The status of a :class:`~shared.errors.MeterwatchError` follows from
its class:

* :class:`~shared.errors.InputError` (bad request data, refused data sources): 400, or 413 for a
  body over the size limit;
* :class:`~shared.errors.ModelNotFoundError`, :class:`~shared.errors.ResultNotFoundError`: 404;
* :class:`~shared.errors.ModelError` (a model that cannot serve the call, e.g. not READY): 400;
* anything else meterwatch raised on purpose (a configuration problem): 500.

Unexpected exceptions are logged with their traceback and answered with a 500 whose message
says nothing about the internals.
"""

from __future__ import annotations

from shared.api.responses import JSONResponse
from shared.errors import (
    InputError,
    MeterwatchError,
    ModelError,
    ModelNotFoundError,
    ResultNotFoundError,
)

#: Header carrying the error code, as the service sent it.
ERROR_CODE_HEADER = "x-ms-error-code"
#: Code of a request body over the size limit (answered with 413).
PAYLOAD_TOO_LARGE = "PayloadTooLarge"
#: Code of a missing or wrong subscription key (answered with 401).
UNAUTHORIZED = "Unauthorized"
#: Code of an unknown route (404) and of a method a route does not take (405).
NOT_FOUND = "NotFound"
METHOD_NOT_ALLOWED = "MethodNotAllowed"
#: Code of an unexpected failure (500).
INTERNAL_ERROR = "InternalServerError"
#: Code of a storage account that did not answer (503).
STORAGE_UNAVAILABLE = "StorageUnavailable"


def error_response(status: int, code: str, message: str) -> JSONResponse:
    """The service's error response: body ``{"code", "message"}``, code also in a header.

    Args:
        status: HTTP status.
        code: Machine-readable error code.
        message: What went wrong and what to change.
    """
    return JSONResponse(
        {"code": code, "message": message},
        status_code=status,
        headers={ERROR_CODE_HEADER: code},
    )


def status_for(error: MeterwatchError) -> int:
    """The HTTP status of a meterwatch error (see the module docstring)."""
    if isinstance(error, ModelNotFoundError | ResultNotFoundError):
        return 404
    if isinstance(error, InputError):
        return 413 if error.code == PAYLOAD_TOO_LARGE else 400
    if isinstance(error, ModelError):
        return 400
    return 500


def response_for(error: MeterwatchError) -> JSONResponse:
    """The error response of a meterwatch error."""
    return error_response(status_for(error), error.code, error.message)
