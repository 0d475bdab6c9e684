"""JSON conversion of inputs, results and failures (orjson; never pickle)."""

from __future__ import annotations

import dataclasses
import inspect
import traceback
import typing
from collections.abc import Callable, Sequence
from datetime import datetime
from types import UnionType
from typing import Any, Union

import orjson

from .errors import ApplicationError, Failure, SerializationError


def dumps(value: Any) -> bytes:
    """Encode a JSON value; dataclasses, datetimes and UUIDs are accepted."""
    try:
        return orjson.dumps(value)
    except TypeError as exc:
        raise SerializationError(f"value is not JSON serializable: {exc}") from exc


def loads(data: bytes | str) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise SerializationError(f"invalid JSON: {exc}") from exc


def to_type(value: Any, hint: Any) -> Any:
    """Rebuild dataclasses and datetimes from their decoded JSON form, following ``hint``.

    Handles nested dataclasses, ``list``/``tuple``/``dict`` of them and optional
    (``X | None``) hints; anything else is returned as decoded.
    """
    if hint is None or hint is Any or value is None:
        return value
    if dataclasses.is_dataclass(hint) and isinstance(value, dict):
        hints = typing.get_type_hints(hint)
        fields = {f.name for f in dataclasses.fields(hint)}
        return hint(**{k: to_type(v, hints.get(k)) for k, v in value.items() if k in fields})
    if hint is datetime and isinstance(value, str):
        return datetime.fromisoformat(value)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, UnionType):
        options = [a for a in args if a is not type(None)]
        return to_type(value, options[0]) if len(options) == 1 else value
    if origin in (list, Sequence) and isinstance(value, list):
        return [to_type(v, args[0] if args else None) for v in value]
    if origin is tuple and isinstance(value, list):
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(to_type(v, args[0]) for v in value)
        return tuple(to_type(v, args[i] if i < len(args) else None) for i, v in enumerate(value))
    if origin is dict and isinstance(value, dict) and len(args) == 2:
        return {k: to_type(v, args[1]) for k, v in value.items()}
    return value


def param_types(fn: Callable[..., Any]) -> tuple[list[Any], Any]:
    """Parameter and return type hints of ``fn``, used to rebuild dataclasses."""
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # unresolvable forward references: fall back to plain JSON
        hints = {}
    params = [
        hints.get(p.name)
        for p in inspect.signature(fn).parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    return params, hints.get("return")


def convert_args(args: list[Any], types: list[Any]) -> list[Any]:
    return [to_type(a, types[i] if i < len(types) else None) for i, a in enumerate(args)]


def failure_from_exception(exc: BaseException, attempt: int = 0) -> Failure:
    """Describe an exception as a :class:`Failure` that can be stored and shown."""
    stack = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    if isinstance(exc, ApplicationError):
        return Failure(
            type=exc.type,
            message=exc.message,
            stack=stack,
            attempt=attempt,
            non_retryable=exc.non_retryable,
            details=_json_safe(exc.details),
        )
    return Failure(type=type(exc).__name__, message=str(exc), stack=stack, attempt=attempt)


def _json_safe(details: list[Any]) -> list[Any]:
    try:
        return loads(dumps(details))
    except SerializationError:
        return [repr(d) for d in details]
