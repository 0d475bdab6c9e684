"""Options shared by several commands, and reading what they hold: JSON inputs, durations."""

from __future__ import annotations

import math
import re
import sys
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer

from ..errors import ConfigurationError
from ..logs import LogFormat

CONNECTION = "Connection"


class Output(StrEnum):
    """How a command prints what it found."""

    TABLE = "table"
    JSON = "json"


RedisUrl = Annotated[
    str | None,
    typer.Option(
        "--redis-url",
        envvar="ORCHESTRATOR_REDIS_URL",
        help="Redis URL: redis://HOST:PORT/DB, or redis://:PASSWORD@HOST:PORT/DB "
        "(default: redis://localhost:6379/0).",
        show_default=False,
        rich_help_panel=CONNECTION,
    ),
]
ConnectTimeout = Annotated[
    float,
    typer.Option(
        min=0,
        envvar="ORCHESTRATOR_CONNECT_TIMEOUT",
        help="Seconds to keep trying a Redis that cannot be reached at start (it may be "
        "restarting); a refused password fails at once.",
        rich_help_panel=CONNECTION,
    ),
]
MetricsHost = Annotated[
    str,
    typer.Option(
        "--metrics-host",
        envvar="ORCHESTRATOR_METRICS_HOST",
        help="Address the metrics port listens on (127.0.0.1 keeps it local).",
        rich_help_panel="Metrics and logs",
    ),
]


class LogLevel(StrEnum):
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"
    CRITICAL = "CRITICAL"


LogLevelOption = Annotated[
    LogLevel,
    typer.Option(
        envvar="ORCHESTRATOR_LOG_LEVEL", case_sensitive=False, rich_help_panel="Metrics and logs"
    ),
]
LogFormatOption = Annotated[
    LogFormat,
    typer.Option(
        envvar="ORCHESTRATOR_LOG_FORMAT",
        case_sensitive=False,
        help="text for people; json for log collectors (one object per line).",
        rich_help_panel="Metrics and logs",
    ),
]
Namespace = Annotated[
    str,
    typer.Option("--namespace", "-n", envvar="ORCHESTRATOR_NAMESPACE", rich_help_panel=CONNECTION),
]
OutputFormat = Annotated[
    Output,
    typer.Option(
        "--output", "-o", help="table for people, json for scripts.", case_sensitive=False
    ),
]
WorkflowId = Annotated[str, typer.Option("--workflow-id", "-w", help="Workflow id.")]
RunId = Annotated[
    str | None,
    typer.Option("--run-id", "-r", help="Run id (default: the workflow's current run)."),
]
Inputs = Annotated[
    list[str] | None,
    typer.Option("--input", "-i", help="An argument as JSON; repeat it for several arguments."),
]
InputFiles = Annotated[
    list[Path] | None,
    typer.Option(
        "--input-file",
        help="A file holding one argument as JSON ('-' reads stdin); repeat it for several.",
    ),
]


def parse_inputs(inputs: list[str] | None, files: list[Path] | None) -> list[Any]:
    """Arguments from ``--input`` texts or ``--input-file`` files, one JSON value each."""
    if inputs and files:
        raise ConfigurationError("give --input or --input-file, not both")
    if files:
        return [_json(_read(path), f"--input-file {path}") for path in files]
    texts = inputs or []
    if len(texts) == 1:
        return [_json(texts[0], "--input")]
    return [_json(text, f"--input #{n}") for n, text in enumerate(texts, 1)]


def _read(path: Path) -> str:
    if str(path) == "-":
        return sys.stdin.read()
    try:
        return path.read_text()
    except OSError as exc:
        raise ConfigurationError(f"cannot read input file {path}: {exc.strerror}") from None


def _json(text: str, where: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ConfigurationError(f"{where} is not valid JSON: {exc}") from None


_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")


def parse_duration(text: str, what: str) -> timedelta:
    """``90``, ``90s``, ``1m30s``, ``2h``, ``1d`` or ``500ms``; a bare number is seconds."""
    text = text.strip().lower()
    try:
        seconds = float(text)
    except ValueError:
        if not _DURATION.fullmatch(text):
            raise ConfigurationError(
                f"{what} must be a duration like 30s, 5m, 1h30m or 1d (got {text!r})"
            ) from None
        seconds = sum(float(n) * _UNIT_SECONDS[unit] for n, unit in _DURATION_PART.findall(text))
    if not math.isfinite(seconds) or seconds < 0:
        raise ConfigurationError(f"{what} must be a non-negative duration (got {text!r})")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """``1h30m``, ``5s``, ``250ms``: the inverse of :func:`parse_duration`."""
    ms = round(value.total_seconds() * 1000)
    if ms % 1000:
        return f"{ms}ms"
    seconds, parts = ms // 1000, []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts) or "0s"
