"""Reading request bodies: a size limit first, then strict JSON.

Bodies are refused before they are read when ``Content-Length`` is over the limit, and reading
stops as soon as a streamed (chunked) body passes it, so a huge upload costs the server nothing.
JSON is parsed strictly (orjson): ``NaN``/``Infinity`` literals, numbers that overflow a double,
invalid UTF-8 and nesting deeper than 1,024 levels are all a coded 400, never a 500.
"""

from __future__ import annotations

import orjson
from starlette.requests import Request

from shared.api.errors import PAYLOAD_TOO_LARGE
from shared.errors import InputError, json_type
from shared.jsontypes import JSONObject, JSONValue

#: Default limit of a request body (the largest multivariate detect-last request fits).
DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024
INVALID_JSON = "InvalidJsonFormat"


def _too_large(limit: int) -> InputError:
    return InputError(
        f"The request body is larger than {limit // (1024 * 1024)} MB: send less data per "
        "request (at most 8,640 points per univariate series).",
        PAYLOAD_TOO_LARGE,
    )


async def read_body(request: Request, limit: int) -> bytes:
    """Read the whole body, refusing more than ``limit`` bytes.

    Raises:
        InputError: ``PayloadTooLarge`` (413) or a malformed ``Content-Length``.
    """
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError as exc:
            raise InputError("Content-Length must be an integer.", "BadArgument") from exc
        if size > limit:
            raise _too_large(limit)
    chunks: list[bytes] = []
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(data: bytes) -> JSONValue:
    """Parse a JSON body strictly (orjson: RFC 8259, UTF-8, nesting depth at most 1,024).

    Raises:
        InputError: ``InvalidJsonFormat`` with the parser's reason and position.
    """
    if not data.strip():
        raise InputError("The request body is empty: send a JSON object.", INVALID_JSON)
    try:
        document: JSONValue = orjson.loads(data)
        return document
    except orjson.JSONDecodeError as exc:
        raise InputError(
            f"The request body is not valid JSON: {exc.msg} at line {exc.lineno} column "
            f"{exc.colno}.",
            INVALID_JSON,
        ) from exc


async def read_json_object(request: Request, limit: int) -> JSONObject:
    """Read the body as a JSON object.

    Raises:
        InputError: Too large (413), not JSON, or not an object (400).
    """
    document = parse_json(await read_body(request, limit))
    if not isinstance(document, dict):
        raise InputError(
            f"The request body must be a JSON object, got {json_type(document)}.",
            INVALID_JSON,
        )
    return document
