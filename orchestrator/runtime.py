"""Deterministic execution of workflow code from its history.

A :class:`WorkflowInstance` holds one run's workflow code, suspended between
activations. It is fed history events in order; each completed workflow task in
the history is one activation: the input events that existed when that task
started are delivered (resolving the futures the code awaits), the code runs
until every coroutine is blocked, and the commands it issued are matched
against the command events the task recorded. The last, live activation's
commands are returned to be recorded. A worker may keep an instance between
tasks and feed it only the new events; replay and live execution are the same
code path, so a cached instance and a rebuilt one cannot drift apart.

Workflow code runs on :class:`_WorkflowLoop`, an asyncio event loop with no
I/O and no clock of its own: time stands still during an activation at the
time the workflow task started, ``asyncio.gather`` and tasks work as usual, and
every timer (``asyncio.sleep``, ``asyncio.wait_for``, ``asyncio.timeout``) is a
durable timer recorded in the history and fired by Redis.
"""

from __future__ import annotations

import asyncio
import asyncio.events
import inspect
import logging
import random
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import history
from .commands import (
    ActivityCancellationType,
    ActivityOptions,
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
    describe_event,
)
from .converter import convert_args, dumps, failure_from_exception, param_types, to_type
from .errors import (
    ActivityError,
    ChildWorkflowError,
    ContinueAsNewError,
    Failure,
    NonDeterminismError,
    OrchestratorError,
    QueryError,
    WorkflowTaskError,
)

if TYPE_CHECKING:
    from .workflow import WorkflowDefinition, WorkflowInfo

logger = logging.getLogger(__name__)

CHILD_EVENTS = frozenset(
    {
        history.CHILD_WORKFLOW_EXECUTION_STARTED,
        history.CHILD_WORKFLOW_EXECUTION_COMPLETED,
        history.CHILD_WORKFLOW_EXECUTION_FAILED,
        history.START_CHILD_WORKFLOW_EXECUTION_FAILED,
    }
)


@dataclass(slots=True)
class _PendingActivity:
    """An activity the code scheduled whose outcome is not yet in the history."""

    future: asyncio.Future[Any]
    activity_type: str
    result_type: Any


@dataclass(slots=True)
class _PendingChild:
    """A child workflow the code started whose outcome is not yet in the history."""

    workflow_type: str
    workflow_id: str
    started: asyncio.Future[str]
    result: asyncio.Future[Any]
    result_type: Any


class ActivityFuture(asyncio.Future[Any]):
    """A scheduled activity's outcome. Cancelling it cancels the activity.

    How depends on the activity's cancellation type: ask the activity to stop and
    resolve as cancelled at once (``TRY_CANCEL``); ask it to stop and stay pending
    until it has (``WAIT_CANCELLATION_COMPLETED``: a task awaiting this future
    then sees its ``CancelledError`` only once the activity's end is recorded);
    or resolve as cancelled and let the activity run on (``ABANDON``).
    """

    def __init__(self, instance: WorkflowInstance, seq: int, options: ActivityOptions) -> None:
        super().__init__(loop=instance.loop)
        self._instance = instance
        self._seq = seq
        self._options = options
        self._cancel_requested = False

    def cancel(self, msg: Any = None) -> bool:
        if self.done():
            return False
        cancellation = self._options.cancellation_type
        if cancellation is not ActivityCancellationType.ABANDON and not self._cancel_requested:
            self._cancel_requested = True
            self._instance.request_cancel_activity(self._seq, self._options.task_queue)
        if cancellation is ActivityCancellationType.WAIT_CANCELLATION_COMPLETED:
            return False
        return super().cancel(msg)


class ChildWorkflowHandle:
    """A started child workflow: its ids, and its result when awaited."""

    def __init__(self, workflow_id: str, run_id: str, result: asyncio.Future[Any]) -> None:
        self.id = workflow_id
        self.run_id = run_id
        self._result = result

    def __await__(self) -> Any:
        return self._result.__await__()

    async def result(self) -> Any:
        return await self._result


