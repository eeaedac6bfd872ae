"""``meterwatch history``, ``anomalies`` and ``compact`` on a small archive in Azurite."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shared.alerts import Alert, append_anomalies
from shared.cli.main import main
from shared.settings import Settings
from shared.storage.client import BlobStore
from shared.timefmt import format_timestamp
from tests.history_fleet import STEP, write_archive


@pytest.fixture
def cli_env(app_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Settings:
    """The CLI's settings: the environment (no local.settings.json in the working folder)."""
    monkeypatch.chdir(tmp_path)
    for name, value in app_env.items():
        monkeypatch.setenv(name, value)
    return Settings.from_env(app_env)


def test_compact_then_history_in_every_mode(
    cli_env: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = BlobStore.from_settings(cli_env)
    now = datetime.now(UTC)
    last = (now - timedelta(minutes=5)).timestamp() // STEP * STEP
    spike = last - 3600
    write_archive(
        store, cli_env, now - timedelta(minutes=4), devices=1, spikes={("m0", spike): 50.0}
    )
    assert main(["compact"]) == 0
    assert "compaction: 48 batches, 576 readings, 3 device-days" in capsys.readouterr().err
    start, end = format_timestamp(last - 12 * 3600), format_timestamp(last)
    for mode in ("entire", "changepoint", "stream", "request"):
        out = tmp_path / f"{mode}.json"
        code = main(
            [
                "history",
                "m0",
                "power",
                "--start",
                start,
                "--end",
                end,
                "--mode",
                mode,
                "--output",
                str(out),
            ]
        )
        assert code == 0
        document = json.loads(out.read_text())
        if mode == "request":
            assert document["granularity"] == "minutely" and document["customInterval"] == 5
            assert len(document["series"]) == 12 * 12 + 1
            assert document["series"][0]["timestamp"] == start
        else:
            assert document["timestamps"][-1] == end and len(document["timestamps"]) == 145
    entire = json.loads((tmp_path / "entire.json").read_text())
    flagged = [t for t, hit in zip(entire["timestamps"], entire["isAnomaly"], strict=True) if hit]
    assert format_timestamp(spike) in flagged
    assert "entire:" in capsys.readouterr().err


def test_history_errors_are_coded(cli_env: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "history",
            "nobody",
            "power",
            "--start",
            "2026-11-02T00:00:00Z",
            "--end",
            "2026-11-01T00:00:00Z",
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "starts after it ends" in err and "[InvalidHistoryRange]" in err
    code = main(
        [
            "history",
            "nobody",
            "power",
            "--start",
            "2026-11-01T00:00:00Z",
            "--end",
            "2026-11-01T06:00:00Z",
        ]
    )
    assert code == 2
    assert "[InvalidSeries]" in capsys.readouterr().err


def test_anomalies_since_until_and_device(
    cli_env: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = BlobStore.from_settings(cli_env)
    alerts = [
        Alert.create(
            device_id=device,
            metric="power",
            timestamp=stamp,
            value=9.0,
            expected_value=1.0,
            lower_margin=0.1,
            upper_margin=0.1,
            severity=0.7,
            direction="up",
            detector="stream",
            source="live/x",
        )
        for device, stamp in (
            ("m1", "2026-11-01T10:00:00Z"),
            ("m2", "2026-11-01T11:00:00Z"),
            ("m1", "2026-11-02T09:00:00Z"),
        )
    ]
    append_anomalies(store, alerts, "live-p0", settings=cli_env)
    append_anomalies(store, alerts[:1], "live-p0", settings=cli_env)  # a redelivery
    out = tmp_path / "alerts.jsonl"
    assert main(["anomalies", "--since", "2026-11-01T00:00:00Z", "--output", str(out)]) == 0
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == [
        a.id for a in alerts
    ]
    capsys.readouterr()
    assert (
        main(
            [
                "anomalies",
                "--since",
                "2026-11-01T00:00:00Z",
                "--until",
                "2026-11-02T00:00:00Z",
                "--device",
                "m1",
            ]
        )
        == 0
    )
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line)["timestamp"] for line in lines] == ["2026-11-01T10:00:00Z"]
    assert main(["anomalies", "--since", "not a time"]) == 2
