"""Binding helpers shared by the blueprints: connection names, retries, blob names, starters."""

from __future__ import annotations

import azure.durable_functions as df

from shared.multivariate.workflow import RETRY_FIRST_INTERVAL_MS, RETRY_MAX_ATTEMPTS

#: App setting naming the storage account of the blob triggers (the host's own storage).
STORAGE_CONNECTION = "AzureWebJobsStorage"

#: Retry policy of every activity call (transient failures: storage, a recycled worker).
RETRY_OPTIONS = df.RetryOptions(
    first_retry_interval_in_milliseconds=RETRY_FIRST_INTERVAL_MS,
    max_number_of_attempts=RETRY_MAX_ATTEMPTS,
)


def blob_name_in_container(path: str, container: str) -> str:
    """Strip the ``container/`` prefix the binding puts in ``InputStream.name``."""
    prefix = f"{container}/"
    return path[len(prefix) :] if path.startswith(prefix) else path


class DurableStarter:
    """An :class:`~shared.multivariate.workflow.OrchestrationStarter` over the Durable client."""

    def __init__(self, client: df.DurableOrchestrationClient) -> None:
        self.client = client

    async def start(self, orchestrator: str, instance_id: str, client_input: object) -> None:
        """Start an orchestration instance through the Durable extension."""
        await self.client.start_new(orchestrator, instance_id, client_input)

    async def runtime_status(self, instance_id: str) -> str | None:
        """The instance's runtime status, or ``None`` when the task hub does not know it."""
        status = await self.client.get_status(instance_id)
        runtime = getattr(status, "runtime_status", None)
        if runtime is None:
            return None
        return str(getattr(runtime, "value", runtime))