class _WorkflowLoop(asyncio.AbstractEventLoop):
    """An event loop that only runs ready callbacks, never blocks and never reads a clock."""

    def __init__(self, instance: WorkflowInstance) -> None:
        self.instance = instance
        self._ready: deque[asyncio.Handle] = deque()

    def call_soon(
        self, callback: Callable[..., object], *args: Any, context: Any = None
    ) -> asyncio.Handle:
        handle = asyncio.Handle(callback, args, self, context)
        self._ready.append(handle)
        return handle

    def call_later(
        self, delay: float, callback: Callable[..., object], *args: Any, context: Any = None
    ) -> asyncio.TimerHandle:
        return self.call_at(self.time() + delay, callback, *args, context=context)

    def call_at(
        self, when: float, callback: Callable[..., object], *args: Any, context: Any = None
    ) -> asyncio.TimerHandle:
        """A durable timer: ``asyncio.sleep`` and asyncio timeouts survive worker restarts."""
        handle = asyncio.TimerHandle(when, callback, args, self, context)
        delay = when - self.time()
        if delay <= 0:
            self._ready.append(handle)
        else:
            self.instance.start_timer(handle, delay)
        return handle

    def _timer_handle_cancelled(self, handle: asyncio.TimerHandle) -> None:
        self.instance.cancel_timer(handle)

    def create_future(self) -> asyncio.Future[Any]:
        return asyncio.Future(loop=self)

    def create_task(
        self, coro: Coroutine[Any, Any, Any], *, name: str | None = None, context: Any = None
    ) -> asyncio.Task[Any]:
        return asyncio.Task(coro, loop=self, name=name, context=context)

    def time(self) -> float:
        return self.instance.now_ms / 1000

    def get_debug(self) -> bool:
        return False

    def is_running(self) -> bool:
        return True

    def is_closed(self) -> bool:
        return False

    def call_exception_handler(self, context: dict[str, Any]) -> None:
        logger.debug("unhandled error in workflow code: %s", context.get("message"))

    def run_until_blocked(self) -> None:
        """Run ready callbacks until none is left: every coroutine then awaits an event."""
        outer = asyncio.events._get_running_loop()
        asyncio.events._set_running_loop(self)
        try:
            while self._ready:
                while self._ready:
                    handle = self._ready.popleft()
                    if not handle.cancelled():
                        handle._run()
                self.instance.check_conditions()
        finally:
            asyncio.events._set_running_loop(outer)


