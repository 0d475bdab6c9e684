"""Workflows: ``async def`` code that orchestrates activities, durably.

Workflow code must be deterministic: given the same history it must issue the
same commands. Use this module's :func:`now`, :func:`random` and :func:`uuid4`
instead of the clock and ``random``; do I/O only in activities.

    @workflow.defn(name="Greeting")
    async def greeting(name: str) -> str:
        return await workflow.execute_activity(
            say_hello, name, start_to_close_timeout=timedelta(seconds=10)
        )
"""

from __future__ import annotations

import asyncio
import logging
import random as _random
import uuid
from collections.abc import Callable, Coroutine, MutableMapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar, overload

from .activity import ActivityDefinition
from .commands import ActivityCancellationType, ActivityOptions
from .converter import param_types
from .errors import ConfigurationError, ContinueAsNewError
from .retry import RetryPolicy, to_seconds

if TYPE_CHECKING:
    from .runtime import ActivityFuture, ChildWorkflowHandle, WorkflowInstance

F = TypeVar("F", bound=Callable[..., Coroutine[Any, Any, Any]])


@dataclass(frozen=True, slots=True)
class WorkflowDefinition:
    name: str
    fn: Callable[..., Coroutine[Any, Any, Any]]
    arg_types: list[Any]
    result_type: Any

    @classmethod
    def of(cls, fn: Callable[..., Any], name: str | None = None) -> WorkflowDefinition:
        existing = getattr(fn, "__workflow_definition__", None)
        if isinstance(existing, WorkflowDefinition) and name in (None, existing.name):
            return existing
        if not asyncio.iscoroutinefunction(fn):
            raise ConfigurationError(f"workflow {fn!r} must be an async def function")
        arg_types, result_type = param_types(fn)
        return cls(name or fn.__name__, fn, arg_types, result_type)


@overload
def defn(fn: F) -> F: ...
@overload
def defn(*, name: str | None = None) -> Callable[[F], F]: ...


def defn(fn: F | None = None, *, name: str | None = None) -> F | Callable[[F], F]:
    """Mark an ``async def`` function as a workflow, registered under ``name``."""

    def mark(f: F) -> F:
        f.__workflow_definition__ = WorkflowDefinition.of(f, name)  # type: ignore[attr-defined]
        return f

    return mark(fn) if fn is not None else mark


@dataclass(frozen=True, slots=True)
class WorkflowInfo:
    """The running workflow's identity; read it with :func:`info`."""

    namespace: str
    workflow_id: str
    run_id: str
    workflow_type: str
    task_queue: str


def _instance() -> WorkflowInstance:
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    instance = getattr(loop, "instance", None)
    if instance is None:
        raise ConfigurationError("this function can only be called from workflow code")
    return instance


def info() -> WorkflowInfo:
    return _instance().info


def now() -> datetime:
    """The workflow's current time: when its current workflow task started (UTC)."""
    return datetime.fromtimestamp(_instance().now_ms / 1000, tz=UTC)


def random() -> _random.Random:
    """A random generator seeded by the run, so replay draws the same numbers."""
    return _instance().random


def uuid4() -> uuid.UUID:
    """A random UUID that replay reproduces."""
    return uuid.UUID(int=_instance().random.getrandbits(128), version=4)


def is_replaying() -> bool:
    return _instance().replaying


def set_signal_handler(name: str, handler: Callable[..., Any]) -> None:
    """Run ``handler(*args)`` (sync or async) for each signal ``name`` sent to this run.

    Signals that arrived before the handler was set are delivered to it at once, in order.
    """
    _instance().set_signal_handler(name, handler)


PARENT_CLOSE_POLICIES = ("terminate", "request_cancel", "abandon")


async def start_child_workflow(
    workflow: Callable[..., Any] | str,
    *args: Any,
    id: str | None = None,
    task_queue: str | None = None,
    parent_close_policy: str = "terminate",
    result_type: Any = None,
) -> ChildWorkflowHandle:
    """Start a child workflow and wait until it has started; await the handle for its result.

    ``id`` defaults to a fresh deterministic UUID; ``task_queue`` to this workflow's.
    When this run closes first, ``parent_close_policy`` decides the child's fate:
    ``"terminate"`` (default), ``"request_cancel"`` or ``"abandon"``. A child that
    does not complete raises :class:`ChildWorkflowError` where it is awaited.
    """
    instance = _instance()
    if isinstance(workflow, str):
        name = workflow
    else:
        definition = WorkflowDefinition.of(workflow)
        name = definition.name
        result_type = result_type if result_type is not None else definition.result_type
    if parent_close_policy not in PARENT_CLOSE_POLICIES:
        raise ConfigurationError(
            f"parent_close_policy must be one of {', '.join(PARENT_CLOSE_POLICIES)}"
        )
    if task_queue is not None and not task_queue:
        raise ConfigurationError("task_queue must not be empty")
    return await instance.start_child(
        name,
        list(args),
        id or str(uuid4()),
        task_queue or instance.info.task_queue,
        parent_close_policy,
        result_type,
    )


