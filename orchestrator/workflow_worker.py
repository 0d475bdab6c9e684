"""Running workflow tasks: fetch new history, advance the code, record its commands."""

from __future__ import annotations

import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import orjson

from . import history, scripts
from .activity_worker import WorkerContext
from .commands import (
    CancelTimer,
    CancelWorkflow,
    Command,
    CompleteWorkflow,
    ContinueAsNew,
    FailWorkflow,
    RecordMarker,
    RequestCancelActivity,
    ScheduleActivity,
    StartChildWorkflow,
    StartTimer,
)
from .connection import with_retry
from .converter import dumps, failure_from_exception
from .errors import WorkflowTaskError
from .keys import CONSUMER_GROUP, Keys
from .metrics import UNREGISTERED, WorkflowTaskOutcome
from .runtime import WorkflowInstance
from .timers import Timer
from .workflow import WorkflowDefinition, WorkflowInfo

logger = logging.getLogger(__name__)


class WorkflowTaskRunner:
    """Executes workflow tasks, keeping recently used runs in memory between tasks.

    A cached run is fed only the events recorded since its last task, so a
    workflow with a long history is not replayed from the start at every step.
    Any worker of the queue may take a run's next task (there are no sticky
    queues yet), so with N workers the cache serves about one task in N; the
    others replay the history.
    """

    def __init__(
        self,
        ctx: WorkerContext,
        workflows: Mapping[str, WorkflowDefinition],
        task_timeout: float,
        max_cached: int,
    ) -> None:
        self.ctx = ctx
        self.workflows = dict(workflows)
        self.task_timeout_ms = int(task_timeout * 1000)
        self.max_cached = max_cached
        self._cache: OrderedDict[str, WorkflowInstance] = OrderedDict()

    async def handle(self, stream: str, entry_id: str, fields: Mapping[str, str]) -> None:
        workflow_id, run_id = fields["w"], fields["r"]
        cached = self._cache.pop(run_id, None)
        started = await self._start(stream, entry_id, workflow_id, run_id, cached)
        if started is None:
            if cached is not None:
                self._remember(cached)
            return
        began = time.perf_counter()
        start_ms, attempt, events = started
        queued_ms = int(entry_id.split("-", 1)[0])
        self.ctx.metrics.workflow_task_started((start_ms - queued_ms) / 1000, cached is not None)
        log_fields = self.ctx.fields(workflow_id=workflow_id, run_id=run_id, attempt=attempt)
        log_fields["workflow_type"] = cached.info.workflow_type if cached else _type_of(events)
        # Any client may start any type name: those this worker does not run share one
        # metric label instead of one series each.
        known = log_fields["workflow_type"] in self.workflows
        workflow_type = log_fields["workflow_type"] if known else UNREGISTERED
        try:
            instance = cached or self._new_instance(workflow_id, run_id, events)
            commands = instance.apply(events)
        except Exception as exc:  # the code could not run: fail the task, keep the run
            await self._fail(entry_id, workflow_id, run_id, exc, log_fields)
            self._ended(workflow_type, WorkflowTaskOutcome.FAILED, began)
            return
        outcome = await self._complete(entry_id, instance, commands, log_fields)
        self._ended(workflow_type, outcome, began)

    def _ended(self, workflow_type: str, outcome: str | None, began: float) -> None:
        """Record how a workflow task ended (None: its completion was refused)."""
        if outcome is None:
            self.ctx.metrics.late_result("workflow")
        else:
            seconds = time.perf_counter() - began
            self.ctx.metrics.workflow_task_ended(workflow_type, outcome, seconds)

    async def _start(
        self,
        stream: str,
        entry_id: str,
        workflow_id: str,
        run_id: str,
        cached: WorkflowInstance | None,
    ) -> tuple[int, int, list[history.Event]] | None:
        """Start the task: (Redis time of the start in ms, attempt, new events), or None."""
        keys = self.ctx.keys
        timer = Timer("wft_timeout", workflow_id, run_id, 0, entry_id, "", self.ctx.task_queue)
        after = cached.last_event_id if cached else 0
        reply = await with_retry(
            lambda: self.ctx.batcher.call(
                scripts.WORKFLOW_TASK_START,
                [
                    keys.run(workflow_id, run_id),
                    keys.history(workflow_id, run_id),
                    stream,
                    keys.timers_for(workflow_id),
                ],
                [
                    entry_id,
                    CONSUMER_GROUP,
                    self.ctx.identity,
                    self.task_timeout_ms,
                    timer.member(),
                    after,
                ],
            )
        )
        if reply[0] != "OK":
            logger.debug("workflow task %s is stale; dropped", entry_id)
            return None
        return int(reply[1]), int(reply[2]), history.parse_events(reply[3:])

    async def answer_query(self, stream: str, entry_id: str, fields: Mapping[str, str]) -> None:
        """Answer one query from the run's current state: the cached run, or a fresh replay."""
        redis = self.ctx.redis
        workflow_id, run_id = fields["w"], fields["r"]
        # Acknowledged at once: a query is answered at most once, and its caller retries.
        await redis.xack(stream, CONSUMER_GROUP, entry_id)
        await redis.xdel(stream, entry_id)
        try:
            instance = await self._query_instance(workflow_id, run_id)
            answer = {
                "result": orjson.Fragment(
                    dumps(instance.query(fields["q"], orjson.loads(fields["a"])))
                )
            }
        except Exception as exc:  # any failure goes back to the caller, as one line
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        async with redis.pipeline(transaction=False) as pipe:
            pipe.lpush(fields["k"], dumps(answer))
            pipe.expire(fields["k"], 60)
            await pipe.execute()

    async def _query_instance(self, workflow_id: str, run_id: str) -> WorkflowInstance:
        """The run's state as of now: the cached instance if nothing happened since, else a
        fresh replay that also delivers the events (signals) no workflow task has seen yet."""
        history_key = self.ctx.keys.history(workflow_id, run_id)
        cached = self._cache.get(run_id)
        if cached is not None:
            newer = await self.ctx.redis.xrange(history_key, f"(0-{cached.last_event_id}")
            if not newer:
                return cached
        events = history.from_stream(await self.ctx.redis.xrange(history_key))
        instance = self._new_instance(workflow_id, run_id, events)
        instance.replay(events)
        instance.catch_up()
        return instance

    def _new_instance(
        self, workflow_id: str, run_id: str, events: list[history.Event]
    ) -> WorkflowInstance:
        if not events or events[0]["type"] != history.WORKFLOW_EXECUTION_STARTED:
            raise WorkflowTaskError(f"run {run_id} has no WorkflowExecutionStarted event")
        attrs = events[0]["attrs"]
        workflow_type = attrs["workflow_type"]
        definition = self.workflows.get(workflow_type)
        if definition is None:
            raise WorkflowTaskError(
                f"workflow type {workflow_type!r} is not registered on worker "
                f"{self.ctx.identity} (registered: {sorted(self.workflows)})"
            )
        info = WorkflowInfo(
            self.ctx.keys.namespace, workflow_id, run_id, workflow_type, attrs["task_queue"]
        )
        instance = WorkflowInstance(definition, info)
        instance.started_ms = int(events[0]["ts"])
        return instance

    async def _complete(
        self,
        entry_id: str,
        instance: WorkflowInstance,
        commands: list[Command],
        log_fields: dict[str, Any],
    ) -> str | None:
        """Record the task's commands; return its outcome, or None if it was refused."""
        keys_, args = self._script_args(entry_id, instance, commands)
        reply = await with_retry(
            lambda: self.ctx.batcher.call(scripts.WORKFLOW_TASK_COMPLETE, keys_, args)
        )
        if reply[0] == "NEW_EVENTS":
            logger.info(
                "workflow task superseded: events arrived while it ran; running it again",
                extra={"fields": log_fields},
            )
            return WorkflowTaskOutcome.SUPERSEDED
        if reply[0] != "OK":
            logger.warning(
                "workflow task completion refused: the task is no longer current",
                extra={"fields": log_fields},
            )
            return None
        for command in commands:
            self._log_command(command, log_fields)
        if not instance.closed:
            self._remember(instance)
        elif commands:
            self._closed(instance, commands[-1], int(reply[2]))
        return WorkflowTaskOutcome.COMPLETED

    def _closed(self, instance: WorkflowInstance, last: Command, closed_ms: int) -> None:
        status = CLOSING_COMMANDS.get(type(last))
        if status is None:
            return
        seconds = (closed_ms - instance.started_ms) / 1000
        self.ctx.metrics.workflow_closed(instance.info.workflow_type, status, seconds)

    async def _fail(
        self,
        entry_id: str,
        workflow_id: str,
        run_id: str,
        exc: Exception,
        log_fields: dict[str, Any],
    ) -> None:
        keys = self.ctx.keys
        failure = failure_from_exception(exc)
        timer = Timer("wft_retry", workflow_id, run_id, 0, "", "", self.ctx.task_queue)
        reply = await with_retry(
            lambda: self.ctx.batcher.call(
                scripts.WORKFLOW_TASK_FAIL,
                [
                    keys.run(workflow_id, run_id),
                    keys.history(workflow_id, run_id),
                    keys.timers_for(workflow_id),
                ],
                [entry_id, self.ctx.identity, dumps(failure.to_dict()), timer.member()],
            )
        )
        delay = f"; retry in {int(reply[1]) / 1000:.0f} s" if reply[0] == "OK" else ""
        logger.error(
            "workflow task failed: %s: %s%s",
            failure.type,
            failure.message,
            delay,
            extra={"fields": log_fields},
        )

    def _script_args(
        self, entry_id: str, instance: WorkflowInstance, commands: list[Command]
    ) -> tuple[list[str], list[Any]]:
        keys, info = self.ctx.keys, instance.info
        wid, rid = info.workflow_id, info.run_id
        script_keys = _completion_keys(keys, info)
        args: list[Any] = [entry_id, self.ctx.identity, CONSUMER_GROUP]
        for command in commands:
            if isinstance(command, ScheduleActivity):
                queue = command.options.task_queue
                script_keys += [
                    keys.activity(wid, rid, command.seq),
                    keys.activity_tasks_for(queue, wid),
                ]
                args += _activity_args(command, info)
            elif isinstance(command, RequestCancelActivity):
                script_keys += [
                    keys.activity(wid, rid, command.seq),
                    keys.activity_tasks_for(command.task_queue, wid),
                ]
                args += ["cancel_activity", command.seq, dumps({"seq": command.seq})]
            elif isinstance(command, StartTimer | CancelTimer):
                args += _timer_args(command, info)
            elif isinstance(command, CancelWorkflow):
                args += ["cancel", b"{}"]
            elif isinstance(command, StartChildWorkflow):
                args += _child_args(command, info)
            elif isinstance(command, RecordMarker):
                args += ["marker", dumps({"patch_id": command.patch_id})]
            elif isinstance(command, ContinueAsNew):
                new_run = str(uuid.uuid4())
                script_keys += [keys.run(wid, new_run), keys.history(wid, new_run)]
                raw_input = orjson.Fragment(command.input_json)
                started = {
                    "workflow_type": info.workflow_type,
                    "task_queue": info.task_queue,
                    "input": raw_input,
                    "workflow_id": wid,
                    "run_id": new_run,
                    "continued_from": rid,
                }
                timeout = Timer("wf_timeout", wid, new_run, 0, "", "", info.task_queue)
                args += [
                    "continue",
                    new_run,
                    dumps({"new_run_id": new_run, "input": raw_input}),
                    dumps(started),
                    timeout.member(),
                ]
            elif isinstance(command, CompleteWorkflow):
                result = command.result_json
                args += ["complete", b'{"result":' + result + b"}", result]
            elif isinstance(command, FailWorkflow):
                failure = dumps(command.failure.to_dict())
                args += ["fail", b'{"failure":' + failure + b"}", failure]
        return script_keys, args

    def cached_runs(self) -> int:
        return len(self._cache)

    def _remember(self, instance: WorkflowInstance) -> None:
        self._cache[instance.info.run_id] = instance
        while len(self._cache) > self.max_cached:
            self._cache.popitem(last=False)

    def _log_command(self, command: Command, log_fields: dict[str, Any]) -> None:
        if isinstance(command, ScheduleActivity):
            fields = {**log_fields, "activity_type": command.activity_type, "seq": command.seq}
            logger.info("activity scheduled", extra={"fields": fields})
        elif isinstance(command, StartTimer):
            logger.info(
                "timer started (%.3f s)",
                command.duration_ms / 1000,
                extra={"fields": {**log_fields, "seq": command.seq}},
            )
        elif isinstance(command, CompleteWorkflow):
            logger.info("workflow completed", extra={"fields": log_fields})
        elif isinstance(command, CancelWorkflow):
            logger.info("workflow canceled", extra={"fields": log_fields})
        elif isinstance(command, ContinueAsNew):
            logger.info("workflow continued as new", extra={"fields": log_fields})
        elif isinstance(command, StartChildWorkflow):
            logger.info(
                "child workflow %s (%s) initiated",
                command.workflow_type,
                command.workflow_id,
                extra={"fields": log_fields},
            )
        elif isinstance(command, FailWorkflow):
            logger.info(
                "workflow failed: %s: %s",
                command.failure.type,
                command.failure.message,
                extra={"fields": log_fields},
            )


