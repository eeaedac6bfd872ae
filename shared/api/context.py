"""What every route needs: settings, the univariate backend, limits, storage and the registry.

One :class:`ApiContext` is built per application and kept on ``app.state``; storage and the
multivariate service are created on first use, so the univariate routes work (and the app
starts) without touching storage.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.requests import Request

from shared.settings import Settings
from shared.univariate.contract import UnivariateBackend

if TYPE_CHECKING:
    from shared.storage.client import BlobStore


@dataclass
class ApiContext:
    """Shared state of one API application.

    Attributes:
        settings: App settings.
        backend: Who answers univariate requests.
        max_body_bytes: Largest accepted request body.
        store: Blob storage (created from the settings on first use when not given).
        multivariate: The multivariate service (created on first use when not given).
    """

    settings: Settings
    backend: UnivariateBackend
    max_body_bytes: int
    store: BlobStore | None = None
    multivariate: Any = None
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    @staticmethod
    def of(request: Request) -> ApiContext:
        """The context of the application serving ``request``."""
        context: ApiContext = request.app.state.meterwatch
        return context

    def blob_store(self) -> BlobStore:
        """The blob store, connected on first use."""
        with self._lock:
            if self.store is None:
                from shared.storage.client import BlobStore

                self.store = BlobStore.from_settings(self.settings)
            return self.store

    def multivariate_service(self, build: Callable[[], Any]) -> Any:
        """The multivariate service, built by ``build`` on first use when none was given."""
        with self._lock:
            if self.multivariate is None:
                self.multivariate = build()
            return self.multivariate
