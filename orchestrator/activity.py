"""Activities: plain functions, ``def`` or ``async def``, that do the real work.

Register one with :func:`defn` (or pass it to a worker as it is). Inside an
activity, :func:`info` tells which workflow and attempt it serves.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NoReturn, TypeVar, overload

from .converter import param_types
from .errors import ConfigurationError

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class ActivityDefinition:
    name: str
    fn: Callable[..., Any]
    is_async: bool
    arg_types: list[Any]
    result_type: Any

    @classmethod
    def of(cls, fn: Callable[..., Any], name: str | None = None) -> ActivityDefinition:
        existing = getattr(fn, "__activity_definition__", None)
        if isinstance(existing, ActivityDefinition) and name in (None, existing.name):
            return existing
        if not callable(fn):
            raise ConfigurationError(f"activity {fn!r} is not callable")
        arg_types, result_type = param_types(fn)
        return cls(
            name=name or getattr(fn, "__name__", repr(fn)),
            fn=fn,
            is_async=inspect.iscoroutinefunction(fn),
            arg_types=arg_types,
            result_type=result_type,
        )


@overload
def defn(fn: F) -> F: ...
@overload
def defn(*, name: str | None = None) -> Callable[[F], F]: ...


def defn(fn: F | None = None, *, name: str | None = None) -> F | Callable[[F], F]:
    """Mark a function as an activity, registered under ``name`` (default: its own name)."""

    def mark(f: F) -> F:
        f.__activity_definition__ = ActivityDefinition.of(f, name)  # type: ignore[attr-defined]
        return f

    return mark(fn) if fn is not None else mark


@dataclass(frozen=True, slots=True)
class ActivityInfo:
    """What an activity attempt serves; read it with :func:`info`."""

    activity_type: str
    namespace: str
    task_queue: str
    workflow_id: str
    run_id: str
    workflow_type: str
    seq: int
    attempt: int
    scheduled_time_ms: int
    started_time_ms: int
    start_to_close_timeout: float
    heartbeat_timeout: float = 0.0
    heartbeat_details: list[Any] = field(default_factory=list)
    """What the last attempt's last heartbeat reported, to resume from."""
    attempt_id: str = ""
    """The attempt's identity: the stream entry id of its task."""
    workflow_task_queue: str = ""

    @property
    def task_token(self) -> str:
        """Completes this attempt from elsewhere after ``raise_complete_async()``."""
        from .task_token import TaskToken  # only activities that complete async need it

        return TaskToken(
            self.namespace,
            self.workflow_id,
            self.run_id,
            self.seq,
            self.attempt_id,
            self.task_queue,
            self.workflow_task_queue,
        ).encode()


class AttemptContext:
    """The running attempt's side of heartbeats and cancellation.

    ``heartbeat`` may be called from the worker's event loop (async activities) or
    from a pool thread (sync ones); the worker's sender reads the latest details.
    """

    def __init__(self, info: ActivityInfo, loop: asyncio.AbstractEventLoop) -> None:
        self.info = info
        self.loop = loop
        self.details: list[Any] | None = None
        self.cancel_requested = False
        self.beat = asyncio.Event()
        # Called on the loop at the first heartbeat: most activities never
        # heartbeat, and they should not pay for a sender.
        self.on_first_beat: Callable[[], None] = lambda: None
        self._beating = False
        self._lock = threading.Lock()

    def record(self, details: list[Any]) -> None:
        with self._lock:
            self.details = details
            first, self._beating = not self._beating, True
        if self.cancel_requested:
            raise asyncio.CancelledError("the activity's cancellation was requested")
        notify = self._first_beat if first else self.beat.set
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            notify()
        else:
            self.loop.call_soon_threadsafe(notify)

    def _first_beat(self) -> None:
        self.on_first_beat()
        self.beat.set()

    def take_details(self) -> list[Any] | None:
        with self._lock:
            return self.details


_current: contextvars.ContextVar[AttemptContext] = contextvars.ContextVar("activity_attempt")


def _context() -> AttemptContext:
    try:
        return _current.get()
    except LookupError:
        raise ConfigurationError("this function can only be called from an activity") from None


def info() -> ActivityInfo:
    """The running activity's info; raises outside an activity."""
    return _context().info


def heartbeat(*details: Any) -> None:
    """Report progress; ``details`` (JSON values) reach the next attempt if this one fails.

    Heartbeats are throttled before they reach Redis. Raises ``asyncio.CancelledError``
    once the workflow has asked the activity to stop.
    """
    _context().record(list(details))


class CompleteAsyncError(BaseException):
    """Raised by :func:`raise_complete_async`; the worker then leaves the attempt open."""


def raise_complete_async() -> NoReturn:
    """End this call without a result: the attempt is completed later through its task token.

    The attempt stays open until then, still bound by its start-to-close timeout.
    """
    _context()
    raise CompleteAsyncError()


def is_cancelled() -> bool:
    """Whether the workflow asked this activity to stop (learned through heartbeats)."""
    return _context().cancel_requested


def _set_context(value: AttemptContext) -> None:
    _current.set(value)
