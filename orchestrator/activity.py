"""Activities: plain functions, ``def`` or ``async def``, that do the real work.

Register one with :func:`defn` (or pass it to a worker as it is). Inside an
activity, :func:`info` tells which workflow and attempt it serves.
"""

from __future__ import annotations

import contextvars
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, overload

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


_current: contextvars.ContextVar[ActivityInfo] = contextvars.ContextVar("activity_info")


def info() -> ActivityInfo:
    """The running activity's info; raises outside an activity."""
    try:
        return _current.get()
    except LookupError:
        raise ConfigurationError("activity.info() called outside an activity") from None


def _set_info(value: ActivityInfo) -> None:
    _current.set(value)
