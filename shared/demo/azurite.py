"""Find or start Azurite, the storage emulator, for local runs and the demo.

The demo must work on a fresh machine with no cloud: it uses an Azurite already answering on the
default blob port, or starts one from the project's ``node_modules`` (installed by ``make``) with
in-memory persistence on free loopback ports, and stops it afterwards.
"""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from shared.errors import ConfigurationError
from shared.storage.client import connection_string

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]


def answering(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=0.3):
            return True
    except OSError:
        return False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def azurite_binary() -> str:
    """Locate the Azurite executable (the project's node_modules first).

    Raises:
        ConfigurationError: Azurite is not installed (says how to install it).
    """
    local = REPO / "node_modules" / ".bin" / "azurite"
    if local.exists():
        return str(local)
    found = shutil.which("azurite")
    if found:
        return found
    raise ConfigurationError(
        "Azurite is not installed: run `npm install` in the repository (or `make demo`), "
        "or `npm install -g azurite`.",
        "AzuriteMissing",
    )


@contextmanager
def running_azurite(*, reuse: bool = True) -> Iterator[str]:
    """Yield a connection string to a running Azurite, starting one if needed.

    Args:
        reuse: Use an Azurite already answering on the default ports (10000-10002, e.g. from
            ``scripts/azurite.sh``). Tests pass ``False`` to get a private one.

    Otherwise one is started, in memory, on free loopback ports, and stopped on exit.
    """
    if reuse and answering(10000):
        logger.info("Using the Azurite answering on 127.0.0.1:10000")
        yield connection_string(10000, 10001, 10002)
        return
    blob, queue, table = _free_port(), _free_port(), _free_port()
    args = [
        azurite_binary(),
        "--silent",
        "--inMemoryPersistence",
        "--disableTelemetry",
        "--skipApiVersionCheck",
        "--blobHost", "127.0.0.1", "--blobPort", str(blob),
        "--queueHost", "127.0.0.1", "--queuePort", str(queue),
        "--tableHost", "127.0.0.1", "--tablePort", str(table),
    ]  # fmt: skip
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not answering(blob):
            if process.poll() is not None or time.monotonic() > deadline:
                raise ConfigurationError(
                    f"Azurite did not start on 127.0.0.1:{blob}.", "AzuriteNotStarted"
                )
            time.sleep(0.05)
        logger.info("Started Azurite on 127.0.0.1:%s", blob)
        yield connection_string(blob, queue, table)
    finally:
        stop_process(process, timeout=10)


def stop_process(process: subprocess.Popen[bytes], timeout: float) -> None:
    """Stop a child process: terminate, wait ``timeout`` s, then kill and reap it.

    Reaping matters: an unreaped child is a ResourceWarning, an error under pytest's
    warnings-as-errors (seen on a loaded machine, where 10 s did not suffice after terminate).
    """
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout)