def _activity_args(command: ScheduleActivity, info: WorkflowInfo) -> list[Any]:
    options = command.options
    raw_input = orjson.Fragment(command.input_json)
    retry = options.retry_policy.to_wire()
    task = dumps(
        {
            "type": command.activity_type,
            "input": raw_input,
            "tq": options.task_queue,
            "wtq": info.task_queue,
            "wtype": info.workflow_type,
            "stc_ms": options.start_to_close_ms,
            "hb_ms": options.heartbeat_ms,
        }
    )
    attrs = dumps(
        {
            "seq": command.seq,
            "activity_type": command.activity_type,
            "task_queue": options.task_queue,
            "input": raw_input,
            "start_to_close_ms": options.start_to_close_ms,
            "schedule_to_close_ms": options.schedule_to_close_ms,
            "schedule_to_start_ms": options.schedule_to_start_ms,
            "heartbeat_ms": options.heartbeat_ms,
            "cancellation_type": options.cancellation_type.value,
            "retry_policy": retry,
        }
    )
    wid, rid, seq = info.workflow_id, info.run_id, command.seq
    s2c_timer = Timer("s2c", wid, rid, seq, "", options.task_queue, info.task_queue)
    s2s_timer = Timer("s2s", wid, rid, seq, "", options.task_queue, info.task_queue)
    return [
        "activity",
        seq,
        task,
        dumps(retry),
        options.schedule_to_close_ms,
        s2c_timer.member(),
        options.schedule_to_start_ms,
        s2s_timer.member(),
        attrs,
    ]


