"""Logging set-up and the per-transition log line.

Every state transition a worker performs is logged once at INFO, with the
fields that identify it (namespace, task queue, worker id, workflow id, run id,
activity type, attempt) attached to the record as ``record.fields``. People
read them as ``key=value`` pairs after the message; log collectors get one JSON
object per line with the same fields (``--log-format json``).
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import orjson

FIELD_ORDER = (
    "namespace",
    "task_queue",
    "worker",
    "workflow_id",
    "run_id",
    "workflow_type",
    "activity_type",
    "seq",
    "attempt",
)


class LogFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


class FieldsFormatter(logging.Formatter):
    """Human-readable lines: the message, then the record's fields as key=value."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields: dict[str, Any] | None = getattr(record, "fields", None)
        if not fields:
            return line
        pairs = " ".join(f"{k}={fields[k]}" for k in FIELD_ORDER if fields.get(k) not in (None, ""))
        first, newline, rest = line.partition("\n")
        return f"{first} {pairs}{newline}{rest}"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, then the record's fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields: dict[str, Any] | None = getattr(record, "fields", None)
        if fields:
            entry.update((k, v) for k, v in fields.items() if v not in (None, ""))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def configure(level: str | int = "INFO", log_format: str = LogFormat.TEXT) -> None:
    """Send the orchestrator's logs to stderr, for people (text) or collectors (json)."""
    handler = logging.StreamHandler(sys.stderr)
    if LogFormat(log_format) is LogFormat.JSON:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(FieldsFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level if isinstance(level, int) else level.upper())
