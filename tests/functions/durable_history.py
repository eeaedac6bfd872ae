"""A builder of the history the Durable extension sends an orchestrator, episode by episode.

Tests replay it through the SDK's own ``Orchestrator.create(fn)`` handle (the registered
orchestrator function) and assert on the actions the SDK returns.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from azure.durable_functions.constants import DATETIME_STRING_FORMAT
from azure.durable_functions.models.history import HistoryEventType

from shared.multivariate.workflow import RETRY_FIRST_INTERVAL_MS


def stamp(moment: datetime) -> str:
    """A timestamp as the Durable extension writes it."""
    return moment.strftime(DATETIME_STRING_FORMAT)


class DurableHistory:
    """The history of one orchestration instance.

    Args:
        orchestrator: The orchestrator function's name.
        instance_id: The instance id.
        input_document: The orchestration input (JSON-serialisable).
        start: When the instance started.
    """

    def __init__(
        self, orchestrator: str, instance_id: str, input_document: Any, start: datetime
    ) -> None:
        self.instance_id = instance_id
        self.input_json = json.dumps(input_document)
        self.now = start
        self.next_id = 0
        self.events: list[dict[str, Any]] = []
        self._add(HistoryEventType.ORCHESTRATOR_STARTED)
        self._add(
            HistoryEventType.EXECUTION_STARTED,
            is_played=True,
            Name=orchestrator,
            Version="",
            Input=self.input_json,
        )

    def _add(
        self, kind: HistoryEventType, event_id: int = -1, is_played: bool = False, **fields: Any
    ) -> None:
        self.events.append(
            {
                "EventType": int(kind),
                "EventId": event_id,
                "IsPlayed": is_played,
                "Timestamp": stamp(self.now),
                **fields,
            }
        )

    def _episode(self, at: datetime | None = None) -> None:
        """The orchestrator yields, the runtime does the work, a new episode starts."""
        self._add(HistoryEventType.ORCHESTRATOR_COMPLETED)
        self.now = at or self.now + timedelta(seconds=1)
        self._add(HistoryEventType.ORCHESTRATOR_STARTED)

    def _task_id(self) -> int:
        self.next_id += 1
        return self.next_id - 1

    def completed(self, name: str, result: Any) -> DurableHistory:
        """Activity ``name`` was scheduled and returned ``result``."""
        task = self._task_id()
        self._add(HistoryEventType.TASK_SCHEDULED, task, Name=name, Version="")
        self._episode()
        self._add(HistoryEventType.TASK_COMPLETED, TaskScheduledId=task, Result=json.dumps(result))
        return self

    def failed(self, name: str, reason: str) -> DurableHistory:
        """Activity ``name`` was scheduled and failed with ``reason``."""
        task = self._task_id()
        self._add(HistoryEventType.TASK_SCHEDULED, task, Name=name, Version="")
        self._episode()
        self._add(
            HistoryEventType.TASK_FAILED, TaskScheduledId=task, Reason=reason, Details="trace"
        )
        return self

    def timer_fired(self, fire_at: datetime) -> DurableHistory:
        """A durable timer was created and fired at ``fire_at``."""
        timer = self._task_id()
        self._add(HistoryEventType.TIMER_CREATED, timer, FireAt=stamp(fire_at))
        self._episode(at=fire_at)
        self._add(
            HistoryEventType.TIMER_FIRED, is_played=True, TimerId=timer, FireAt=stamp(fire_at)
        )
        return self

    def retry_timer_fired(self) -> DurableHistory:
        """The runtime's wait between two attempts of an activity called with retry."""
        return self.timer_fired(self.now + timedelta(milliseconds=RETRY_FIRST_INTERVAL_MS))

    def context_json(self) -> str:
        """The orchestration context the extension hands the orchestrator function."""
        return json.dumps(
            {
                "history": self.events,
                "instanceId": self.instance_id,
                "isReplaying": False,
                "parentInstanceId": None,
                "input": self.input_json,
            }
        )
