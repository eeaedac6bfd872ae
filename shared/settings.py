"""App settings, read once into a frozen typed object.

No other module reads ``os.environ``: they receive a :class:`Settings` (or call
:func:`get_settings`, which reads the environment once per process). A missing or malformed
setting raises :class:`~shared.errors.ConfigurationError` naming it.

Every setting the code reads is declared here, with its app-setting name in the field's
metadata; :func:`setting_names` lists them, and tests check that ``local.settings.sample.json``
and the Bicep templates set exactly those.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from functools import lru_cache
from pathlib import Path
from typing import Any

from shared.errors import ConfigurationError
from shared.univariate.parameters import (
    DEFAULT_MAX_ANOMALY_RATIO,
    DEFAULT_SENSITIVITY,
    IMPUTE_MODES,
)

#: Impute modes of the v1.1 contract.

#: Where the raw-container blob trigger gets its events from (Event Grid in the cloud).
BLOB_TRIGGER_SOURCES = ("LogsAndContainerScan", "EventGrid")


# Any (private): dataclasses.field stands for the field's own type, whatever it is.
def _setting(env: str, default: Any = None, *, required: bool = False, doc: str = "") -> Any:
    return field(default=default, metadata={"env": env, "required": required, "doc": doc})


@dataclass(frozen=True)
class Settings:
    """Everything meterwatch reads from app settings (see the README's configuration table)."""

    # Storage: a connection string locally (Azurite), identity-based in the cloud.
    storage_connection_string: str | None = _setting(
        "AzureWebJobsStorage", doc="Storage connection string (UseDevelopmentStorage=true locally)"
    )
    storage_blob_service_uri: str | None = _setting(
        "AzureWebJobsStorage__blobServiceUri",
        doc="Blob endpoint for identity-based storage (cloud); used when no connection string",
    )
    storage_client_id: str | None = _setting(
        "AzureWebJobsStorage__clientId", doc="Client id of the user-assigned managed identity"
    )
    # Event Hubs (the trigger reads the EventHubConnection* settings through the host).
    eventhub_name: str = _setting("EVENTHUB_NAME", "telemetry", doc="Event Hub the ingest reads")
    eventhub_consumer_group: str = _setting(
        "EVENTHUB_CONSUMER_GROUP", "$Default", doc="Consumer group of the ingest trigger"
    )
    # Containers.
    raw_container: str = _setting("RAW_CONTAINER", "raw-telemetry", doc="Raw telemetry batches")
    results_container: str = _setting(
        "RESULTS_CONTAINER", "detection-results", doc="Detection requests, results, summaries"
    )
    deadletter_container: str = _setting(
        "DEADLETTER_CONTAINER", "deadletter", doc="Rejected input with its reason"
    )
    training_container: str = _setting(
        "TRAINING_CONTAINER", "mv-training", doc="Multivariate datasets uploaded by operators"
    )
    models_container: str = _setting(
        "MODELS_CONTAINER", "mv-models", doc="Multivariate model registry and artifacts"
    )
    blob_trigger_source: str = _setting(
        "BLOB_TRIGGER_SOURCE",
        "LogsAndContainerScan",
        doc="Blob trigger source: LogsAndContainerScan (local) or EventGrid (cloud)",
    )
    # Univariate detection parameters (v1.1 names in the request).
    detect_granularity: str = _setting(
        "DETECT_GRANULARITY", "auto", doc="v1.1 granularity, or auto to infer it from timestamps"
    )
    detect_custom_interval: int | None = _setting(
        "DETECT_CUSTOM_INTERVAL", doc="v1.1 customInterval (inferred with granularity=auto)"
    )
    detect_period: int | None = _setting("DETECT_PERIOD", doc="Period in points; empty = detect")
    detect_sensitivity: int = _setting(
        "DETECT_SENSITIVITY", DEFAULT_SENSITIVITY, doc="0-99, higher flags more"
    )
    detect_max_anomaly_ratio: float = _setting(
        "DETECT_MAX_ANOMALY_RATIO",
        DEFAULT_MAX_ANOMALY_RATIO,
        doc="Upper bound of the flagged share (0, 0.5]",
    )
    detect_impute_mode: str = _setting(
        "DETECT_IMPUTE_MODE", "auto", doc="auto, previous, linear, fixed, zero or notFill"
    )
    detect_impute_fixed_value: float | None = _setting(
        "DETECT_IMPUTE_FIXED_VALUE", doc="Fill value when DETECT_IMPUTE_MODE=fixed"
    )
    detect_window_points: int = _setting(
        "DETECT_WINDOW_POINTS", 1440, doc="Points of history assembled per detection (12-8640)"
    )
    # History by series and scheduled detection (shared/history).
    history_container: str = _setting(
        "HISTORY_CONTAINER",
        "history",
        doc="Compacted history per device and day, the raw-batch manifest and the job cursors",
    )
    history_compaction_schedule: str = _setting(
        "HISTORY_COMPACTION_SCHEDULE",
        "0 0 * * * *",
        doc="NCRONTAB schedule of the compaction job (folds new raw batches into history)",
    )
    scheduled_detection_schedule: str = _setting(
        "SCHEDULED_DETECTION_SCHEDULE",
        "0 10 * * * *",
        doc="NCRONTAB schedule of entire and change-point detection over active series",
    )
    scheduled_detection_lookback_hours: int = _setting(
        "SCHEDULED_DETECTION_LOOKBACK_HOURS",
        24,
        doc="Hours of history each scheduled detection judges (1-720)",
    )
    # Live detection per raw batch (blob trigger) and the alerts it publishes.
    live_state_shards: int = _setting(
        "LIVE_STATE_SHARDS",
        64,
        doc="Stream-state documents the fleet's series are hashed into (about series/100)",
    )
    live_snapshot_points: int = _setting(
        "LIVE_SNAPSHOT_POINTS",
        60,
        doc="Points a series learns between full snapshots of its detector state",
    )
    live_bootstrap_days: int = _setting(
        "LIVE_BOOTSTRAP_DAYS", 3, doc="Days of history a series without state starts from"
    )
    anomalies_eventhub_name: str = _setting(
        "ANOMALIES_EVENTHUB_NAME", "anomalies", doc="Event Hub the alerts are published to"
    )
    anomalies_namespace: str | None = _setting(
        "AnomaliesConnection__fullyQualifiedNamespace",
        doc="Event Hubs namespace of the anomalies hub (identity-based output binding)",
    )
    # Multivariate training (Durable orchestration).
    mv_poll_interval_seconds: int = _setting(
        "MV_POLL_INTERVAL_SECONDS", 10, doc="How often the orchestrator polls training status"
    )
    mv_training_deadline_minutes: int = _setting(
        "MV_TRAINING_DEADLINE_MINUTES", 60, doc="Training not READY by then is marked FAILED"
    )
    mv_max_upload_mb: int = _setting(
        "MV_MAX_UPLOAD_MB", 200, doc="Largest accepted dataset upload (zip or CSV), in MB"
    )
    # The v1.1 REST API served by meterwatch, and the optional remote detection endpoint.
    api_keys: str | None = _setting(
        "METERWATCH_API_KEYS",
        doc="Comma-separated keys accepted in Ocp-Apim-Subscription-Key (the API refuses to "
        "start without one)",
    )
    api_allow_local_paths: bool = _setting(
        "API_ALLOW_LOCAL_PATHS", False, doc="Allow dataSource to be a local path (serve only)"
    )
    api_public_url: str | None = _setting(
        "API_PUBLIC_URL",
        doc="Base of the URLs the API writes in Location and nextLink (e.g. "
        "https://meters.example.com/api); never taken from a request's Host header",
    )
    remote_endpoint: str | None = _setting(
        "ANOMALY_DETECTOR_ENDPOINT",
        doc="A remote v1.1-compatible endpoint; when set, univariate detection calls it",
    )
    remote_key: str | None = _setting(
        "ANOMALY_DETECTOR_KEY", doc="Key for ANOMALY_DETECTOR_ENDPOINT (a Key Vault reference)"
    )

    @property
    def api_key_list(self) -> tuple[str, ...]:
        """The configured API keys, blanks removed."""
        return tuple(k.strip() for k in (self.api_keys or "").split(",") if k.strip())

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Build settings from a mapping of app settings.

        Args:
            env: App settings (``os.environ`` in the host, a dict in tests).

        Returns:
            The validated settings.

        Raises:
            ConfigurationError: A required setting is missing or a value is malformed; the
                message names the setting and what it expects.
        """
        values: dict[str, Any] = {}  # Any (private): one value per field type, for cls(**values)
        for spec in fields(cls):
            name = spec.metadata["env"]
            raw = env.get(name)
            if raw is None or raw.strip() == "":
                continue
            values[spec.name] = _convert(name, raw.strip(), _CONVERTERS.get(spec.name, str))
        settings = cls(**values)
        settings._validate()
        return settings

    def _validate(self) -> None:
        if not self.storage_connection_string and not self.storage_blob_service_uri:
            raise ConfigurationError(
                "Missing app setting AzureWebJobsStorage: set it to a storage connection string "
                "(UseDevelopmentStorage=true for Azurite) or set "
                "AzureWebJobsStorage__blobServiceUri for identity-based access."
            )
        if self.detect_impute_mode not in IMPUTE_MODES:
            raise ConfigurationError(
                f"DETECT_IMPUTE_MODE={self.detect_impute_mode!r}: expected one of {IMPUTE_MODES}."
            )
        if self.detect_impute_mode == "fixed" and self.detect_impute_fixed_value is None:
            raise ConfigurationError(
                "DETECT_IMPUTE_MODE=fixed needs DETECT_IMPUTE_FIXED_VALUE (a number)."
            )
        if self.blob_trigger_source not in BLOB_TRIGGER_SOURCES:
            raise ConfigurationError(
                f"BLOB_TRIGGER_SOURCE={self.blob_trigger_source!r}: expected one of "
                f"{BLOB_TRIGGER_SOURCES}."
            )
        if not 0 <= self.detect_sensitivity <= 99:
            raise ConfigurationError("DETECT_SENSITIVITY must be an integer from 0 to 99.")
        if not 0 < self.detect_max_anomaly_ratio <= 0.5:
            raise ConfigurationError("DETECT_MAX_ANOMALY_RATIO must be in (0, 0.5].")
        if not 12 <= self.detect_window_points <= 8640:
            raise ConfigurationError("DETECT_WINDOW_POINTS must be from 12 to 8640.")
        if not 1 <= self.live_state_shards <= 9999:
            raise ConfigurationError("LIVE_STATE_SHARDS must be from 1 to 9999.")
        if self.live_snapshot_points < 1:
            raise ConfigurationError("LIVE_SNAPSHOT_POINTS must be positive.")
        if not 0 <= self.live_bootstrap_days <= 62:
            raise ConfigurationError("LIVE_BOOTSTRAP_DAYS must be from 0 to 62.")
        if self.mv_poll_interval_seconds < 1 or self.mv_training_deadline_minutes < 1:
            raise ConfigurationError(
                "MV_POLL_INTERVAL_SECONDS and MV_TRAINING_DEADLINE_MINUTES must be positive."
            )
        if self.remote_endpoint and not self.remote_key:
            raise ConfigurationError(
                "ANOMALY_DETECTOR_ENDPOINT is set but ANOMALY_DETECTOR_KEY is missing."
            )
        for name, schedule in (
            ("HISTORY_COMPACTION_SCHEDULE", self.history_compaction_schedule),
            ("SCHEDULED_DETECTION_SCHEDULE", self.scheduled_detection_schedule),
        ):
            if len(schedule.split()) != 6:
                raise ConfigurationError(
                    f"{name}={schedule!r}: expected an NCRONTAB expression of six fields "
                    "(second minute hour day month weekday), e.g. '0 */15 * * * *'."
                )
        if not 1 <= self.scheduled_detection_lookback_hours <= 720:
            raise ConfigurationError("SCHEDULED_DETECTION_LOOKBACK_HOURS must be from 1 to 720.")
        if self.mv_max_upload_mb < 1:
            raise ConfigurationError("MV_MAX_UPLOAD_MB must be positive.")


def _boolean(raw: str) -> bool:
    lowered = raw.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ConfigurationError(f"{raw!r} is not a boolean")


_CONVERTERS: dict[str, Callable[[str], object]] = {
    "detect_custom_interval": int,
    "detect_period": int,
    "detect_sensitivity": int,
    "detect_max_anomaly_ratio": float,
    "detect_impute_fixed_value": float,
    "detect_window_points": int,
    "live_state_shards": int,
    "live_snapshot_points": int,
    "live_bootstrap_days": int,
    "mv_poll_interval_seconds": int,
    "mv_training_deadline_minutes": int,
    "mv_max_upload_mb": int,
    "scheduled_detection_lookback_hours": int,
    "api_allow_local_paths": _boolean,
}


def _convert(name: str, raw: str, converter: Callable[[str], object]) -> object:
    try:
        return converter(raw)
    except (ValueError, ConfigurationError) as exc:
        kind = getattr(converter, "__name__", "value").strip("_<>")
        raise ConfigurationError(f"App setting {name}={raw!r} is not a valid {kind}.") from exc


def setting_names() -> list[str]:
    """Return the app-setting names the code reads, in declaration order."""
    return [spec.metadata["env"] for spec in fields(Settings)]


def setting_docs() -> dict[str, tuple[object, str]]:
    """Return ``{name: (default, description)}`` for the README's configuration table."""
    return {spec.metadata["env"]: (spec.default, spec.metadata["doc"]) for spec in fields(Settings)}


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Read the process environment once and return the settings (cached)."""
    return Settings.from_env(os.environ)


def local_environment(directory: Path | None = None) -> dict[str, str]:
    """App settings for command-line use: ``local.settings.json`` values under the environment.

    The CLI and ``meterwatch serve`` read the same settings as the function app: the
    ``Values`` of ``local.settings.json`` in ``directory`` (the working directory by default),
    overridden by environment variables of the same name.
    """
    path = (directory or Path.cwd()) / "local.settings.json"
    values: dict[str, str] = {}
    if path.exists():
        try:
            document = json.loads(path.read_text(encoding="utf-8-sig"))
        except ValueError as exc:
            raise ConfigurationError(f"{path} is not valid JSON: {exc}") from exc
        values = {str(k): str(v) for k, v in (document.get("Values") or {}).items()}
    values.update(os.environ)
    return values


def trigger_source_from_env() -> str:
    """Return the blob trigger source for binding metadata, read at function-app import.

    Binding metadata is fixed when the app is indexed, before any invocation, so this one value
    is read without requiring the rest of the settings (which are validated on first use).
    """
    value = os.environ.get("BLOB_TRIGGER_SOURCE", "").strip() or "LogsAndContainerScan"
    if value not in BLOB_TRIGGER_SOURCES:
        raise ConfigurationError(
            f"BLOB_TRIGGER_SOURCE={value!r}: expected one of {BLOB_TRIGGER_SOURCES}."
        )
    return value
