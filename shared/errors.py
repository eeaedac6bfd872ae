"""The one error hierarchy of meterwatch.

Errors are raised, never returned. Every error that reaches a user carries a ``code`` (the
Anomaly Detector v1.1 error code where the service had one) and a message that says what to fix::

    MeterwatchError                      base of everything meterwatch raises on purpose
    ├── ConfigurationError               a missing or malformed app setting (names the setting)
    ├── InputError                       bad input from a user or device (coded, never retried)
    │   ├── TelemetryError               one bad event: not JSON, missing field, NaN, bad timestamp
    │   ├── RawBatchError                a raw blob that cannot be read (empty, truncated, schema)
    │   ├── DetectionRequestError        a v1.1 request the engine refuses (InvalidSeries, ...)
    │   ├── CsvFormatError               a CSV file that is not ``timestamp,value`` shaped
    │   ├── DatasetError                 a multivariate dataset or zip that cannot be used
    │   └── AlertError                   an alert document that breaks ``meterwatch.alert/1``
    ├── ModelError                       a multivariate model that cannot serve the call
    │   ├── ModelNotFoundError           no model with that id (HTTP 404)
    │   └── ModelNotReadyError           the model exists but is not READY
    ├── ResultNotFoundError              no detection result with that id (HTTP 404)
    ├── PayloadError                     an orchestration or activity payload of the wrong shape
    ├── ConflictError                    a conditional write lost every attempt to other writers
    ├── StateError                       a stored state document that is not ours (format, version)
    └── EngineError (also ValueError)    the engine refuses its arguments: a configuration out of
                                         range, an array of the wrong shape, a state it did not
                                         write, or a result that is not finite

    InputError
    ├── HistoryError                     a history range that cannot be read (start after end,
    │                                    too long), or a history blob that is not ours
    └── EvaluationError (also ValueError) labels, windows or scoring arguments that do not fit
                                         the series they score

The two that are also :class:`ValueError` keep the contract of the numeric code they guard
(``numpy``-style callers catch ``ValueError``); everything else meterwatch raises is only in
this tree.

Storage failures are *not* wrapped: the Azure SDK's own exceptions propagate so that the
Functions runtime retries the invocation.
"""

from __future__ import annotations


class MeterwatchError(Exception):
    """Base class: every error meterwatch raises on purpose.

    Args:
        message: What went wrong and what to do about it.
        code: A short machine-readable code (v1.1 error code where one exists).
    """

    default_code = "InternalError"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code

    def to_dict(self) -> dict[str, str]:
        """Return the v1.1 error body ``{"code", "message"}``."""
        return {"code": self.code, "message": self.message}


class ConfigurationError(MeterwatchError):
    """An app setting is missing or malformed; the message names the setting."""

    default_code = "InvalidConfiguration"


class InputError(MeterwatchError):
    """Bad input: the caller must change it; retrying will not help."""

    default_code = "BadArgument"


class TelemetryError(InputError):
    """One telemetry event cannot be used (it is dead-lettered with this reason)."""

    default_code = "InvalidTelemetry"


class RawBatchError(InputError):
    """A raw blob cannot be read as a batch of readings; the blob trigger dead-letters it whole.

    Codes: ``EmptyBlob``, ``InvalidGzip``, ``TooLarge``, ``InvalidEncoding``, ``InvalidJson``,
    ``InvalidSchema``, ``UnsupportedVersion``, ``InvalidName``, ``InvalidValue``,
    ``InvalidTimestamp``, ``InvalidAvro``.
    """

    default_code = "InvalidRawBatch"


class DetectionRequestError(InputError):
    """A detection request violates the v1.1 contract (series limits, parameters)."""

    default_code = "InvalidSeries"


class CsvFormatError(InputError):
    """A CSV file is not the expected ``timestamp,value`` shape."""

    default_code = "InvalidCsv"


class DatasetError(InputError):
    """A multivariate dataset (zip or one-table CSV) cannot be used for training or detection."""

    default_code = "InvalidDataset"


class AlertError(InputError):
    """An alert document is not a valid ``meterwatch.alert/1`` event (field, schema or id)."""

    default_code = "InvalidAlert"


class ModelError(MeterwatchError):
    """A multivariate model cannot serve the call."""

    default_code = "ModelError"


class ModelNotFoundError(ModelError):
    """No model exists with the given id."""

    default_code = "ModelNotExist"


class ModelNotReadyError(ModelError):
    """The model exists but its status is not READY."""

    default_code = "ModelNotReady"


class ResultNotFoundError(MeterwatchError):
    """No detection result exists with the given id."""

    default_code = "ResultNotExist"


class HistoryError(InputError):
    """A history read that cannot be served: a bad range, or a history blob that is not ours."""

    default_code = "InvalidHistoryRange"


class PayloadError(MeterwatchError):
    """An orchestration input or activity payload is not the shape its reader expects.

    Payloads are only written by the typed payloads of :mod:`shared.multivariate.payloads`, so
    this means a programming error or a version skew between a running instance and new code
    (drain or terminate the old instances).
    """

    default_code = "InvalidPayload"


class ConflictError(MeterwatchError):
    """A read-modify-write lost the race to other writers on every attempt.

    Not bad input: the next run (or the runtime's retry of the invocation) tries again.
    """

    default_code = "Conflict"


class StateError(MeterwatchError):
    """A stored state document (a live-state snapshot) is not of the format or version we write.

    Not bad input: the runtime retries the invocation; an operator must look at the blob.
    """

    default_code = "InvalidState"


class EngineError(MeterwatchError, ValueError):
    """The engine refuses its arguments, or its result is unusable.

    A configuration value out of range, a series of the wrong shape or length, a state document
    it did not write, or a non-finite score. The use cases validate user input before the engine
    sees it, so reaching the API this is an internal error (500). Also a :class:`ValueError`, the
    contract of numeric code, which the engine's callers catch.
    """

    default_code = "InvalidEngineArgument"


class EvaluationError(InputError, ValueError):
    """Benchmark labels, windows or scoring arguments that do not fit the series they score.

    Also a :class:`ValueError` (the contract of the scoring functions, which take arrays).
    """

    default_code = "InvalidLabels"


def json_type(value: object) -> str:
    """The JSON name of a decoded value's type (for error messages)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"
