"""The worker: pulls workflow and activity tasks of one task queue and runs them.

Workers are stateless and share nothing but Redis: any number may serve a task
queue, and any may die at any moment. What a dead worker held is recovered by
the timeouts recorded in Redis (a started task) or by reclaiming stream entries
it read but never started.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import redis.exceptions
from prometheus_client import REGISTRY, CollectorRegistry

from . import metrics, retention, scripts
from .activity import ActivityDefinition
from .activity_worker import ActivityRunner, WorkerContext
from .batching import ScriptBatcher
from .children import CHILD_KINDS, ChildCoordinator
from .client import Client, check_name
from .connection import with_retry
from .errors import ConfigurationError
from .keys import CONSUMER_GROUP
from .metrics import UNREGISTERED, ActivityOutcome, WorkerMetrics, WorkflowTaskOutcome
from .probes import Health, ProbeServer
from .queue_metrics import QueueCollector
from .schedules import ScheduleDriver
from .timers import Timer
from .workflow import WorkflowDefinition
from .workflow_worker import WorkflowTaskRunner

logger = logging.getLogger(__name__)

Handler = Callable[[str, str, Mapping[str, str]], Awaitable[None]]
TIMER_BATCH = 200
HEARTBEAT_INTERVAL = 5.0
WORKER_FORGOTTEN_AFTER_MS = 24 * 3600 * 1000
DEAD_CONSUMER_IDLE_MS = 3600 * 1000
CONSUMER_SWEEP_INTERVAL = 600.0


class _Slots:
    """Free execution slots of one kind of task; pollers read no more than are free."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.free = total
        self._freed = asyncio.Event()
        self._closed = False

    async def wait_free(self) -> int:
        """Wait for a free slot; return how many are free (0 once closed for shutdown)."""
        while self.free <= 0 and not self._closed:
            self._freed.clear()
            await self._freed.wait()
        return max(0, self.free)

    def close(self) -> None:
        """Wake a poller waiting for a slot, so that shutdown need not wait for one."""
        self._closed = True
        self._freed.set()

    def take(self) -> None:
        self.free -= 1

    def release(self) -> None:
        self.free += 1
        self._freed.set()


def _as_activities(
    activities: Iterable[Callable[..., Any]] | Mapping[str, Callable[..., Any]],
) -> dict[str, ActivityDefinition]:
    if isinstance(activities, Mapping):
        defs = [ActivityDefinition.of(fn, name) for name, fn in activities.items()]
    else:
        defs = [ActivityDefinition.of(fn) for fn in activities]
    return _unique(defs, "activity")


def _as_workflows(workflows: Iterable[Callable[..., Any]]) -> dict[str, WorkflowDefinition]:
    return _unique([WorkflowDefinition.of(fn) for fn in workflows], "workflow")


def _unique(defs: list[Any], what: str) -> dict[str, Any]:
    by_name: dict[str, Any] = {}
    for definition in defs:
        if definition.name in by_name:
            raise ConfigurationError(f"two {what}s are registered as {definition.name!r}")
        by_name[definition.name] = definition
    return by_name


