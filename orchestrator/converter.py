"""JSON conversion of inputs, results and failures (orjson; never pickle)."""

from __future__ import annotations

import dataclasses
import inspect
import traceback
import typing
from collections.abc import Callable, Sequence
from typing import Any

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
    """Rebuild a dataclass (or a list of them) from its decoded JSON form."""
    if hint is None or hint is Any or value is None:
        return value
    if dataclasses.is_dataclass(hint) and isinstance(value, dict):
        hints = typing.get_type_hints(hint)
        fields = {f.name for f in dataclasses.fields(hint)}
        return hint(**{k: to_type(v, hints.get(k)) for k, v in value.items() if k in fields})
    origin = typing.get_origin(hint)
    if origin in (list, Sequence) and isinstance(value, list):
        (item,) = typing.get_args(hint) or (None,)
        return [to_type(v, item) for v in value]
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
