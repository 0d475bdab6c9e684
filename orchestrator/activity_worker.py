"""Running activity tasks: start the attempt, call the function, report the outcome."""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import orjson
from redis.asyncio import Redis

from . import activity, scripts
from .activity import ActivityDefinition, ActivityInfo
from .batching import ScriptBatcher
from .connection import with_retry
from .converter import convert_args, dumps, failure_from_exception
from .errors import ApplicationError, Failure
from .keys import CONSUMER_GROUP, Keys
from .metrics import ActivityOutcome, WorkerMetrics
from .timers import Timer

logger = logging.getLogger(__name__)


class WorkerShutdownError(Exception):
    """The attempt was cut short because its worker shut down; it is retried elsewhere."""


class StartToCloseTimeoutError(TimeoutError):
    """The attempt ran past its start-to-close timeout; the worker stopped waiting for it."""


@dataclass(frozen=True, slots=True)
class WorkerContext:
    """What every task runner of one worker shares."""

    redis: Redis
    keys: Keys
    task_queue: str
    identity: str
    batcher: ScriptBatcher
    metrics: WorkerMetrics

    def fields(self, **extra: Any) -> dict[str, Any]:
        return {
            "namespace": self.keys.namespace,
            "task_queue": self.task_queue,
            "worker": self.identity,
            **extra,
        }


@dataclass(frozen=True, slots=True)
class _Attempt:
    """One activity attempt as read from its task stream entry."""

    stream: str
    entry_id: str
    workflow_id: str
    run_id: str
    seq: int
    task: dict[str, Any]

    @classmethod
    def parse(cls, stream: str, entry_id: str, fields: Mapping[str, str]) -> _Attempt:
        return cls(
            stream, entry_id, fields["w"], fields["r"], int(fields["s"]), orjson.loads(fields["t"])
        )

    @property
    def queued_ms(self) -> int:
        """When this attempt was queued: its stream entry id is the Redis time of the XADD."""
        return int(self.entry_id.split("-", 1)[0])

    @property
    def activity_type(self) -> str:
        return str(self.task["type"])

    @property
    def timer(self) -> Timer:
        return self.timer_of("stc")

    def timer_of(self, kind: str) -> Timer:
        return Timer(
            kind,
            self.workflow_id,
            self.run_id,
            self.seq,
            self.entry_id,
            self.task["tq"],
            self.task["wtq"],
        )

    def keys(self, keys: Keys) -> list[str]:
        """Activity hash, run hash, history, workflow task stream, timers."""
        wid, rid = self.workflow_id, self.run_id
        return [
            keys.activity(wid, rid, self.seq),
            keys.run(wid, rid),
            keys.history(wid, rid),
            keys.workflow_tasks_for(self.task["wtq"], wid),
            keys.timers_for(wid),
        ]


