"""A tiny in-process Durable runner: the real orchestration, run without a Functions host.

It drives an orchestrator *generator* the way the Durable runtime does, minus the history and
the queues: each yielded activity call runs at once, in this process, through the activity
functions it is given (with the orchestration's retry policy: a failing activity is run again
up to ``max_number_of_attempts`` times, then its error is thrown into the generator, as the
runtime does); each timer fires at once and moves the orchestration's clock to its ``fireAt``.
Inputs and outputs go through JSON, as they do between the host and the worker, so a value the
real runtime could not carry fails here too.

:class:`LocalTaskHub` adds what a Durable client sees: instances by id with a runtime status,
so the "start only if new" rule of the triggers (:func:`shared.multivariate.workflow.should_start`)
runs here unchanged.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from shared.jsontypes import JSONObject, JSONValue
from shared.multivariate.activities import BatchDetectionActivities, TrainingActivities
from shared.multivariate.payloads import (
    DetectionFailure,
    DetectionJob,
    FailRequest,
    ModelStep,
    SummaryRequest,
    TrainingRequest,
    as_object,
)
from shared.multivariate.service import MultivariateService
from shared.multivariate.workflow import (
    BATCH_DETECT_ACTIVITY,
    BATCH_FAILED_ACTIVITY,
    DETECT_ACTIVITY,
    DETECTION_ORCHESTRATOR,
    EXPORT_ACTIVITY,
    FAIL_ACTIVITY,
    ORCHESTRATOR,
    PREPARE_ACTIVITY,
    RETRY_FIRST_INTERVAL_MS,
    RETRY_MAX_ATTEMPTS,
    STATUS_ACTIVITY,
    SUMMARY_ACTIVITY,
    TRAIN_ACTIVITY,
    Orchestration,
    RetryPolicy,
    detection_orchestration,
    should_start,
    training_orchestration,
)
from shared.settings import Settings
from shared.storage.client import BlobStore

logger = logging.getLogger(__name__)

#: An orchestrator function: context in, the orchestration generator out.
Orchestrator = Callable[["LocalContext"], Orchestration[JSONObject]]
#: An activity function: its decoded JSON input in (read by a typed payload), its JSON result out.
ActivityFunction = Callable[[object], JSONObject]


def training_activities(activities: TrainingActivities) -> dict[str, ActivityFunction]:
    """The training activities under their Durable names, as the host binds them.

    Each decodes its payload, calls the activity and encodes the result, exactly as the
    functions in ``functions/multivariate.py`` do.
    """
    return {
        PREPARE_ACTIVITY: lambda p: activities.prepare(TrainingRequest.from_dict(p)).to_dict(),
        TRAIN_ACTIVITY: lambda p: activities.train(ModelStep.from_dict(p)).to_dict(),
        STATUS_ACTIVITY: lambda p: activities.status(ModelStep.from_dict(p)).to_dict(),
        FAIL_ACTIVITY: lambda p: activities.mark_failed(FailRequest.from_dict(p)).to_dict(),
        DETECT_ACTIVITY: lambda p: activities.detect(ModelStep.from_dict(p)).to_dict(),
        EXPORT_ACTIVITY: lambda p: activities.export(ModelStep.from_dict(p)).to_dict(),
        SUMMARY_ACTIVITY: lambda p: activities.summarize(SummaryRequest.from_dict(p)).to_dict(),
    }


def batch_activities(activities: BatchDetectionActivities) -> dict[str, ActivityFunction]:
    """The batch-detection activities under their Durable names."""
    return {
        BATCH_DETECT_ACTIVITY: lambda p: activities.detect(DetectionJob.from_dict(p)).to_dict(),
        BATCH_FAILED_ACTIVITY: lambda p: activities.fail(DetectionFailure.from_dict(p)).to_dict(),
    }


@dataclass(frozen=True)
class LocalRetry:
    """The local twin of the SDK's ``RetryOptions`` (same attribute names)."""

    first_retry_interval_in_milliseconds: int = RETRY_FIRST_INTERVAL_MS
    max_number_of_attempts: int = RETRY_MAX_ATTEMPTS


@dataclass(frozen=True)
class ActivityCall:
    """A yielded activity call."""

    name: str
    input: JSONValue
    retry: LocalRetry | None


@dataclass(frozen=True)
class TimerCall:
    """A yielded durable timer."""

    fire_at: datetime


