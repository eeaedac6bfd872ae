"""``meterwatch serve`` refuses to start without a key or without storage, and says why."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.cli.main import main
from shared.cli.serve import free_port


@pytest.fixture
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No app settings in the environment, and a working directory without local settings."""
    for name in ("METERWATCH_API_KEYS", "AzureWebJobsStorage", "ANOMALY_DETECTOR_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_serve_refuses_to_start_without_a_key(
    clean_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", "--port", str(free_port())]) == 2
    error = capsys.readouterr().err
    assert "METERWATCH_API_KEYS" in error
    assert "MissingApiKeys" in error


def test_serve_reads_the_key_from_local_settings_and_reports_missing_storage(
    clean_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    (clean_env / "local.settings.json").write_text(
        '{"IsEncrypted": false, "Values": {"METERWATCH_API_KEYS": "k1", "AzureWebJobsStorage": '
        f'"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;'
        f'BlobEndpoint=http://127.0.0.1:{port}/devstoreaccount1;"}}}}'
    )
    assert main(["serve", "--port", str(free_port())]) == 2
    error = capsys.readouterr().err
    assert "Storage is not reachable" in error
    assert f"127.0.0.1:{port}" in error
    assert "Azurite" in error
    assert "StorageUnreachable" in error
