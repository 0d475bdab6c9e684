"""Logging set-up and the per-transition log line.

Every state transition a worker performs is logged once at INFO, with the
fields that identify it (namespace, task queue, worker id, workflow id, run id,
activity type, attempt) attached to the record as ``record.fields`` and
rendered as ``key=value`` pairs after the message.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

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


def configure(level: str | int = "INFO") -> None:
    """Send the orchestrator's logs to stderr in the human-readable format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(FieldsFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level if isinstance(level, int) else level.upper())
