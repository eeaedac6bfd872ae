"""The API versions the retired service published, and how each one's shapes differ from v1.1.

meterwatch answers every request with one implementation (the v1.1 contract); a version is a
thin translation of the request into v1.1 names and of the v1.1 response back into the
version's own shape, as the published REST specifications (Azure/azure-rest-api-specs,
``specification/cognitiveservices/data-plane/AnomalyDetector``) and the SDK releases that call
each version define them:

=================  ==============================  ==========================================
version            called by                       univariate differences from v1.1
=================  ==============================  ==========================================
``v1.0``           most published samples,         ``granularity`` and every ``timestamp``
                   ``azure-cognitiveservices-      required; no ``imputeMode`` /
                   anomalydetector``               ``imputeFixedValue``; no ``severity``
``v1.1-preview``   ``azure-ai-anomalydetector``    impute options nested as
                   3.0.0b3                         ``imputeStrategy {imputeMode, imputeValue}``;
                                                   no ``severity``
``v1.1-preview.1`` 3.0.0b4, 3.0.0b5                the same shapes as v1.1
``v1.1``           3.0.0b6                         (the reference)
=================  ==============================  ==========================================

The multivariate differences (``source`` for ``dataSource``, ``contributors`` in v1.1-preview
and ``interpretation`` later, ``$skip``/``$top``) live with the multivariate routes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from shared.errors import DetectionRequestError
from shared.jsontypes import JSONObject, JSONValue

V10 = "v1.0"
V11_PREVIEW = "v1.1-preview"
V11_PREVIEW_1 = "v1.1-preview.1"
V11 = "v1.1"

#: Versions with univariate routes, oldest first.
UNIVARIATE_VERSIONS = (V10, V11_PREVIEW, V11_PREVIEW_1, V11)
#: Versions without ``severity`` in univariate responses (it came with v1.1-preview.1).
_NO_SEVERITY = frozenset({V10, V11_PREVIEW})
#: Request fields of v1.0 (DetectRequest and ChangePointDetectRequest of the v1.0 spec).
_V10_FIELDS = frozenset(
    {
        "series",
        "granularity",
        "customInterval",
        "period",
        "maxAnomalyRatio",
        "sensitivity",
        "stableTrendWindow",
        "threshold",
    }
)
#: Impute fields of v1.1-preview.1 and later (flat in the body).
_FLAT_IMPUTE = ("imputeMode", "imputeFixedValue")


def univariate_request(version: str, body: Mapping[str, JSONValue]) -> JSONObject:
    """A univariate request of ``version`` in v1.1 names (fields the version lacks dropped).

    The service ignored fields a version did not define, so they are dropped rather than
    refused: a v1.0 request carrying ``imputeMode`` is detected with the default imputation, as
    v1.0 did. What a version *required* stays required: v1.0 without ``granularity`` gets
    ``RequiredGranularity``, as the v1.0 service answered (v1.1 infers ``none``).

    Args:
        version: One of :data:`UNIVARIATE_VERSIONS`.
        body: The decoded request body.

    Returns:
        The body to hand to the v1.1 contract.

    Raises:
        DetectionRequestError: ``InvalidGranularity`` for ``none`` in v1.0.
    """
    if version == V10:
        converted = {key: value for key, value in body.items() if key in _V10_FIELDS}
        converted.setdefault("granularity", None)  # required in v1.0: never inferred
        if converted["granularity"] == "none":
            raise DetectionRequestError(
                "v1.0 has no granularity 'none' (every point needs a timestamp): use one of "
                "yearly, monthly, weekly, daily, hourly, minutely, secondly, or call v1.1.",
                "InvalidGranularity",
            )
        return converted
    if version == V11_PREVIEW:
        converted = {key: value for key, value in body.items() if key not in _FLAT_IMPUTE}
        strategy = converted.pop("imputeStrategy", None)
        if isinstance(strategy, Mapping):
            if "imputeMode" in strategy:
                converted["imputeMode"] = strategy["imputeMode"]
            if "imputeValue" in strategy:
                converted["imputeFixedValue"] = strategy["imputeValue"]
        elif strategy is not None:
            converted["imputeMode"] = strategy  # not an object: the contract says what to send
        return converted
    return dict(body)


def multivariate_result(version: str, result: JSONObject) -> JSONObject:
    """A v1.1 batch result in the shape of ``version``.

    v1.1-preview (3.0.0b3) named each anomaly's top contributors ``contributors`` (items
    ``{contributionScore, variable}``); v1.1-preview.1 renamed them ``interpretation`` and added
    ``correlationChanges``.
    """
    if version != V11_PREVIEW:
        return result
    converted = dict(result)
    states = result.get("results", [])
    if isinstance(states, Sequence) and not isinstance(states, str):
        converted["results"] = [_with_contributors(state) for state in states]
    return converted


def _with_contributors(state: JSONValue) -> JSONValue:
    value = state.get("value") if isinstance(state, Mapping) else None
    if not isinstance(state, Mapping) or not isinstance(value, Mapping):
        return state
    renamed: JSONObject = {k: v for k, v in value.items() if k != "interpretation"}
    interpretation = value.get("interpretation") or []
    renamed["contributors"] = [
        {"contributionScore": item.get("contributionScore"), "variable": item.get("variable")}
        for item in (interpretation if isinstance(interpretation, Sequence) else [])
        if isinstance(item, Mapping)
    ]
    return {**state, "value": renamed}


def univariate_response(version: str, response: JSONObject) -> JSONObject:
    """A v1.1 univariate response in the shape of ``version``."""
    if version in _NO_SEVERITY:
        return {key: value for key, value in response.items() if key != "severity"}
    return response
