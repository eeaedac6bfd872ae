"""What the SDK tests over ``meterwatch serve`` share: the key, the sample windows, a poller.

The server itself is the package fixture ``server`` (``conftest.py``): one ``meterwatch serve``
child process over the session's Azurite for ``test_sdk.py`` and ``test_sdk_errors.py``.
"""

from __future__ import annotations

import time
from typing import Any

KEY = "sdk-test-key"
TRAIN = ("2006-12-16T17:24:00Z", "2006-12-18T02:43:00Z")
DETECT = ("2006-12-19T00:00:00Z", "2006-12-19T20:26:00Z")
WINDOW = 1440  # points of power.csv sent per univariate request (the service took <= 8,640)


def wait_for(get_status: Any, timeout: float = 60.0) -> str:
    """Poll ``get_status()`` until READY or FAILED or ``timeout`` seconds; the last status."""
    deadline = time.monotonic() + timeout
    while True:
        status = str(get_status())
        if status in ("READY", "FAILED") or time.monotonic() > deadline:
            return status
        time.sleep(0.25)
