"""Who starts the multivariate orchestrations for the API: the Durable host or an in-process runner.

Training and batch detection requested through the API run through the same orchestration as an
uploaded dataset (:mod:`shared.multivariate.workflow`). In the function app the HTTP function
receives a
Durable client binding and publishes it, for the duration of the request, in
:data:`current_starter`; ``meterwatch serve`` has no Durable host and gives the service a starter
that drives the same orchestrator generator in-process.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any, Protocol


class OrchestrationStarter(Protocol):
    """Starts orchestration instances and reports their runtime status."""

    async def start(self, orchestrator: str, instance_id: str, client_input: Any) -> None:
        """Start ``orchestrator`` as ``instance_id`` with ``client_input``."""
        ...

    async def runtime_status(self, instance_id: str) -> str | None:
        """The Durable runtime status of an instance (``Running``, ``Completed``...), or None."""
        ...


#: The starter of the current request (set by the HTTP function around each invocation).
current_starter: ContextVar[OrchestrationStarter | None] = ContextVar(
    "meterwatch_orchestration_starter", default=None
)
