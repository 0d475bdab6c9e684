"""What a worker process tells Prometheus about the work it does.

Every metric is named here, under one prefix, in base units, with labels of low
cardinality only: namespace, task queue, workflow or activity type, outcome.
Never a workflow id. Queue-level gauges (backlog, lag, timers) are not here: they
describe Redis, not this process, and come from the exporter (``queue_metrics.py``)
so that a scrape of N workers does not report N copies.

Recording sits on the hot path, so each worker binds its label values once per
type (:class:`WorkerMetrics`) and a recording is a dictionary lookup and an
increment. Gauges that only mirror state (slots in use, cached runs, Redis error
counts) are read when Prometheus scrapes, by a collector, not kept up to date.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from . import connection

PREFIX = "orchestrator"

# Task latencies run from a millisecond (a no-op activity) to an hour (a long job).
LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
    1800.0,
    3600.0,
)
# A workflow may run for days; its end-to-end latency needs buckets past an hour.
WORKFLOW_BUCKETS = (*LATENCY_BUCKETS, 4 * 3600.0, 12 * 3600.0, 86400.0, 7 * 86400.0)

QUEUE_LABELS = ("namespace", "task_queue")
# The workflow_type label of runs whose type the reporting worker does not run.
UNREGISTERED = "unregistered"


class ActivityOutcome:
    """Values of the ``outcome`` label of activity attempts."""

    COMPLETED = "completed"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"
    ASYNC = "completing_async"


DECLARED_ACTIVITY_OUTCOMES = (
    ActivityOutcome.COMPLETED,
    ActivityOutcome.FAILED,
    ActivityOutcome.TIMED_OUT,
    ActivityOutcome.CANCELLED,
    ActivityOutcome.ASYNC,
)


class WorkflowTaskOutcome:
    """Values of the ``outcome`` label of workflow tasks."""

    COMPLETED = "completed"
    FAILED = "failed"
    SUPERSEDED = "superseded"  # events arrived while it ran: it runs again
    TIMED_OUT = "timed_out"


DECLARED_WORKFLOW_TASK_OUTCOMES = (
    WorkflowTaskOutcome.COMPLETED,
    WorkflowTaskOutcome.FAILED,
    WorkflowTaskOutcome.SUPERSEDED,
    WorkflowTaskOutcome.TIMED_OUT,
)


@dataclass(frozen=True, slots=True)
class _Families:
    """The metric families of one registry, created once however many workers use it."""

    activity_schedule_to_start: Histogram
    activity_execution: Histogram
    activity_attempts: Counter
    activity_retries: Counter
    late_results: Counter
    tasks_reclaimed: Counter
    workflow_task_schedule_to_start: Histogram
    workflow_task_execution: Histogram
    workflow_tasks: Counter
    workflow_end_to_end: Histogram
    workflow_cache_requests: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> _Families:
        activity = (*QUEUE_LABELS, "activity_type")
        workflow = (*QUEUE_LABELS, "workflow_type")

        def histogram(name: str, doc: str, labels: tuple[str, ...], buckets: Any) -> Histogram:
            return Histogram(f"{PREFIX}_{name}", doc, labels, registry=registry, buckets=buckets)

        def counter(name: str, doc: str, labels: tuple[str, ...]) -> Counter:
            return Counter(f"{PREFIX}_{name}", doc, labels, registry=registry)

        return cls(
            activity_schedule_to_start=histogram(
                "activity_schedule_to_start_seconds",
                "Time from an activity attempt being queued to a worker starting it.",
                activity,
                LATENCY_BUCKETS,
            ),
            activity_execution=histogram(
                "activity_execution_seconds",
                "Time an activity attempt ran on this worker, whatever its outcome.",
                (*activity, "outcome"),
                LATENCY_BUCKETS,
            ),
            activity_attempts=counter(
                "activity_attempts",
                "Activity attempts that ended, by outcome (completed, failed, timed_out, "
                "cancelled, completing_async).",
                (*activity, "outcome"),
            ),
            activity_retries=counter(
                "activity_retries",
                "Retries scheduled after a failed or timed-out activity attempt.",
                activity,
            ),
            late_results=counter(
                "late_results_refused",
                "Results refused because their attempt or task was no longer current "
                "(it timed out, was retried elsewhere, or its run closed).",
                (*QUEUE_LABELS, "task_kind"),
            ),
            tasks_reclaimed=counter(
                "tasks_reclaimed",
                "Stream entries taken over from a worker that read them and went silent.",
                (*QUEUE_LABELS, "task_kind"),
            ),
            workflow_task_schedule_to_start=histogram(
                "workflow_task_schedule_to_start_seconds",
                "Time from a workflow task being queued to a worker starting it.",
                QUEUE_LABELS,
                LATENCY_BUCKETS,
            ),
            workflow_task_execution=histogram(
                "workflow_task_execution_seconds",
                "Time a workflow task took on this worker: history read, code run, "
                "commands recorded.",
                workflow,
                LATENCY_BUCKETS,
            ),
            workflow_tasks=counter(
                "workflow_tasks",
                "Workflow tasks that ended, by outcome (completed, failed, superseded, timed_out).",
                (*workflow, "outcome"),
            ),
            workflow_end_to_end=histogram(
                "workflow_end_to_end_seconds",
                "Time from a run's start to its close, for runs closed by this worker's "
                "workflow tasks and timers; the count is the closes, by status.",
                (*workflow, "status"),
                WORKFLOW_BUCKETS,
            ),
            workflow_cache_requests=counter(
                "workflow_cache_requests",
                "Workflow tasks that found their run in this worker's cache (hit) or "
                "replayed its history (miss).",
                (*QUEUE_LABELS, "result"),
            ),
        )


_families: weakref.WeakKeyDictionary[CollectorRegistry, _Families] = weakref.WeakKeyDictionary()
_families_lock = threading.Lock()


def _families_of(registry: CollectorRegistry) -> _Families:
    with _families_lock:
        families = _families.get(registry)
        if families is None:
            families = _families[registry] = _Families.create(registry)
            registry.register(_ProcessCollector(registry))
        return families


class WorkerMetrics:
    """One worker's recorder: its namespace and task queue are bound into every label set."""

    def __init__(self, registry: CollectorRegistry, namespace: str, task_queue: str) -> None:
        self._f = _families_of(registry)
        self.namespace = namespace
        self.task_queue = task_queue
        self._bound: dict[tuple[Any, ...], Any] = {}

    def _child(self, metric: Counter | Histogram, *labels: str, queue: str | None = None) -> Any:
        """The metric's child for these labels, under this worker's task queue or ``queue``."""
        key = (id(metric), queue, *labels)
        child = self._bound.get(key)
        if child is None:
            child = metric.labels(self.namespace, queue or self.task_queue, *labels)
            self._bound[key] = child
        return child

    def declare(self, workflow_types: Iterable[str], activity_types: Iterable[str]) -> None:
        """Create the counters a worker may bump at 0, so that a rate reads 0 before the
        first failure, retry or reclaim rather than no data."""
        for activity_type in activity_types:
            for outcome in DECLARED_ACTIVITY_OUTCOMES:
                self._child(self._f.activity_attempts, activity_type, outcome)
            self._child(self._f.activity_retries, activity_type)
        for workflow_type in workflow_types:
            for outcome in DECLARED_WORKFLOW_TASK_OUTCOMES:
                self._child(self._f.workflow_tasks, workflow_type, outcome)
        for task_kind in ("workflow", "activity"):
            self._child(self._f.late_results, task_kind)
            self._child(self._f.tasks_reclaimed, task_kind)

    # -- activities -------------------------------------------------------------------

    def activity_started(self, activity_type: str, schedule_to_start: float) -> None:
        self._child(self._f.activity_schedule_to_start, activity_type).observe(
            max(0.0, schedule_to_start)
        )

    def activity_ended(
        self,
        activity_type: str,
        outcome: str,
        seconds: float | None,
        *,
        task_queue: str | None = None,
    ) -> None:
        """An attempt ended; ``seconds`` is None when it did not run here (a timeout)."""
        q = task_queue
        self._child(self._f.activity_attempts, activity_type, outcome, queue=q).inc()
        if seconds is not None:
            self._child(self._f.activity_execution, activity_type, outcome, queue=q).observe(
                seconds
            )

    def activity_retry_scheduled(
        self, activity_type: str, *, task_queue: str | None = None
    ) -> None:
        self._child(self._f.activity_retries, activity_type, queue=task_queue).inc()

    def late_result(self, task_kind: str) -> None:
        self._child(self._f.late_results, task_kind).inc()

    def reclaimed(self, task_kind: str) -> None:
        self._child(self._f.tasks_reclaimed, task_kind).inc()

    # -- workflows ----------------------------------------------------------------------

    def workflow_task_started(self, schedule_to_start: float, cache_hit: bool) -> None:
        self._child(self._f.workflow_task_schedule_to_start).observe(max(0.0, schedule_to_start))
        self._child(self._f.workflow_cache_requests, "hit" if cache_hit else "miss").inc()

    def workflow_task_ended(
        self,
        workflow_type: str,
        outcome: str,
        seconds: float | None,
        *,
        task_queue: str | None = None,
    ) -> None:
        q = task_queue
        self._child(self._f.workflow_tasks, workflow_type, outcome, queue=q).inc()
        if seconds is not None:
            self._child(self._f.workflow_task_execution, workflow_type, queue=q).observe(seconds)

    def workflow_closed(self, workflow_type: str, status: str, seconds: float) -> None:
        self._child(self._f.workflow_end_to_end, workflow_type, status).observe(max(0.0, seconds))


