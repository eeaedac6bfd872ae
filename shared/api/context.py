"""What every route needs: settings, the univariate backend, limits, storage and the registry.

One :class:`ApiContext` is built per application and kept on ``app.state``; storage and the
multivariate service are created on first use, so the univariate routes work (and the app
starts) without touching storage.

Blocking work runs in two thread pools of their own (anyio capacity limiters), never in the
shared default one: *compute* (univariate detection) and *storage* (every call that waits on
the storage account). During a storage outage the storage pool fills with calls waiting out
their (bounded) timeouts, while univariate requests keep their threads.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from anyio import CapacityLimiter
from starlette.requests import Request

from shared.settings import Settings
from shared.univariate.contract import UnivariateBackend

if TYPE_CHECKING:
    from shared.multivariate.service import MultivariateService
    from shared.storage.client import BlobStore

#: Threads for univariate detection (CPU-bound: more would only queue on the interpreter lock).
COMPUTE_THREADS = 8
#: Threads for calls that wait on storage (I/O-bound; each call bounded by the API's timeouts).
STORAGE_THREADS = 32


@dataclass
class ApiContext:
    """Shared state of one API application.

    Attributes:
        settings: App settings.
        backend: Who answers univariate requests.
        max_body_bytes: Largest accepted request body.
        store: Blob storage (created from the settings on first use when not given).
        multivariate: The multivariate service (created on first use when not given).
        public_url: The address the API was started on (``meterwatch serve``), the base of the
            URLs it writes when ``API_PUBLIC_URL`` is not set (see :mod:`shared.api.links`).
    """

    settings: Settings
    backend: UnivariateBackend
    max_body_bytes: int
    store: BlobStore | None = None
    multivariate: MultivariateService | None = None
    public_url: str | None = None
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    _limiters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, CapacityLimiter]] = (
        field(default_factory=weakref.WeakKeyDictionary, repr=False)
    )

    @staticmethod
    def of(request: Request) -> ApiContext:
        """The context of the application serving ``request``."""
        context: ApiContext = request.app.state.meterwatch
        return context

    def blob_store(self) -> BlobStore:
        """The blob store, connected on first use with the API's bounded timeouts and retries."""
        with self._lock:
            if self.store is None:
                from shared.storage.client import BlobStore

                self.store = BlobStore.for_requests(self.settings)
            return self.store

    def _limiter(self, pool: str, threads: int) -> CapacityLimiter:
        # A limiter belongs to one event loop: keep one per loop (tests run several).
        loop = asyncio.get_running_loop()
        with self._lock:
            pools = self._limiters.setdefault(loop, {})
            if pool not in pools:
                pools[pool] = CapacityLimiter(threads)
            return pools[pool]

    def compute_limiter(self) -> CapacityLimiter:
        """The thread pool of univariate detection (call from the event loop)."""
        return self._limiter("compute", COMPUTE_THREADS)

    def storage_limiter(self) -> CapacityLimiter:
        """The thread pool of calls that wait on storage (call from the event loop)."""
        return self._limiter("storage", STORAGE_THREADS)

    def multivariate_service(self, build: Callable[[], MultivariateService]) -> MultivariateService:
        """The multivariate service, built by ``build`` on first use when none was given."""
        with self._lock:
            if self.multivariate is None:
                self.multivariate = build()
            return self.multivariate
