"""``meterwatch serve``: the Anomaly Detector v1.1 REST API on this machine.

Runs the same ASGI application as the function app (:func:`shared.api.app.create_app`) on
uvicorn, with the same settings (``local.settings.json`` and the environment) and the same
storage (Azurite by default). It refuses to start without an API key (``METERWATCH_API_KEYS``)
and says so plainly when the storage account does not answer. Multivariate training and batch
detection run through the same orchestration as in the function app, driven in-process.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from shared.errors import ConfigurationError, MeterwatchError

if TYPE_CHECKING:
    from shared.multivariate.service import MultivariateService
    from shared.settings import Settings
    from shared.storage.client import BlobStore

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5000
#: Seconds to wait for the storage account to accept a connection at start-up.
STORAGE_PROBE_TIMEOUT_S = 3.0


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``serve`` to the ``meterwatch`` sub-commands (called by :mod:`shared.cli.main`)."""
    serve = commands.add_parser(
        "serve",
        help="serve the Anomaly Detector v1.1 REST API (needs METERWATCH_API_KEYS and storage)",
        description="Serve the Anomaly Detector v1.1 REST API on the embedded engine. Settings "
        "come from local.settings.json and the environment, as for the function app.",
    )
    serve.add_argument("--host", default=DEFAULT_HOST, help=f"address (default {DEFAULT_HOST})")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (default 5000)")
    serve.add_argument(
        "--log-level",
        default="warning",
        choices=("critical", "error", "warning", "info", "debug"),
        help="server log level (default warning)",
    )
    serve.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from shared.api.app import create_app
    from shared.settings import Settings, local_environment
    from shared.storage.client import BlobStore

    settings = Settings.from_env(
        {"AzureWebJobsStorage": "UseDevelopmentStorage=true", **local_environment()}
    )
    if not settings.api_key_list:
        raise ConfigurationError(
            "meterwatch serve needs an API key: set METERWATCH_API_KEYS (comma-separated) in "
            "the environment or in local.settings.json, then send it in the "
            "Ocp-Apim-Subscription-Key header. The API never runs without one.",
            "MissingApiKeys",
        )
    # The bounded client: a storage outage answers 503 in seconds instead of holding the
    # request (and its thread) through the SDK's default retries.
    store = BlobStore.for_requests(settings)
    check_storage(store)
    multivariate = _multivariate_service(settings, store)
    # Links the API writes start with the address given here, never with a request's Host.
    listening = args.host not in ("0.0.0.0", "::", "")
    public_url = f"http://{_url_host(args.host)}:{args.port}" if listening else None
    app = create_app(settings, store=store, multivariate=multivariate, public_url=public_url)
    print(
        f"meterwatch API: http://{_url_host(args.host)}:{args.port}/anomalydetector/v1.1 "
        f"(storage {store.service.url}, {len(settings.api_key_list)} key(s), local paths "
        f"{'allowed' if settings.api_allow_local_paths else 'refused'})",
        flush=True,
    )
    try:
        uvicorn.run(
            app,
            host=args.host,
            port=args.port,
            log_level=args.log_level,
            access_log=args.log_level in ("info", "debug"),
        )
    finally:
        close = getattr(multivariate, "close", None)
        if callable(close):
            close()
    return 0


def _multivariate_service(settings: Settings, store: BlobStore) -> MultivariateService:
    """The multivariate service with an in-process orchestration runner."""
    from shared.multivariate.local_runner import in_process_service

    return in_process_service(settings, store)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def check_storage(store: BlobStore, timeout: float = STORAGE_PROBE_TIMEOUT_S) -> None:
    """Fail fast, and clearly, when the storage account does not answer.

    Args:
        store: The :class:`~shared.storage.client.BlobStore` the API will use.
        timeout: Seconds to wait for a TCP connection to the blob endpoint.

    Raises:
        ConfigurationError: ``StorageUnreachable``: nothing answers at the blob endpoint, or it
            refused a first request; the message says how to start Azurite.
    """
    url = str(store.service.url)
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    local = host in ("127.0.0.1", "localhost", "::1")
    hint = (
        "Start Azurite (`npx azurite --silent --inMemoryPersistence`, or scripts/azurite.sh) "
        "or point AzureWebJobsStorage at a running one."
        if local
        else "Check AzureWebJobsStorage / AzureWebJobsStorage__blobServiceUri and the network."
    )
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        raise ConfigurationError(
            f"Storage is not reachable: nothing answers at {url} ({exc.strerror or exc}). {hint}",
            "StorageUnreachable",
        ) from exc
    try:
        next(
            iter(store.service.list_containers(results_per_page=1, timeout=int(timeout) + 2)), None
        )
    except Exception as exc:  # any answer but a listing means the account is not usable
        raise ConfigurationError(
            f"Storage at {url} answered but refused a first request "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}). {hint}",
            "StorageUnreachable",
        ) from exc


def free_port(host: str = DEFAULT_HOST) -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve_in_subprocess(
    env: Mapping[str, str],
    *,
    host: str = DEFAULT_HOST,
    port: int | None = None,
    cwd: Path | None = None,
    timeout: float = 60.0,
) -> Iterator[str]:
    """Run ``meterwatch serve`` in a child process; yield its endpoint once it accepts requests.

    Tests and benchmarks use it to call the API over real loopback HTTP from another process.

    Args:
        env: The child's environment (app settings); ``PATH`` is added, and the repository
            and this process's ``PYTHONPATH`` are put on the child's ``PYTHONPATH``.
        host: Address to listen on.
        port: Port (default: a free one).
        cwd: Working directory (its ``local.settings.json``, if any, is read).
        timeout: Seconds to wait for the server to accept connections.

    Yields:
        The endpoint, e.g. ``http://127.0.0.1:50123`` (what ``AnomalyDetectorClient`` takes).

    Raises:
        RuntimeError: The server exited or did not start in time (with its output).
    """
    port = port or free_port(host)
    repo = str(Path(__file__).resolve().parents[2])
    child_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env}
    child_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (repo, env.get("PYTHONPATH", ""), os.environ.get("PYTHONPATH", "")) if p
    )
    with tempfile.TemporaryFile() as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "shared.cli.main", "serve", "--host", host, "--port", str(port)],
            env=child_env,
            cwd=str(cwd or repo),
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + timeout
            while True:
                if process.poll() is not None or time.monotonic() > deadline:
                    output.seek(0)
                    text = output.read().decode(errors="replace")
                    raise MeterwatchError(
                        f"meterwatch serve did not start on {host}:{port} "
                        f"(exit code {process.returncode}):\n{text}",
                        "ServeDidNotStart",
                    )
                try:
                    with socket.create_connection((host, port), timeout=0.2):
                        break
                except OSError:
                    time.sleep(0.05)
            yield f"http://{_url_host(host)}:{port}"
        finally:
            from shared.demo.azurite import stop_process  # storage SDK only when a server ran

            stop_process(process, timeout=15)


if __name__ == "__main__":  # pragma: no cover - use `meterwatch serve`
    from shared.cli.main import main

    sys.exit(main(["serve", *sys.argv[1:]]))