@dataclass
class LocalRun:
    """What one local orchestration did.

    Attributes:
        instance_id: The instance id.
        runtime_status: ``Completed`` or ``Failed`` (as the Durable status query says).
        output: The orchestrator's return value (empty when it failed).
        error: The error that failed it, as text.
        activity_attempts: ``(activity name, attempt number)`` for every execution.
        results: ``(activity name, input, output)`` of every activity that succeeded, in order
            (what the Durable history would record).
        timers: ``fireAt`` of every timer, in order.
        custom_statuses: Every custom status the orchestrator set, in order.
    """

    instance_id: str
    runtime_status: str = "Running"
    output: JSONObject = field(default_factory=dict)
    error: str | None = None
    activity_attempts: list[tuple[str, int]] = field(default_factory=list)
    results: list[tuple[str, JSONValue, JSONValue]] = field(default_factory=list)
    timers: list[datetime] = field(default_factory=list)
    custom_statuses: list[JSONValue] = field(default_factory=list)

    def executions(self, name: str) -> int:
        """How many times the activity ``name`` ran (retries included)."""
        return sum(1 for activity, _ in self.activity_attempts if activity == name)


class LocalContext:
    """The orchestration context the generator sees (the SDK context's methods it uses)."""

    def __init__(self, instance_id: str, input_: object, start: datetime) -> None:
        self.instance_id = instance_id
        self._input = json.dumps(input_)
        self._now = start
        self.custom_status: JSONValue = None
        self.statuses: list[JSONValue] = []

    @property
    def current_utc_datetime(self) -> datetime:
        """The orchestration's clock: the start time, moved on by timers and retry waits."""
        return self._now

    def advance(self, moment: datetime) -> None:
        """Move the clock forward to ``moment`` (never back)."""
        self._now = max(self._now, moment)

    def get_input(self) -> JSONValue:
        """The orchestration input (decoded from JSON, as the SDK does)."""
        decoded: JSONValue = json.loads(self._input)
        return decoded

    def call_activity(self, name: str, input_: object = None) -> ActivityCall:
        """Schedule an activity without retries."""
        return ActivityCall(name, _through_json(input_), None)

    def call_activity_with_retry(
        self, name: str, retry_options: RetryPolicy, input_: object = None
    ) -> ActivityCall:
        """Schedule an activity with the retry policy."""
        retry = LocalRetry(
            int(retry_options.first_retry_interval_in_milliseconds),
            int(retry_options.max_number_of_attempts),
        )
        return ActivityCall(name, _through_json(input_), retry)

    def create_timer(self, fire_at: datetime) -> TimerCall:
        """Schedule a durable timer."""
        return TimerCall(fire_at)

    def set_custom_status(self, status: object) -> None:
        """Set the custom status (kept in order for inspection)."""
        self.custom_status = _through_json(status)
        self.statuses.append(self.custom_status)


def run_orchestration(
    orchestrator: Orchestrator,
    input_: object,
    activities: Mapping[str, ActivityFunction],
    *,
    instance_id: str = "local",
    start: datetime | None = None,
) -> LocalRun:
    """Run an orchestrator generator to completion, in process.

    Args:
        orchestrator: The orchestrator function (context → generator).
        input_: The orchestration input (JSON-ready).
        activities: Activity name → function of the decoded input.
        instance_id: The instance id the context reports.
        start: The orchestration's start time (default: now, UTC).

    Returns:
        The run: status, output or error, and what happened.
    """
    context = LocalContext(instance_id, input_, start or datetime.now(UTC))
    run = LocalRun(instance_id)
    generator = orchestrator(context)
    to_send: JSONValue = None
    to_throw: BaseException | None = None
    while True:
        try:
            task = generator.throw(to_throw) if to_throw is not None else generator.send(to_send)
        except StopIteration as stop:
            output = as_object(_through_json(stop.value), "orchestration output")
            run.runtime_status, run.output = "Completed", dict(output)
            break
        except Exception as exc:  # the orchestrator raised: the instance fails, as in the host
            run.runtime_status, run.error = "Failed", f"{type(exc).__name__}: {exc}"
            logger.error("Orchestration %s failed: %s", instance_id, run.error)
            break
        to_send, to_throw = None, None
        if isinstance(task, TimerCall):
            run.timers.append(task.fire_at)
            context.advance(task.fire_at)
        elif isinstance(task, ActivityCall):
            to_send, to_throw = _execute(task, activities, context, run)
        else:
            to_throw = TypeError(f"The orchestrator yielded {task!r}, not a durable task")
    run.custom_statuses = list(context.statuses)
    return run


def _execute(
    call: ActivityCall,
    activities: Mapping[str, ActivityFunction],
    context: LocalContext,
    run: LocalRun,
) -> tuple[JSONValue, BaseException | None]:
    function = activities.get(call.name)
    if function is None:
        return None, Exception(f"The activity '{call.name}' does not exist.")
    attempts = call.retry.max_number_of_attempts if call.retry else 1
    wait = timedelta(
        milliseconds=call.retry.first_retry_interval_in_milliseconds if call.retry else 0
    )
    failure: Exception | None = None
    for attempt in range(1, max(attempts, 1) + 1):
        run.activity_attempts.append((call.name, attempt))
        try:
            output = _through_json(function(call.input))
        except Exception as exc:  # an activity failure is data for the orchestrator
            failure = exc
            logger.warning("Activity %s attempt %s failed: %s", call.name, attempt, exc)
            context.advance(context.current_utc_datetime + wait * attempt)
            continue
        run.results.append((call.name, call.input, output))
        return output, None
    # The runtime hands the orchestrator an exception carrying the activity's error text.
    return None, Exception(f"Activity '{call.name}' failed: {type(failure).__name__}: {failure}")