async def execute_child_workflow(
    workflow: Callable[..., Any] | str, *args: Any, **options: Any
) -> Any:
    """Start a child workflow and wait for its result (see :func:`start_child_workflow`)."""
    handle = await start_child_workflow(workflow, *args, **options)
    return await handle


def set_query_handler(name: str, handler: Callable[..., Any]) -> None:
    """Answer query ``name`` with ``handler(*args)``: a plain function that only reads state."""
    _instance().set_query_handler(name, handler)


def continue_as_new(*args: Any) -> NoReturn:
    """End this run and start a new run of the same workflow with ``args`` and a fresh history.

    Raises :class:`ContinueAsNewError`; let it propagate out of the workflow function.
    """
    _instance()
    raise ContinueAsNewError(list(args))


def patched(patch_id: str) -> bool:
    """Branch on a code change without breaking runs that started before it.

    Returns True for runs that reach this point under the new code (recording a
    marker in their history) and False for runs replaying a history recorded
    before the change, so each keeps the path it took::

        if workflow.patched("send-receipt"):
            await workflow.execute_activity(send_receipt, ...)
    """
    return _instance().patched(patch_id)


async def sleep(duration: timedelta | float) -> None:
    """Sleep durably: a timer recorded in the history survives worker and Redis restarts.

    Same as ``asyncio.sleep`` inside workflow code, which is durable too.
    """
    seconds = to_seconds(duration, "duration") or 0.0
    _instance()
    await asyncio.sleep(seconds)


async def wait_condition(
    check: Callable[[], bool],
    *,
    timeout: timedelta | float | None = None,  # noqa: ASYNC109 - Temporal's name; durable
) -> None:
    """Wait until ``check()`` is true (checked whenever the workflow's code is idle).

    With ``timeout``, raises ``TimeoutError`` if the condition stays false that long.
    """
    future = _instance().wait_condition(check)
    seconds = to_seconds(timeout, "timeout")
    if seconds is None:
        await future
    else:
        await asyncio.wait_for(future, seconds)


def start_activity(
    activity: Callable[..., Any] | str,
    *args: Any,
    task_queue: str | None = None,
    start_to_close_timeout: timedelta | float | None = None,
    schedule_to_close_timeout: timedelta | float | None = None,
    schedule_to_start_timeout: timedelta | float | None = None,
    heartbeat_timeout: timedelta | float | None = None,
    retry_policy: RetryPolicy | None = None,
    cancellation_type: ActivityCancellationType = ActivityCancellationType.TRY_CANCEL,
    result_type: Any = None,
) -> ActivityFuture:
    """Schedule an activity and return its handle at once; await it for the result.

    At least one of ``start_to_close_timeout`` (one attempt) and
    ``schedule_to_close_timeout`` (all attempts together) is required; the first
    defaults to the second. ``schedule_to_start_timeout`` bounds the wait for a
    worker to take an attempt; ``heartbeat_timeout`` fails an attempt whose worker
    stopped heartbeating. ``task_queue`` defaults to the workflow's. Cancelling the
    handle cancels the activity as ``cancellation_type`` says.
    """
    instance = _instance()
    if isinstance(activity, str):
        name = activity
    else:
        definition = ActivityDefinition.of(activity)
        name = definition.name
        result_type = result_type if result_type is not None else definition.result_type
    stc = to_seconds(start_to_close_timeout, "start_to_close_timeout")
    s2c = to_seconds(schedule_to_close_timeout, "schedule_to_close_timeout")
    if not stc and not s2c:
        raise ConfigurationError(
            "an activity needs start_to_close_timeout or schedule_to_close_timeout"
        )
    if task_queue is not None and not task_queue:
        raise ConfigurationError("task_queue must not be empty")
    options = ActivityOptions(
        task_queue=task_queue or instance.info.task_queue,
        start_to_close_ms=_ms(stc or s2c),
        schedule_to_close_ms=_ms(s2c),
        retry_policy=retry_policy or RetryPolicy(),
        schedule_to_start_ms=_ms(to_seconds(schedule_to_start_timeout, "schedule_to_start")),
        heartbeat_ms=_ms(to_seconds(heartbeat_timeout, "heartbeat_timeout")),
        cancellation_type=cancellation_type,
    )
    return instance.start_activity(name, list(args), options, result_type)


def _ms(seconds: float | None) -> int:
    return int((seconds or 0) * 1000)


async def execute_activity(activity: Callable[..., Any] | str, *args: Any, **options: Any) -> Any:
    """Run an activity and wait for its result; takes the options of :func:`start_activity`."""
    return await start_activity(activity, *args, **options)


class _ReplaySafeLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """Logs from workflow code, silent while replaying so each line appears once."""

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        try:
            instance = _instance()
        except ConfigurationError:
            instance = None
        if instance is not None and instance.replaying:
            return
        super().log(level, msg, *args, **kwargs)

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, Any]:
        try:
            i = _instance().info
        except ConfigurationError:
            return msg, kwargs
        return f"{msg} [workflow_id={i.workflow_id} run_id={i.run_id}]", kwargs


logger = _ReplaySafeLogger(logging.getLogger("orchestrator.workflow.user"), {})
