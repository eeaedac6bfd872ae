"""The v1.1 REST API: its overhead over the engine, and a bounded load over loopback HTTP.

* ``api_overhead_ms``: an ``entire/detect`` request of 1,440 points (the first day of the
  tutorial's ``power.csv``, one-minute steps) through the ASGI application in-process (key check,
  size-limited body read, JSON parsing, routing, the worker-thread hop, JSON rendering), minus
  the same detection called directly (:func:`shared.univariate.contract.detect_entire_v11` on the
  body already decoded: the engine alone). Calls are interleaved (API, direct, API, ...) and the
  figure is the median of the paired differences, so drifts in machine load cancel out.
  Target: <= 2 ms.
* ``api_rps`` / ``api_p99_ms``: ``meterwatch serve`` runs in a child process (uvicorn, one
  worker, over Azurite); this process sends a fixed number of the same requests from 8
  concurrent clients (threads, one keep-alive connection each) and reports requests per second
  and the 99th-percentile latency. ``api_load_errors`` counts non-200 answers and failures; the
  figures are only reported when it is 0.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

POWER_CSV = Path(__file__).resolve().parents[2] / "shared" / "data" / "power.csv"
POINTS = 1_440
KEY = "bench-api-key"
CLIENTS = 8
#: Requests per client in the load test (quick runs send fewer).
REQUESTS_PER_CLIENT = 60
QUICK_REQUESTS_PER_CLIENT = 15
OVERHEAD_PAIRS = 200
QUICK_OVERHEAD_PAIRS = 40
PATH = "/anomalydetector/v1.1/timeseries/entire/detect"


def request_body(points: int = POINTS, path: Path = POWER_CSV) -> dict[str, Any]:
    """The v1.1 entire request on the first ``points`` readings of power.csv.

    Raises:
        FileNotFoundError: The team's data folder is missing.
    """
    from shared.cli.csvio import read_series_csv
    from shared.timefmt import format_timestamp

    series = read_series_csv(path)
    return {
        "series": [
            {"timestamp": format_timestamp(float(t)), "value": float(v)}
            for t, v in zip(series.timestamps[:points], series.values[:points], strict=True)
        ],
        "granularity": "minutely",
    }


class InProcessAsgi:
    """Drives an ASGI application directly (no sockets, no HTTP client) and times round trips."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        """One POST through the application; returns the status and the whole response body."""
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": b"",
            "headers": [
                (b"content-length", str(len(body)).encode()),
                (b"content-type", b"application/json"),
                *((k.lower().encode(), v.encode()) for k, v in headers.items()),
            ],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 80),
        }
        sent = False
        status = 0
        chunks: list[bytes] = []

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.sleep(3600)
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, send)
        return status, b"".join(chunks)


def measure_overhead(pairs: int) -> dict[str, float]:
    """Median API round trip, direct call, and their paired difference (ms)."""
    from shared.api.app import create_app
    from shared.settings import Settings
    from shared.univariate.contract import detect_entire_v11

    body = request_body()
    raw = json.dumps(body).encode()
    settings = Settings.from_env(
        {"AzureWebJobsStorage": "UseDevelopmentStorage=true", "METERWATCH_API_KEYS": KEY}
    )
    client = InProcessAsgi(create_app(settings))
    headers = {"Ocp-Apim-Subscription-Key": KEY}

    async def run() -> dict[str, float]:
        api: list[float] = []
        direct: list[float] = []
        expected = json.loads(json.dumps(detect_entire_v11(body)))
        for i in range(pairs + 5):
            start = time.perf_counter()
            status, answer = await client.post(PATH, raw, headers)
            through_api = time.perf_counter() - start
            start = time.perf_counter()
            detect_entire_v11(body)
            called = time.perf_counter() - start
            if status != 200:
                raise RuntimeError(f"the API answered {status}: {answer[:200]!r}")
            if i == 0 and json.loads(answer) != expected:
                raise RuntimeError("the API's answer differs from the engine's")
            if i >= 5:  # warm-up
                api.append(through_api)
                direct.append(called)
        differences = [a - d for a, d in zip(api, direct, strict=True)]
        return {
            "api_roundtrip_ms": 1000 * statistics.median(api),
            "api_engine_ms": 1000 * statistics.median(direct),
            "api_overhead_ms": 1000 * statistics.median(differences),
        }

    return asyncio.run(run())


def measure_load(requests_per_client: int, clients: int = CLIENTS) -> dict[str, float | int]:
    """Bounded load on ``meterwatch serve`` over loopback from this (another) process."""
    import requests

    from shared.cli.serve import serve_in_subprocess
    from shared.demo.azurite import running_azurite

    raw = json.dumps(request_body()).encode()
    headers = {"Content-Type": "application/json", "Ocp-Apim-Subscription-Key": KEY}
    with running_azurite() as connection:
        env = {"AzureWebJobsStorage": connection, "METERWATCH_API_KEYS": KEY}
        with serve_in_subprocess(env) as endpoint:
            url = endpoint + PATH
            with requests.Session() as warm:
                for _ in range(3):
                    warm.post(url, data=raw, headers=headers, timeout=60).raise_for_status()
            latencies: list[float] = []
            errors: list[str] = []
            lock = threading.Lock()
            barrier = threading.Barrier(clients + 1)

            def client() -> None:
                mine: list[float] = []
                with requests.Session() as session:
                    barrier.wait()
                    for _ in range(requests_per_client):
                        start = time.perf_counter()
                        try:
                            response = session.post(url, data=raw, headers=headers, timeout=60)
                            ok = response.status_code == 200 and b"isAnomaly" in response.content
                            problem = None if ok else f"HTTP {response.status_code}"
                        except requests.RequestException as exc:
                            problem = type(exc).__name__
                        mine.append(time.perf_counter() - start)
                        if problem:
                            with lock:
                                errors.append(problem)
                with lock:
                    latencies.extend(mine)

            threads = [threading.Thread(target=client) for _ in range(clients)]
            for thread in threads:
                thread.start()
            barrier.wait()
            started = time.perf_counter()
            for thread in threads:
                thread.join()
            wall = time.perf_counter() - started
    total = clients * requests_per_client
    figures: dict[str, float | int] = {
        "api_load_requests": total,
        "api_load_clients": clients,
        "api_load_errors": len(errors),
    }
    if not errors:
        figures["api_rps"] = total / wall
        figures["api_p50_ms"] = 1000 * float(np.percentile(latencies, 50))
        figures["api_p99_ms"] = 1000 * float(np.percentile(latencies, 99))
    return figures


def run_api_benchmarks(quick: bool = False) -> dict[str, float | int | str | None]:
    """Measure the API: overhead over the engine in-process, then a bounded loopback load.

    Args:
        quick: Fewer pairs and requests (a smoke run).

    Returns:
        ``api_overhead_ms`` (target <= 2 ms), ``api_roundtrip_ms``, ``api_engine_ms``,
        ``api_rps``, ``api_p50_ms``, ``api_p99_ms`` (``None`` when the load had errors),
        ``api_load_requests``, ``api_load_clients``, ``api_load_errors``, and
        ``api_status`` (``ok`` or what could not be measured).
    """
    results: dict[str, float | int | str | None] = {
        "api_overhead_ms": None,
        "api_rps": None,
        "api_p99_ms": None,
    }
    notes: list[str] = []
    steps: list[tuple[str, Callable[[], dict[str, Any]]]] = [
        ("overhead", lambda: measure_overhead(QUICK_OVERHEAD_PAIRS if quick else OVERHEAD_PAIRS)),
        (
            "load",
            lambda: measure_load(QUICK_REQUESTS_PER_CLIENT if quick else REQUESTS_PER_CLIENT),
        ),
    ]
    for label, step in steps:
        try:
            results.update(step())
        except Exception as exc:  # one step failing must not hide the other's figures
            notes.append(f"{label}: {type(exc).__name__}: {exc}")
    if results.get("api_load_errors"):
        notes.append(f"load: {results['api_load_errors']} failed requests")
    results["api_status"] = "ok" if not notes else "; ".join(notes)
    results["api_cpus"] = os.cpu_count() or 0
    return results


if __name__ == "__main__":
    print(json.dumps(run_api_benchmarks(quick="--quick" in sys.argv), indent=2))