class Worker:
    """Runs the workflows and activities registered with it, for one task queue.

    ``max_concurrent_activities`` and ``max_concurrent_workflow_tasks`` bound
    how many tasks of each kind run at once. On SIGTERM or SIGINT (or
    :meth:`shutdown`) the worker stops pulling, lets running tasks finish for up
    to ``graceful_shutdown_timeout`` seconds, then reports the unfinished
    activity attempts as failed so that they are retried at once elsewhere.
    With ``drive_schedules`` (the default) it also fires the namespace's due
    schedules; every worker may, each firing still happens once.

    Metrics go to ``metrics_registry`` (default: prometheus-client's global one).
    With ``metrics_port`` the worker serves them over HTTP with ``/healthz`` and
    ``/readyz`` (port 0 picks a free one, see :attr:`metrics_port`); with
    ``queue_metrics`` that port also reports the namespace's queue-level gauges,
    which are otherwise the exporter's (``orchestrator metrics serve``).
    """

    def __init__(
        self,
        client: Client,
        *,
        task_queue: str,
        workflows: Iterable[Callable[..., Any]] = (),
        activities: Iterable[Callable[..., Any]] | Mapping[str, Callable[..., Any]] = (),
        max_concurrent_activities: int = 100,
        max_concurrent_workflow_tasks: int = 100,
        graceful_shutdown_timeout: float = 30.0,
        workflow_task_timeout: float = 10.0,
        max_cached_workflows: int = 1000,
        reclaim_idle: float = 30.0,
        poll_block: float = 1.0,
        identity: str | None = None,
        drive_schedules: bool = True,
        retention_sweep_interval: float | None = 60.0,
        metrics_registry: CollectorRegistry | None = None,
        metrics_port: int | None = None,
        metrics_host: str = "0.0.0.0",
        queue_metrics: bool = False,
        liveness_timeout: float = 60.0,
    ) -> None:
        check_name(task_queue, "task queue")
        if max_concurrent_activities < 1 or max_concurrent_workflow_tasks < 1:
            raise ConfigurationError("concurrency limits must be at least 1")
        workflow_defs, activity_defs = _as_workflows(workflows), _as_activities(activities)
        if not workflow_defs and not activity_defs:
            raise ConfigurationError("a worker needs at least one workflow or activity")
        self._timers_wake = asyncio.Event()
        self.client = client
        self.task_queue = task_queue
        self.identity = identity or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.namespace = client.keys.namespace
        self.metrics_registry = metrics_registry or REGISTRY
        self.ctx = WorkerContext(
            client.redis,
            client.keys,
            task_queue,
            self.identity,
            ScriptBatcher(client.redis),
            WorkerMetrics(self.metrics_registry, self.namespace, task_queue),
        )
        self.ctx.metrics.declare(workflow_defs, activity_defs)
        self.health = Health(stale_after=liveness_timeout)
        self._metrics_address = (metrics_host, metrics_port)
        self._queue_metrics = queue_metrics
        self._probes: ProbeServer | None = None
        self._next_consumer_sweep = 0.0
        self.graceful_shutdown_timeout = graceful_shutdown_timeout
        self.reclaim_idle = reclaim_idle
        self.poll_block = poll_block
        self._workflows = WorkflowTaskRunner(
            self.ctx, workflow_defs, workflow_task_timeout, max_cached_workflows
        )
        # A failed attempt schedules its retry in the due-time set: look at it at once.
        self._activities = ActivityRunner(
            self.ctx, activity_defs, max_concurrent_activities, on_retry=self._timers_wake.set
        )
        self._wft_slots = _Slots(max_concurrent_workflow_tasks)
        self._act_slots = _Slots(max_concurrent_activities)
        self._query_slots = _Slots(max_concurrent_workflow_tasks)
        self._children = ChildCoordinator(client)
        self._stop = asyncio.Event()
        self._inflight: dict[asyncio.Task[None], str] = {}
        self.retention_sweep_interval = retention_sweep_interval
        self._schedules = (
            ScheduleDriver(client, identity=self.identity) if drive_schedules else None
        )

    # -- lifecycle ----------------------------------------------------------------

    @property
    def metrics_port(self) -> int | None:
        """The port serving /metrics, /healthz and /readyz while the worker runs."""
        return self._probes.port if self._probes else None

    def shutdown(self) -> None:
        """Ask the worker to stop: it drains in-flight tasks, then :meth:`run` returns."""
        if not self._stop.is_set():
            logger.info("worker shutting down", extra={"fields": self.ctx.fields()})
        self.health.stopping()
        self._stop.set()
        for slots in (self._wft_slots, self._act_slots, self._query_slots):
            slots.close()

    async def run(self, *, handle_signals: bool = True) -> None:
        """Run until :meth:`shutdown` (or SIGTERM/SIGINT when ``handle_signals``)."""
        self._serve_metrics()
        try:
            await self._run(handle_signals)
        finally:
            metrics.untrack(self.metrics_registry, self)
            if self._probes is not None:
                self._probes.stop()

    def _serve_metrics(self) -> None:
        metrics.track(self.metrics_registry, self)
        host, port = self._metrics_address
        if port is None:
            return
        registry = self.metrics_registry
        if self._queue_metrics:  # the exporter's gauges, on this port too
            registry = CollectorRegistry(auto_describe=False)
            registry.register(self.metrics_registry)  # a registry is a collector too
            registry.register(QueueCollector.from_client(self.client))
        try:
            self._probes = ProbeServer(registry, self.health, host, port).start()
        except OSError as exc:
            raise ConfigurationError(f"cannot serve metrics on {host}:{port}: {exc}") from None

    def slot_usage(self) -> dict[str, tuple[int, int]]:
        """Slot type -> (used, free), for the metrics collector."""
        slots = {"workflow": self._wft_slots, "activity": self._act_slots}
        return {kind: (s.total - s.free, s.free) for kind, s in slots.items()}

    def cached_runs(self) -> int:
        return self._workflows.cached_runs()

    async def _run(self, handle_signals: bool) -> None:
        await with_retry(self._prepare)
        self.health.prepared()
        if handle_signals:
            self._install_signal_handlers()
        loops = [asyncio.create_task(coro) for coro in self._loops()]
        logger.info(
            "worker started: workflows %s, activities %s",
            sorted(self._workflows.workflows),
            sorted(self._activities.activities),
            extra={"fields": self.ctx.fields()},
        )
        try:
            await self._stop.wait()
        finally:
            await self._drain(loops)

    def _loops(self) -> list[Awaitable[None]]:
        # Liveness watches the loops that step at least every few seconds.
        for name in ("heartbeat", "timer"):
            self.health.watch(name)
        loops = [
            self._keep_running("heartbeat", self._heartbeat),
            self._keep_running("timer", self._fire_timers),
            self._keep_running("reclaim", self._reclaim),
        ]
        if self.retention_sweep_interval:
            loops.append(self._keep_running("retention", self._sweep_retention))
        if self._schedules is not None:
            loops.append(self._keep_running("schedule", self._drive_schedules))
        pollers: list[tuple[str, list[str], _Slots, Handler]] = []
        if self._workflows.workflows:
            pollers.append(
                ("workflow task poll", self._wft_streams(), self._wft_slots, self._workflows.handle)
            )
            pollers.append(
                (
                    "query poll",
                    self._query_streams(),
                    self._query_slots,
                    self._workflows.answer_query,
                )
            )
        if self._activities.activities:
            pollers.append(
                ("activity poll", self._act_streams(), self._act_slots, self._activities.handle)
            )
        for name, streams, slots, handler in pollers:
            self.health.watch(name)
            loops.append(self._keep_running(name, self._poller(name, streams, slots, handler)))
        return loops

    async def _keep_running(self, name: str, step: Callable[[], Awaitable[None]]) -> None:
        """Run one loop's step until shutdown; no error may end a loop while the worker runs."""
        failures = 0
        while not self._stop.is_set():
            try:
                await with_retry(step, give_up_after=float("inf"))
                self.health.beat(name)
                failures = 0
            except Exception:
                failures += 1
                logger.exception(
                    "%s loop failed; carrying on", name, extra={"fields": self.ctx.fields()}
                )
                await self._pause(min(5.0, 0.1 * 2**failures))

    async def _pause(self, seconds: float) -> None:
        """Sleep, but wake at once on shutdown."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), timeout=seconds)

    def _install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.shutdown)

    async def _prepare(self) -> None:
        await scripts.load_all(self.client.redis)
        await self._ensure_groups()

    async def _ensure_groups(self) -> None:
        for stream in self._wft_streams() + self._act_streams() + self._query_streams():
            try:
                await self.client.redis.xgroup_create(stream, CONSUMER_GROUP, id="0", mkstream=True)
            except redis.exceptions.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    async def _drain(self, loops: list[asyncio.Task[None]]) -> None:
        # Pollers notice the stop within one blocking read; the rest wait for them.
        await asyncio.wait(loops, timeout=self.poll_block + 2)
        for task in loops:
            task.cancel()
        await asyncio.gather(*loops, return_exceptions=True)
        if self._inflight:
            logger.info(
                "waiting up to %.0f s for %d task(s) in flight",
                self.graceful_shutdown_timeout,
                len(self._inflight),
                extra={"fields": self.ctx.fields()},
            )
            _, pending = await asyncio.wait(self._inflight, timeout=self.graceful_shutdown_timeout)
            self._activities.shutting_down = True
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        self._activities.close()
        with contextlib.suppress(Exception):  # best effort: both are cleaned up later anyway
            await self.client.redis.zrem(self.client.keys.workers(self.task_queue), self.identity)
            await self._leave_groups()
        logger.info("worker stopped", extra={"fields": self.ctx.fields()})

    async def _leave_groups(self) -> None:
        """Remove this worker from the consumer groups it read, if it holds no entry there.

        Otherwise every pod an autoscaler ever ran would stay listed in each group.
        Deleting a consumer drops its pending entries, so one that still holds some
        (read but not started) stays, for another worker to reclaim.
        """
        streams = self._wft_streams() + self._act_streams() + self._query_streams()
        calls = [
            (scripts.CONSUMER_LEAVE, [stream], [CONSUMER_GROUP, self.identity])
            for stream in streams
        ]
        await scripts.run_pipeline(self.client.redis, calls)

    # -- pulling tasks -------------------------------------------------------------

    def _wft_streams(self) -> list[str]:
        k = self.client.keys
        return [k.workflow_tasks(self.task_queue, s) for s in range(k.shards)]

    def _query_streams(self) -> list[str]:
        k = self.client.keys
        return [k.query_tasks(self.task_queue, s) for s in range(k.shards)]

    def _act_streams(self) -> list[str]:
        k = self.client.keys
        return [k.activity_tasks(self.task_queue, s) for s in range(k.shards)]

    def _poller(
        self, name: str, streams: list[str], slots: _Slots, handler: Handler
    ) -> Callable[[], Awaitable[None]]:
        """One step of a poll loop: read as many tasks as there are free slots, and start them."""
        offsets = dict.fromkeys(streams, ">")
        turn = 0

        async def step() -> None:
            nonlocal turn
            if slots.free <= 0:
                self.health.waiting(name)
            free = await slots.wait_free()
            if self._stop.is_set():
                return
            # COUNT applies to each stream read: with fewer free slots than shards, read
            # one entry from each of `free` shards in turn, never more than are free.
            if free >= len(streams):
                chosen, count = offsets, free // len(streams)
            else:
                chosen = {streams[(turn + i) % len(streams)]: ">" for i in range(free)}
                turn, count = (turn + free) % len(streams), 1
            reply = await self._read(chosen, count)
            for stream, entries in reply or []:
                for entry_id, fields in entries:
                    self._spawn(handler, slots, stream, entry_id, fields)

        return step

    async def _read(self, offsets: dict[str, str], count: int) -> Any:
        try:
            return await self.client.redis.xreadgroup(
                CONSUMER_GROUP,
                self.identity,
                offsets,
                count=count,
                block=int(self.poll_block * 1000),
            )
        except redis.exceptions.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            # Redis lost the stream (restart without persistence): recreate and go on.
            await self._ensure_groups()
            return None

    def _spawn(
        self, handler: Handler, slots: _Slots, stream: str, entry_id: str, fields: Mapping[str, str]
    ) -> None:
        slots.take()
        task = asyncio.create_task(handler(stream, entry_id, fields))
        self._inflight[task] = entry_id
        task.add_done_callback(lambda t: self._finished(t, slots))

    def _finished(self, task: asyncio.Task[None], slots: _Slots) -> None:
        self._inflight.pop(task, None)
        slots.release()
        if not task.cancelled() and task.exception() is not None:
            logger.error(
                "task %s crashed",
                task.get_name(),
                exc_info=task.exception(),
                extra={"fields": self.ctx.fields()},
            )

    # -- timers and reclaiming ---------------------------------------------------------

    async def _fire_timers(self) -> None:
        """Fire due timers (retries, timeouts) of every shard, then sleep until the next is due.

        Any worker may fire any timer: each is removed by the script that fires it.
        """
        pause = 1.0
        for shard in range(self.client.keys.shards):
            pause = min(pause, await self._fire_shard_timers(shard))
        self._timers_wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._timers_wake.wait(), timeout=max(pause, 0.005))

    async def _fire_shard_timers(self, shard: int) -> float:
        """Fire one batch of due timers; return the seconds until the next one (at most 1)."""
        redis_ = self.client.redis
        reply = await scripts.TIMERS_DUE(redis_, [self.client.keys.timers(shard)], [TIMER_BATCH])
        now, next_due, members = int(reply[0]), int(reply[1]), reply[2:]
        if members:
            timers = [Timer.parse(m) for m in members]
            scripted = [t for t in timers if t.kind not in CHILD_KINDS]
            results = await scripts.run_pipeline(
                redis_, [t.fire_call(self.client.keys) for t in scripted]
            )
            for timer, result in zip(scripted, results, strict=True):
                self._log_timer(timer, result)
            # Child workflow steps span two shards: each is two script calls in turn.
            for timer in timers:
                if timer.kind in CHILD_KINDS:
                    outcome = await self._children.fire(timer)
                    logger.debug("child timer %s: %s", timer.kind, outcome)
            if len(members) == TIMER_BATCH:
                return 0.0
        return 1.0 if next_due < 0 else min(1.0, max(0.0, (next_due - now) / 1000))

    def _log_timer(self, timer: Timer, result: Any) -> None:
        if isinstance(result, Exception):
            logger.error("firing timer %s failed: %s", timer.kind, result)
            return
        outcome = result[0]
        if outcome in ("GONE", "STALE"):
            return
        self._count_timer(timer, result)
        # The timer's own task queue, not this worker's: any worker fires any timer.
        fields = self.ctx.fields(
            task_queue=timer.activity_queue or timer.workflow_queue or self.task_queue,
            workflow_id=timer.workflow_id,
            run_id=timer.run_id,
            seq=timer.seq or None,
        )
        if outcome in ("RETRY", "TIMED_OUT") and len(result) > 1:
            fields["activity_type"] = result[-1]
        messages = {
            ("stc", "RETRY"): "activity attempt timed out (start-to-close); retry scheduled",
            ("stc", "TIMED_OUT"): "activity timed out for good (start-to-close)",
            ("s2c", "TIMED_OUT"): "activity timed out (schedule-to-close)",
            ("retry", "DISPATCHED"): "activity retry dispatched",
            ("wft_timeout", "OK"): "workflow task timed out; dispatched again",
            ("wft_retry", "OK"): "workflow task retry dispatched",
        }
        if outcome in ("DISPATCHED", "OK") and len(result) > 1:
            fields["attempt"] = result[1]
        logger.info(
            messages.get((timer.kind, outcome), f"timer {timer.kind}: {outcome}"),
            extra={"fields": fields},
        )

    def _count_timer(self, timer: Timer, result: list[Any]) -> None:
        """Record the timeouts a timer caused (the scripts name the activity or run type)."""
        outcome, m = result[0], self.ctx.metrics
        if timer.kind in ("stc", "hb", "s2s", "s2c") and outcome in ("RETRY", "TIMED_OUT"):
            activity_type = str(result[-1])
            queue = timer.activity_queue
            m.activity_ended(activity_type, ActivityOutcome.TIMED_OUT, None, task_queue=queue)
            if outcome == "RETRY":
                m.activity_retry_scheduled(activity_type, task_queue=queue)
        elif timer.kind == "wft_timeout" and outcome == "OK":
            known = str(result[2]) in self._workflows.workflows
            m.workflow_task_ended(
                str(result[2]) if known else UNREGISTERED,
                WorkflowTaskOutcome.TIMED_OUT,
                None,
                task_queue=timer.workflow_queue,
            )

    async def _heartbeat(self) -> None:
        """Say this worker is alive (for ``task-queue describe``), every few seconds."""
        k, now = self.client.keys, int(time.time() * 1000)
        key = k.workers(self.task_queue)
        async with self.client.redis.pipeline(transaction=False) as pipe:
            pipe.zadd(key, {self.identity: now})
            pipe.zremrangebyscore(key, "-inf", now - WORKER_FORGOTTEN_AFTER_MS)
            pipe.sadd(k.task_queues(), self.task_queue)
            await pipe.execute()
        self.health.beat("heartbeat")
        await self._pause(HEARTBEAT_INTERVAL)

    async def _sweep_retention(self) -> None:
        """Remove closed runs past the namespace's retention, then wait for the next sweep."""
        if not await retention.sweep(self.client):
            await self._pause(self.retention_sweep_interval or 60.0)

    async def _drive_schedules(self) -> None:
        """Fire the due schedules, then sleep until one is next due (at most 1 s)."""
        assert self._schedules is not None
        await self._pause(await self._schedules.run_once())

    async def _reclaim(self) -> None:
        """Take over stream entries read by a worker that died before starting them."""
        await self._pause(self.reclaim_idle / 2)
        for stream, slots, handler in self._reclaim_sources():
            if not self._stop.is_set() and slots.free > 0:
                await self._reclaim_stream(stream, slots, handler)
        if time.monotonic() >= self._next_consumer_sweep:
            self._next_consumer_sweep = time.monotonic() + CONSUMER_SWEEP_INTERVAL
            for stream, _, _ in self._reclaim_sources():
                await self._forget_dead_consumers(stream)

    async def _forget_dead_consumers(self, stream: str) -> None:
        """Drop consumers that hold nothing and have not read for an hour: workers that
        died without leaving the group (a live worker reads every second)."""
        redis_ = self.client.redis
        for consumer in await redis_.xinfo_consumers(stream, CONSUMER_GROUP):
            if consumer["pending"] == 0 and consumer["idle"] > DEAD_CONSUMER_IDLE_MS:
                # Checked again inside the script: it may have read since.
                await scripts.CONSUMER_LEAVE(redis_, [stream], [CONSUMER_GROUP, consumer["name"]])

    def _reclaim_sources(self) -> list[tuple[str, _Slots, Handler]]:
        sources: list[tuple[str, _Slots, Handler]] = []
        if self._workflows.workflows:
            sources += [(s, self._wft_slots, self._workflows.handle) for s in self._wft_streams()]
        if self._activities.activities:
            sources += [(s, self._act_slots, self._activities.handle) for s in self._act_streams()]
        return sources

    async def _reclaim_stream(self, stream: str, slots: _Slots, handler: Handler) -> None:
        reply = await self.client.redis.xautoclaim(
            stream,
            CONSUMER_GROUP,
            self.identity,
            min_idle_time=int(self.reclaim_idle * 1000),
            start_id="0-0",
            count=slots.free,
        )
        for entry_id, fields in reply[1]:
            if fields:
                self.ctx.metrics.reclaimed("workflow" if stream.endswith(":wf") else "activity")
                logger.info(
                    "reclaimed task %s from a silent worker",
                    entry_id,
                    extra={"fields": self.ctx.fields()},
                )
                self._spawn(handler, slots, stream, entry_id, fields)