def _timer_args(command: StartTimer | CancelTimer, info: WorkflowInfo) -> list[Any]:
    member = Timer(
        "timer", info.workflow_id, info.run_id, command.seq, "", "", info.task_queue
    ).member()
    if isinstance(command, StartTimer):
        return ["timer", command.seq, command.duration_ms, member]
    return ["cancel_timer", command.seq, member]


def _child_args(command: StartChildWorkflow, info: WorkflowInfo) -> list[Any]:
    # The child's run id is fixed here so that starting it is idempotent.
    run_id = str(uuid.uuid4())
    raw_input = orjson.Fragment(command.input_json)
    state = {
        "workflow_id": command.workflow_id,
        "run_id": run_id,
        "workflow_type": command.workflow_type,
        "task_queue": command.task_queue,
        "input": raw_input,
        "policy": command.parent_close_policy,
        "status": "initiated",
    }
    attrs = {
        "seq": command.seq,
        "workflow_id": command.workflow_id,
        "workflow_type": command.workflow_type,
        "task_queue": command.task_queue,
        "input": raw_input,
        "parent_close_policy": command.parent_close_policy,
    }
    timer = Timer(
        "child_start",
        info.workflow_id,
        info.run_id,
        command.seq,
        run_id,
        command.task_queue,
        info.task_queue,
    )
    return ["child", command.seq, dumps(state), dumps(attrs), timer.member()]