class ActivityRunner:
    """Executes the activity tasks a worker pulls; sync functions run in a thread pool."""

    def __init__(
        self,
        ctx: WorkerContext,
        activities: Mapping[str, ActivityDefinition],
        max_threads: int,
        heartbeat_throttle: float = 30.0,
        on_retry: Callable[[], None] = lambda: None,
    ) -> None:
        self.ctx = ctx
        self.activities = dict(activities)
        self.heartbeat_throttle = heartbeat_throttle
        self.on_retry = on_retry
        self._pool = ThreadPoolExecutor(max_workers=max_threads, thread_name_prefix="activity")
        self.shutting_down = False
        self._threads_busy = 0
        self._threads_lock = threading.Lock()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self._threads_busy:
            logger.warning(
                "%d sync activity call(s) still running in threads: Python cannot stop a "
                "thread, so this process exits only when they return; their attempts were "
                "already reported as failed and are retried by other workers",
                self._threads_busy,
                extra={"fields": self.ctx.fields()},
            )

    def _in_thread(self, fn: Any, *args: Any) -> Any:
        with self._threads_lock:
            self._threads_busy += 1
        try:
            return fn(*args)
        finally:
            with self._threads_lock:
                self._threads_busy -= 1

    async def handle(self, stream: str, entry_id: str, fields: Mapping[str, str]) -> None:
        attempt = _Attempt.parse(stream, entry_id, fields)
        started = await self._start(attempt)
        if started is None:
            return
        info = self._info(attempt, *started)
        schedule_to_start = (info.started_time_ms - attempt.queued_ms) / 1000
        self.ctx.metrics.activity_started(info.activity_type, schedule_to_start)
        log_fields = self.ctx.fields(
            workflow_id=info.workflow_id,
            run_id=info.run_id,
            activity_type=info.activity_type,
            seq=info.seq,
            attempt=info.attempt,
        )
        logger.info("activity started", extra={"fields": log_fields})
        context = activity.AttemptContext(info, asyncio.get_running_loop())
        task = asyncio.current_task()
        assert task is not None
        senders: list[asyncio.Task[None]] = []
        context.on_first_beat = lambda: senders.append(
            asyncio.create_task(self._send_heartbeats(attempt, context, task))
        )
        began = time.perf_counter()
        try:
            result_json = dumps(await self._invoke(attempt, context))
        except activity.CompleteAsyncError:
            self._ended(attempt, ActivityOutcome.ASYNC, began)
            logger.info("activity will be completed asynchronously", extra={"fields": log_fields})
            return
        except asyncio.CancelledError:
            if context.cancel_requested:
                await self._report_canceled(attempt, context, began, log_fields)
                return
            if not self.shutting_down:
                raise
            failure = failure_from_exception(
                WorkerShutdownError("worker shut down before the activity finished"), info.attempt
            )
            await self._report_failure(attempt, failure, began, log_fields, interrupted=True)
            raise
        except Exception as exc:  # any failure of user code is reported, never raised
            failure = failure_from_exception(exc, info.attempt)
            timed_out = isinstance(exc, StartToCloseTimeoutError)
            if timed_out:  # the same type as when the server-side timer notices first
                failure = dataclasses.replace(failure, type="TimeoutError")
            await self._report_failure(attempt, failure, began, log_fields, timed_out=timed_out)
            return
        finally:
            for sender in senders:
                sender.cancel()
        await self._report_success(attempt, result_json, began, log_fields)

    async def _start(self, attempt: _Attempt) -> tuple[int, int, int, list[Any]] | None:
        keys = self.ctx.keys
        wid = attempt.workflow_id
        hb_ms = attempt.task.get("hb_ms", 0)
        hb_timer = attempt.timer_of("hb").member() if hb_ms else ""
        reply = await with_retry(
            lambda: self.ctx.batcher.call(
                scripts.ACTIVITY_START,
                [
                    keys.activity(wid, attempt.run_id, attempt.seq),
                    keys.run(wid, attempt.run_id),
                    keys.history(wid, attempt.run_id),
                    attempt.stream,
                    keys.timers_for(wid),
                ],
                [
                    attempt.entry_id,
                    CONSUMER_GROUP,
                    self.ctx.identity,
                    attempt.task["stc_ms"],
                    attempt.timer.member(),
                    hb_ms,
                    hb_timer,
                ],
            )
        )
        if reply[0] != "OK":
            logger.debug("activity task %s is stale; dropped", attempt.entry_id)
            return None
        details = orjson.loads(reply[4]) if reply[4] else []
        return int(reply[1]), int(reply[2]), int(reply[3]), details

    def _info(
        self,
        attempt: _Attempt,
        number: int,
        started_ms: int,
        scheduled_ms: int,
        details: list[Any],
    ) -> ActivityInfo:
        task = attempt.task
        return ActivityInfo(
            activity_type=task["type"],
            namespace=self.ctx.keys.namespace,
            task_queue=task["tq"],
            workflow_id=attempt.workflow_id,
            run_id=attempt.run_id,
            workflow_type=task.get("wtype", ""),
            seq=attempt.seq,
            attempt=number,
            scheduled_time_ms=scheduled_ms,
            started_time_ms=started_ms,
            start_to_close_timeout=task["stc_ms"] / 1000,
            heartbeat_timeout=task.get("hb_ms", 0) / 1000,
            heartbeat_details=details,
            attempt_id=attempt.entry_id,
            workflow_task_queue=task["wtq"],
        )

    async def _invoke(self, attempt: _Attempt, context: activity.AttemptContext) -> Any:
        info = context.info
        definition = self.activities.get(info.activity_type)
        if definition is None:
            raise ApplicationError(
                f"activity type {info.activity_type!r} is not registered on worker "
                f"{self.ctx.identity} (registered: {sorted(self.activities)})",
                type="ActivityNotRegistered",
            )
        args = convert_args(attempt.task.get("input") or [], definition.arg_types)
        activity._set_context(context)
        if definition.is_async:
            call = definition.fn(*args)
        else:
            copied = contextvars.copy_context()
            call = asyncio.get_running_loop().run_in_executor(
                self._pool, copied.run, self._in_thread, definition.fn, *args
            )
        try:
            return await asyncio.wait_for(call, info.start_to_close_timeout)
        except TimeoutError:
            raise StartToCloseTimeoutError(
                "activity attempt exceeded its start-to-close timeout"
            ) from None

    async def _send_heartbeats(
        self, attempt: _Attempt, context: activity.AttemptContext, task: asyncio.Task[Any]
    ) -> None:
        """Forward the attempt's heartbeats to Redis, at most once per throttle interval.

        The reply says whether the workflow asked the activity to stop: then the
        attempt's task is cancelled (and a sync activity's next heartbeat raises).
        """
        timeout_ms = int(attempt.task.get("hb_ms", 0))
        throttle = min(self.heartbeat_throttle, timeout_ms * 0.8 / 1000 or self.heartbeat_throttle)
        member = attempt.timer_of("hb").member()
        keys = [attempt.keys(self.ctx.keys)[0], self.ctx.keys.timers_for(attempt.workflow_id)]
        while True:
            await context.beat.wait()
            context.beat.clear()
            details = dumps(context.take_details() or [])
            reply = await with_retry(
                lambda details=details: self.ctx.batcher.call(
                    scripts.ACTIVITY_HEARTBEAT,
                    keys,
                    [attempt.entry_id, details, timeout_ms, member],
                )
            )
            if reply[0] != "OK" or int(reply[1]):
                # Cancelled by the workflow, or the attempt timed out: stop working on it.
                context.cancel_requested = True
                task.cancel()
                return
            await asyncio.sleep(throttle)

    def _ended(self, attempt: _Attempt, outcome: str | None, began: float) -> float:
        """Record how the attempt ended (None: its result was refused); return its seconds."""
        seconds = time.perf_counter() - began
        if outcome is None:
            self.ctx.metrics.late_result("activity")
        else:
            self.ctx.metrics.activity_ended(attempt.activity_type, outcome, seconds)
        return seconds

    async def _report_success(
        self, attempt: _Attempt, result_json: bytes, began: float, log_fields: dict[str, Any]
    ) -> None:
        reply = await with_retry(
            lambda: self.ctx.batcher.call(
                scripts.ACTIVITY_COMPLETE,
                attempt.keys(self.ctx.keys),
                [attempt.entry_id, result_json],
            )
        )
        ok = reply[0] == "OK"
        seconds = self._ended(attempt, ActivityOutcome.COMPLETED if ok else None, began)
        if ok:
            logger.info(
                "activity completed in %.1f ms", seconds * 1000, extra={"fields": log_fields}
            )
        else:
            logger.warning(
                "activity result refused: the attempt is no longer current",
                extra={"fields": log_fields},
            )

    async def _report_canceled(
        self,
        attempt: _Attempt,
        context: activity.AttemptContext,
        began: float,
        log_fields: dict[str, Any],
    ) -> None:
        details = dumps(context.take_details() or [])
        reply = await with_retry(
            lambda: self.ctx.batcher.call(
                scripts.ACTIVITY_CANCEL, attempt.keys(self.ctx.keys), [attempt.entry_id, details]
            )
        )
        ok = reply[0] == "OK"
        self._ended(attempt, ActivityOutcome.CANCELLED if ok else None, began)
        if ok:
            logger.info("activity canceled", extra={"fields": log_fields})
        else:
            logger.info(
                "activity attempt stopped: it is no longer current", extra={"fields": log_fields}
            )

    async def _report_failure(
        self,
        attempt: _Attempt,
        failure: Failure,
        began: float,
        log_fields: dict[str, Any],
        *,
        timed_out: bool = False,
        interrupted: bool = False,
    ) -> None:
        reply = await with_retry(
            lambda: self.ctx.batcher.call(
                scripts.ACTIVITY_FAIL,
                attempt.keys(self.ctx.keys),
                [
                    attempt.entry_id,
                    dumps(failure.to_dict()),
                    failure.type,
                    "1" if failure.non_retryable else "0",
                    random.random(),
                    attempt.timer.retry().member(),
                    "1" if interrupted else "0",
                ],
            )
        )
        reason = f"{failure.type}: {failure.message}"
        outcome = ActivityOutcome.TIMED_OUT if timed_out else ActivityOutcome.FAILED
        self._ended(attempt, outcome if reply[0] != "STALE" else None, began)
        if reply[0] == "RETRY":
            self.ctx.metrics.activity_retry_scheduled(attempt.activity_type)
            self.on_retry()
            logger.info(
                "activity failed (%s); retry in %.2f s",
                reason,
                int(reply[1]) / 1000,
                extra={"fields": log_fields},
            )
        elif reply[0] == "FAILED":
            logger.info("activity failed for good (%s)", reason, extra={"fields": log_fields})
        else:
            logger.warning(
                "activity failure refused: the attempt is no longer current",
                extra={"fields": log_fields},
            )
