"""Settings: read once, typed, fail fast naming what is missing; the sample sets all of them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.errors import ConfigurationError
from shared.settings import Settings, setting_names

REPO = Path(__file__).resolve().parents[2]
BASE = {"AzureWebJobsStorage": "UseDevelopmentStorage=true"}


def test_defaults_and_types() -> None:
    settings = Settings.from_env({**BASE, "DETECT_SENSITIVITY": "80", "DETECT_PERIOD": "1440"})
    assert settings.detect_sensitivity == 80
    assert settings.detect_period == 1440
    assert settings.detect_custom_interval is None
    assert settings.raw_container == "raw-telemetry"
    with pytest.raises(AttributeError):
        settings.raw_container = "x"  # type: ignore[misc]


def test_missing_storage_names_the_setting() -> None:
    with pytest.raises(ConfigurationError, match="AzureWebJobsStorage"):
        Settings.from_env({})


def test_identity_based_storage_is_enough() -> None:
    settings = Settings.from_env(
        {"AzureWebJobsStorage__blobServiceUri": "https://acct.blob.core.windows.net"}
    )
    assert settings.storage_connection_string is None


@pytest.mark.parametrize(
    ("name", "value", "match"),
    [
        ("DETECT_SENSITIVITY", "abc", "DETECT_SENSITIVITY"),
        ("DETECT_SENSITIVITY", "120", "DETECT_SENSITIVITY"),
        ("DETECT_IMPUTE_MODE", "magic", "DETECT_IMPUTE_MODE"),
        ("DETECT_MAX_ANOMALY_RATIO", "0.9", "DETECT_MAX_ANOMALY_RATIO"),
        ("BLOB_TRIGGER_SOURCE", "Polling", "BLOB_TRIGGER_SOURCE"),
        ("DETECT_WINDOW_POINTS", "5", "DETECT_WINDOW_POINTS"),
        ("API_ALLOW_LOCAL_PATHS", "maybe", "API_ALLOW_LOCAL_PATHS='maybe' is not a valid boolean"),
    ],
)
def test_malformed_values_name_the_setting(name: str, value: str, match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        Settings.from_env({**BASE, name: value})


def test_fixed_impute_needs_a_value() -> None:
    with pytest.raises(ConfigurationError, match="DETECT_IMPUTE_FIXED_VALUE"):
        Settings.from_env({**BASE, "DETECT_IMPUTE_MODE": "fixed"})


def test_sample_settings_set_every_setting_the_code_reads() -> None:
    sample = json.loads((REPO / "local.settings.sample.json").read_text())["Values"]
    identity_only = {n for n in setting_names() if n.startswith("AzureWebJobsStorage__")}
    missing = [n for n in setting_names() if n not in sample and n not in identity_only]
    assert missing == []
    # And the sample itself is a valid configuration.
    Settings.from_env(sample)