# Statuses a workflow task completion can close a run with, in its script's KEYS order.
CLOSING_STATUSES = ("COMPLETED", "FAILED", "CANCELED", "CONTINUED_AS_NEW")
CLOSING_COMMANDS: dict[type[Command], str] = {
    CompleteWorkflow: "COMPLETED",
    FailWorkflow: "FAILED",
    CancelWorkflow: "CANCELED",
    ContinueAsNew: "CONTINUED_AS_NEW",
}


def _type_of(events: list[history.Event]) -> str:
    """The run's type, from its first event (a task of a run not cached reads them all)."""
    if events and events[0]["type"] == history.WORKFLOW_EXECUTION_STARTED:
        return str(events[0]["attrs"]["workflow_type"])
    return ""


def _completion_keys(keys: Keys, info: WorkflowInfo) -> list[str]:
    """The fixed KEYS of a workflow task completion (see workflow_task_complete.lua)."""
    wid, rid, shard = info.workflow_id, info.run_id, keys.shard_of(info.workflow_id)
    return [
        keys.run(wid, rid),
        keys.history(wid, rid),
        keys.workflow_tasks(info.task_queue, shard),
        keys.timers(shard),
        keys.workflow(wid),
        keys.children(wid, rid),
        *keys.visibility(shard),
        keys.visibility_by_type(shard, info.workflow_type),
        keys.visibility_by_queue(shard, info.task_queue),
        *(keys.visibility_by_status(shard, status) for status in CLOSING_STATUSES),
        keys.stats(shard),
    ]