class WorkflowInstance:
    """One workflow run's code and state, advanced by feeding it history events."""

    def __init__(self, definition: WorkflowDefinition, info: WorkflowInfo) -> None:
        self.definition = definition
        self.info = info
        self.loop = _WorkflowLoop(self)
        self.random = random.Random(info.run_id)
        self.now_ms = 0
        self.started_ms = 0  # when the run started (Redis time), for its end-to-end latency
        self.replaying = True
        self.last_event_id = 0
        self._next_seq = 1
        self._pending: dict[int, _PendingActivity] = {}
        self._next_timer_seq = 1
        self._next_child_seq = 1
        self._children: dict[int, _PendingChild] = {}
        self._timers: dict[int, asyncio.TimerHandle] = {}
        self._timer_seqs: dict[int, int] = {}  # id(handle) -> seq: TimerHandle is unhashable
        self._conditions: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []
        self._signal_handlers: dict[str, Callable[..., Any]] = {}
        self._query_handlers: dict[str, Callable[..., Any]] = {}
        self._signal_buffer: dict[str, list[list[Any]]] = {}
        self._handler_failure: BaseException | None = None
        self._recorded_patches: set[str] = set()
        self._patches: dict[str, bool] = {}
        self._commands: list[Command] = []
        self._unmatched: deque[Command] = deque()
        self._inputs: list[history.Event] = []
        self._mark: int | None = None
        self._mark_ts = 0
        self._ran_ahead: list[Command] | None = None
        self._main: asyncio.Task[Any] | None = None
        self._closed = False

    # -- feeding history ---------------------------------------------------------

    def apply(self, events: list[history.Event]) -> list[Command]:
        """Replay ``events`` (which end with the live task's start) and run the live activation.

        Returns the commands to record. Raises :class:`NonDeterminismError` when the
        code no longer issues what the history recorded.
        """
        self._note_patches(events)
        for event in events:
            self._on_event(event)
        if self._mark is None:
            raise WorkflowTaskError("history does not end with a started workflow task")
        self._check_all_matched(None)
        return self._activate(live=True)

    def replay(self, events: list[history.Event]) -> None:
        """Replay a whole history (no live activation), checking it against the code."""
        self._note_patches(events)
        for event in events:
            self._on_event(event)
        self._check_all_matched(None)

    def catch_up(self) -> None:
        """Deliver input events no workflow task has processed yet (a throwaway activation).

        Used to answer a query against the latest state, signals included; the
        commands it issues are discarded, so only an instance about to be thrown
        away may be caught up.
        """
        if self._inputs and not self._closed:
            self._mark, self._mark_ts = len(self._inputs), self.now_ms
            self._activate(live=False)
            self._ran_ahead = None

    def _on_event(self, event: history.Event) -> None:
        if event["id"] != self.last_event_id + 1:
            raise WorkflowTaskError(
                f"history gap: expected event {self.last_event_id + 1}, got {event['id']}"
            )
        self.last_event_id = event["id"]
        kind = event["type"]
        if kind in history.COMMAND_EVENTS:
            self._match(event)
            return
        self._check_all_matched(event)
        self.now_ms = max(self.now_ms, event["ts"])
        if kind == history.WORKFLOW_TASK_STARTED:
            self._mark, self._mark_ts = len(self._inputs), event["ts"]
        elif kind == history.WORKFLOW_TASK_COMPLETED:
            self._on_task_completed()
        elif kind in (history.WORKFLOW_TASK_FAILED, history.WORKFLOW_TASK_TIMED_OUT):
            self._mark = None
        elif kind in history.INPUT_EVENTS:
            self._inputs.append(event)

    def _on_task_completed(self) -> None:
        if self._ran_ahead is not None:
            # This worker ran the activation live; its commands are recorded next.
            self._unmatched, self._ran_ahead = deque(self._ran_ahead), None
        elif self._mark is None:
            raise WorkflowTaskError("history has a completed workflow task that never started")
        else:
            self._unmatched = deque(self._activate(live=False))

    def _match(self, event: history.Event) -> None:
        if not self._unmatched:
            raise NonDeterminismError(
                f"{self._where()}: history event {event['id']} is {describe_event(event)}, "
                "but the workflow code no longer issues it"
            )
        command = self._unmatched.popleft()
        if not command.matches(event):
            raise NonDeterminismError(
                f"{self._where()}: history event {event['id']} is {describe_event(event)}, "
                f"but the workflow code issued {command.describe()}"
            )

    def _check_all_matched(self, next_event: history.Event | None) -> None:
        if self._unmatched:
            command = self._unmatched[0]
            after = f"event {next_event['id']} ({next_event['type']})" if next_event else "its end"
            raise NonDeterminismError(
                f"{self._where()}: the workflow code issued {command.describe()}, "
                f"but history has {after} there instead"
            )

    def _where(self) -> str:
        return f"workflow {self.info.workflow_type!r} (id {self.info.workflow_id!r})"

    # -- one activation ------------------------------------------------------------

    def _activate(self, *, live: bool) -> list[Command]:
        assert self._mark is not None
        inputs, self._inputs = self._inputs[: self._mark], self._inputs[self._mark :]
        self._mark = None
        self.now_ms, self.replaying = self._mark_ts, not live
        for event in inputs:
            self._deliver(event)
        self.loop.run_until_blocked()
        self._finish_if_done()
        commands, self._commands = self._commands, []
        if live:
            self._ran_ahead = commands
        return commands

    def _deliver(self, event: history.Event) -> None:
        kind, attrs = event["type"], event["attrs"]
        if kind == history.WORKFLOW_EXECUTION_STARTED:
            self._main = self.loop.create_task(self._run_main(attrs.get("input") or []))
            return
        if kind == history.WORKFLOW_EXECUTION_SIGNALED:
            self._on_signal(attrs["name"], attrs.get("input") or [])
            return
        if kind == history.WORKFLOW_EXECUTION_CANCEL_REQUESTED:
            if self._main is not None and not self._main.done():
                self._main.cancel()
            return
        seq = attrs["seq"]
        if kind == history.TIMER_FIRED:
            self._fire_timer(seq)
            return
        if kind in CHILD_EVENTS:
            self._resolve_child(kind, seq, attrs)
            return
        try:
            pending = self._pending.pop(seq)
        except KeyError:
            raise NonDeterminismError(
                f"{self._where()}: history resolves activity seq {seq}, "
                "which the workflow code did not schedule"
            ) from None
        future = pending.future
        if future.done():
            return
        if kind == history.ACTIVITY_TASK_COMPLETED:
            future.set_result(to_type(attrs.get("result"), pending.result_type))
            return
        failure = attrs.get("failure") or {
            "type": "CancelledError",
            "message": "activity canceled",
            "attempt": attrs["attempt"],
        }
        future.set_exception(ActivityError(pending.activity_type, seq, Failure.from_dict(failure)))

    async def _run_main(self, raw_args: list[Any]) -> Any:
        # Called inside the task, so wrong arguments fail the run like any error of its code.
        return await self.definition.fn(*convert_args(raw_args, self.definition.arg_types))

    def _resolve_child(self, kind: str, seq: int, attrs: dict[str, Any]) -> None:
        child = self._children.get(seq)
        if child is None:
            raise NonDeterminismError(
                f"{self._where()}: history resolves child workflow seq {seq}, "
                "which the workflow code did not start"
            )
        if kind == history.CHILD_WORKFLOW_EXECUTION_STARTED:
            if not child.started.done():
                child.started.set_result(attrs["run_id"])
            return
        del self._children[seq]
        if kind == history.CHILD_WORKFLOW_EXECUTION_COMPLETED:
            if not child.result.done():
                child.result.set_result(to_type(attrs.get("result"), child.result_type))
            return
        if kind == history.START_CHILD_WORKFLOW_EXECUTION_FAILED:
            error = ChildWorkflowError(
                child.workflow_type,
                child.workflow_id,
                "NOT_STARTED",
                Failure("ChildWorkflowStartFailed", attrs.get("cause", "")),
            )
            for future in (child.started, child.result):
                if not future.done():
                    future.set_exception(error)
            return
        failure = Failure.from_dict(attrs.get("failure") or {})
        if not child.result.done():
            child.result.set_exception(
                ChildWorkflowError(
                    child.workflow_type, child.workflow_id, attrs.get("status", "FAILED"), failure
                )
            )

    def _finish_if_done(self) -> None:
        main = self._main
        if self._closed or main is None or not (main.done() or self._handler_failure):
            return
        self._closed = True
        if main.cancelled() and not self._handler_failure:
            self._commands.append(CancelWorkflow())
            return
        exc = self._handler_failure or main.exception()
        if isinstance(exc, WorkflowTaskError | NonDeterminismError):
            raise exc
        if isinstance(exc, ContinueAsNewError):
            self._commands.append(ContinueAsNew(dumps(exc.input)))
            return
        if exc is None:
            try:
                self._commands.append(CompleteWorkflow(dumps(main.result())))
                return
            except OrchestratorError as err:
                exc = err
        self._commands.append(FailWorkflow(failure_from_exception(exc)))

    # -- called by workflow code (through orchestrator.workflow) ----------------------

    def start_activity(
        self, activity_type: str, args: list[Any], options: ActivityOptions, result_type: Any
    ) -> ActivityFuture:
        seq, self._next_seq = self._next_seq, self._next_seq + 1
        future = ActivityFuture(self, seq, options)
        self._pending[seq] = _PendingActivity(future, activity_type, result_type)
        self._commands.append(ScheduleActivity(seq, activity_type, dumps(args), options))
        return future

    def request_cancel_activity(self, seq: int, task_queue: str) -> None:
        self._commands.append(RequestCancelActivity(seq, task_queue))

    def _note_patches(self, events: list[history.Event]) -> None:
        for event in events:
            if event["type"] == history.MARKER_RECORDED:
                self._recorded_patches.add(event["attrs"].get("patch_id", ""))

    def patched(self, patch_id: str) -> bool:
        """True where the run takes the new branch of ``patch_id``; see ``workflow.patched``."""
        if patch_id not in self._patches:
            taken = not self.replaying or patch_id in self._recorded_patches
            self._patches[patch_id] = taken
            if taken:
                self._commands.append(RecordMarker(patch_id))
        return self._patches[patch_id]

    def set_signal_handler(self, name: str, handler: Callable[..., Any]) -> None:
        """Register a handler; signals that arrived before it are delivered now, in order."""
        self._signal_handlers[name] = handler
        for args in self._signal_buffer.pop(name, []):
            self._run_handler(handler, args)

    def set_query_handler(self, name: str, handler: Callable[..., Any]) -> None:
        self._query_handlers[name] = handler

    def query(self, name: str, args: list[Any]) -> Any:
        """Answer a query from the code's current state, without changing it."""
        handler = self._query_handlers.get(name)
        if handler is None:
            raise QueryError(
                f"{self._where()} has no query handler {name!r} "
                f"(known: {sorted(self._query_handlers)})"
            )
        before = len(self._commands)
        outer = asyncio.events._get_running_loop()
        asyncio.events._set_running_loop(self.loop)
        try:
            result = handler(*convert_args(args, param_types(handler)[0]))
        finally:
            asyncio.events._set_running_loop(outer)
        if inspect.isawaitable(result) or len(self._commands) != before:
            raise QueryError(f"query handler {name!r} must be a plain function that only reads")
        return result

    def _on_signal(self, name: str, args: list[Any]) -> None:
        handler = self._signal_handlers.get(name)
        if handler is None:
            self._signal_buffer.setdefault(name, []).append(args)
        else:
            self._run_handler(handler, args)

    def _run_handler(self, handler: Callable[..., Any], args: list[Any]) -> None:
        """Run a signal handler as a task of the workflow; if it raises, the workflow fails."""
        arg_types, _ = param_types(handler)

        async def call() -> None:
            result = handler(*convert_args(args, arg_types))
            if inspect.isawaitable(result):
                await result

        task = self.loop.create_task(call())
        task.add_done_callback(self._handler_done)

    def _handler_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None and not self._handler_failure:
            self._handler_failure = task.exception()

    async def start_child(
        self,
        workflow_type: str,
        args: list[Any],
        workflow_id: str,
        task_queue: str,
        parent_close_policy: str,
        result_type: Any,
    ) -> ChildWorkflowHandle:
        seq, self._next_child_seq = self._next_child_seq, self._next_child_seq + 1
        child = _PendingChild(
            workflow_type,
            workflow_id,
            self.loop.create_future(),
            self.loop.create_future(),
            result_type,
        )
        self._children[seq] = child
        self._commands.append(
            StartChildWorkflow(
                seq, workflow_type, dumps(args), workflow_id, task_queue, parent_close_policy
            )
        )
        run_id = await child.started
        return ChildWorkflowHandle(workflow_id, run_id, child.result)

    def start_timer(self, handle: asyncio.TimerHandle, delay: float) -> None:
        seq, self._next_timer_seq = self._next_timer_seq, self._next_timer_seq + 1
        self._timers[seq] = handle
        self._timer_seqs[id(handle)] = seq
        self._commands.append(StartTimer(seq, max(1, round(delay * 1000))))

    def cancel_timer(self, handle: asyncio.TimerHandle) -> None:
        seq = self._timer_seqs.pop(id(handle), None)
        if seq is not None:
            del self._timers[seq]
            self._commands.append(CancelTimer(seq))

    def _fire_timer(self, seq: int) -> None:
        handle = self._timers.pop(seq, None)
        if handle is None:
            return  # cancelled after it fired: the code no longer waits for it
        del self._timer_seqs[id(handle)]
        self.loop._ready.append(handle)

    def wait_condition(self, check: Callable[[], bool]) -> asyncio.Future[None]:
        future: asyncio.Future[None] = self.loop.create_future()
        self._conditions.append((check, future))
        return future

    def check_conditions(self) -> None:
        """Resolve the futures of conditions that became true; checked whenever code is idle."""
        waiting = []
        for check, future in self._conditions:
            if future.done():
                continue
            if check():
                future.set_result(None)
            else:
                waiting.append((check, future))
        self._conditions = waiting

    @property
    def closed(self) -> bool:
        return self._closed