class SlotSource(Protocol):
    """What the scrape-time collector reads from a running worker."""

    namespace: str
    task_queue: str

    def slot_usage(self) -> dict[str, tuple[int, int]]:
        """Slot type -> (used, available)."""
        ...

    def cached_runs(self) -> int: ...


_sources: weakref.WeakKeyDictionary[CollectorRegistry, weakref.WeakSet[Any]] = (
    weakref.WeakKeyDictionary()
)


def track(registry: CollectorRegistry, source: SlotSource) -> None:
    """Report ``source``'s slots and cache at every scrape of ``registry``, while it lives."""
    _families_of(registry)
    with _families_lock:
        _sources.setdefault(registry, weakref.WeakSet()).add(source)


def untrack(registry: CollectorRegistry, source: SlotSource) -> None:
    with _families_lock:
        _sources.get(registry, weakref.WeakSet()).discard(source)


class _ProcessCollector(Collector):
    """Gauges read at scrape time: every tracked worker's slots and cache, and this
    process's Redis error counts (kept by ``connection`` as plain integers)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = weakref.ref(registry)

    def describe(self) -> list[Any]:
        return []  # names vary with what is tracked; collect() is cheap enough to probe

    def collect(self) -> Iterator[Any]:
        registry = self._registry()
        with _families_lock:
            sources = list(_sources.get(registry, ())) if registry is not None else []
        yield from _slot_families(sources)
        yield from _redis_families()


def _slot_families(sources: list[Any]) -> Iterator[Any]:
    labels = [*QUEUE_LABELS, "slot_type"]
    used = GaugeMetricFamily(
        f"{PREFIX}_worker_slots_used", "Execution slots running a task now.", labels=labels
    )
    available = GaugeMetricFamily(
        f"{PREFIX}_worker_slots_available",
        "Execution slots free to take a task now.",
        labels=labels,
    )
    cached = GaugeMetricFamily(
        f"{PREFIX}_workflow_cache_runs",
        "Runs kept in memory between workflow tasks.",
        labels=list(QUEUE_LABELS),
    )
    for source in sources:
        queue = [source.namespace, source.task_queue]
        for slot_type, (in_use, free) in source.slot_usage().items():
            used.add_metric([*queue, slot_type], in_use)
            available.add_metric([*queue, slot_type], free)
        cached.add_metric(queue, source.cached_runs())
    yield from (used, available, cached)


def _redis_families() -> Iterator[Any]:
    stats = connection.stats
    errors = CounterMetricFamily(
        f"{PREFIX}_redis_errors",
        "Redis commands that failed with a transient error (and were retried), by error.",
        labels=["error"],
    )
    for error, count in sorted(stats.errors.items()):
        errors.add_metric([error], count)
    yield errors
    yield CounterMetricFamily(
        f"{PREFIX}_redis_reconnects",
        "Times a call got through again after Redis had been unreachable.",
        value=stats.reconnects,
    )