def _through_json(value: object) -> JSONValue:
    decoded: JSONValue = None if value is None else json.loads(json.dumps(value))
    return decoded


class LocalTaskHub:
    """Orchestration instances by id, run in process: what a Durable client sees, locally.

    Args:
        orchestrators: Orchestrator name → function.
        activities: Activity name → function.
        clock: Start time of new instances.
    """

    def __init__(
        self,
        orchestrators: Mapping[str, Orchestrator],
        activities: Mapping[str, ActivityFunction],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.orchestrators = dict(orchestrators)
        self.activities = dict(activities)
        self.clock = clock
        self.instances: dict[str, LocalRun] = {}

    def runtime_status(self, instance_id: str) -> str | None:
        """The instance's runtime status, or ``None`` when there is no such instance."""
        run = self.instances.get(instance_id)
        return None if run is None else run.runtime_status

    def start_new(self, name: str, instance_id: str, input_: object) -> LocalRun:
        """Start (and here: run to completion) an orchestration instance."""
        run = run_orchestration(
            self.orchestrators[name],
            input_,
            self.activities,
            instance_id=instance_id,
            start=self.clock(),
        )
        self.instances[instance_id] = run
        return run

    def start_if_new(self, name: str, instance_id: str, input_: object) -> LocalRun | None:
        """Start the instance unless one with that id exists (the triggers' duplicate rule).

        Returns:
            The new run, or ``None`` when the instance already existed.
        """
        if not should_start(self.runtime_status(instance_id)):
            logger.info("Instance %s exists already; not starting it again", instance_id)
            return None
        return self.start_new(name, instance_id, input_)


class InProcessStarter:
    """Runs the training and detection orchestrations in background threads (``serve``).

    The orchestrator generators of :mod:`shared.multivariate.workflow` are driven by
    :class:`LocalTaskHub`; instances that are still running report ``Running`` so a duplicate
    request does not start a second run.

    Args:
        activities: Activity name → function (training and detection activities).
        workers: Orchestrations run at the same time.
    """

    def __init__(self, activities: Mapping[str, ActivityFunction], workers: int = 2) -> None:
        retry = LocalRetry(RETRY_FIRST_INTERVAL_MS, RETRY_MAX_ATTEMPTS)
        self.hub = LocalTaskHub(
            {
                ORCHESTRATOR: lambda context: training_orchestration(context, retry),
                DETECTION_ORCHESTRATOR: lambda context: detection_orchestration(context, retry),
            },
            activities,
        )
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="mv-orchestration")
        self._running: set[str] = set()
        self._lock = threading.Lock()

    async def start(self, orchestrator: str, instance_id: str, client_input: object) -> None:
        """Start the instance in a background thread (returns at once)."""
        with self._lock:
            if instance_id in self._running:
                return
            self._running.add(instance_id)
        self._pool.submit(self._run, orchestrator, instance_id, client_input)

    async def runtime_status(self, instance_id: str) -> str | None:
        """``Running`` while the instance runs, then the local hub's status."""
        with self._lock:
            if instance_id in self._running:
                return "Running"
        return self.hub.runtime_status(instance_id)

    def _run(self, orchestrator: str, instance_id: str, client_input: object) -> None:
        try:
            run = self.hub.start_new(orchestrator, instance_id, client_input)
            logger.info("Orchestration %s: %s", instance_id, run.runtime_status)
        except Exception:
            logger.exception("Orchestration %s crashed", instance_id)
        finally:
            with self._lock:
                self._running.discard(instance_id)

    def close(self) -> None:
        """Wait for running orchestrations, then stop the threads."""
        self._pool.shutdown(wait=True)

    async def wait(self, timeout: float = 60.0) -> None:
        """Wait until no orchestration runs (tests and benchmarks)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            with self._lock:
                if not self._running:
                    return
            if loop.time() > deadline:
                raise TimeoutError("orchestrations still running")
            await asyncio.sleep(0.02)


def in_process_service(settings: Settings, store: BlobStore) -> MultivariateService:
    """A service whose orchestrations run in this process (``meterwatch serve``, tests)."""
    activities = {
        **training_activities(TrainingActivities(store, settings)),
        **batch_activities(BatchDetectionActivities(store, settings)),
    }
    return MultivariateService(settings, store, InProcessStarter(activities))
