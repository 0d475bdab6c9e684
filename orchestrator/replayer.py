"""Replay recorded histories against the current workflow code.

Run it in CI before deploying changed workflow code: it reports whether the
code would still reproduce the commands that running workflows recorded.

    Replayer([checkout]).replay(Path("checkout-history.json"))   # raises on mismatch

A history is the list of events that ``orchestrator workflow show --output json``
prints (or ``WorkflowHandle.history()`` returns): a JSON array, an object with an
``events`` array, or one JSON event per line.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from . import history
from .errors import ConfigurationError, NonDeterminismError, WorkflowTaskError
from .runtime import WorkflowInstance
from .workflow import WorkflowDefinition, WorkflowInfo


def load_history(source: str | bytes | Path | list[history.Event]) -> list[history.Event]:
    """Events from a file path, a JSON text, or an already decoded list."""
    if isinstance(source, list):
        return source
    text = source.read_bytes() if isinstance(source, Path) else source
    text = text.strip()
    try:
        if text[:1] in (b"[", "[", b"{", "{") and not _is_json_lines(text):
            data = orjson.loads(text)
            events = data.get("events") if isinstance(data, dict) else data
        else:
            events = [orjson.loads(line) for line in text.splitlines() if line.strip()]
    except orjson.JSONDecodeError as exc:
        raise ConfigurationError(f"history is not valid JSON: {exc}") from None
    if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
        raise ConfigurationError("a history must be a list of event objects")
    return events


def _is_json_lines(text: str | bytes) -> bool:
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) < 2:
        return False
    try:
        orjson.loads(lines[0])
    except orjson.JSONDecodeError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class ReplayResult:
    workflow_id: str
    workflow_type: str
    error: Exception | None

    @property
    def ok(self) -> bool:
        return self.error is None


class Replayer:
    """Replays histories against a set of workflow definitions."""

    def __init__(self, workflows: Iterable[Callable[..., Any]], namespace: str = "default") -> None:
        self.workflows = {d.name: d for d in map(WorkflowDefinition.of, workflows)}
        self.namespace = namespace

    def replay(self, source: str | bytes | Path | list[history.Event]) -> None:
        """Replay one history; raise :class:`NonDeterminismError` if the code diverges."""
        result = self.check(source)
        if result.error is not None:
            raise result.error

    def check(self, source: str | bytes | Path | list[history.Event]) -> ReplayResult:
        """Replay one history and report the outcome instead of raising."""
        events = load_history(source)
        if not events or events[0].get("type") != history.WORKFLOW_EXECUTION_STARTED:
            raise ConfigurationError("a history must start with WorkflowExecutionStarted")
        attrs = events[0]["attrs"]
        workflow_type = attrs.get("workflow_type", "")
        definition = self.workflows.get(workflow_type)
        if definition is None:
            raise ConfigurationError(
                f"workflow type {workflow_type!r} is not among the replayer's workflows "
                f"({sorted(self.workflows)})"
            )
        # The run id seeds workflow.random(): replay must use the recorded one.
        workflow_id, run_id = attrs.get("workflow_id", "replay"), attrs.get("run_id", "replay")
        info = WorkflowInfo(
            self.namespace, workflow_id, run_id, workflow_type, attrs.get("task_queue", "")
        )
        instance = WorkflowInstance(definition, info)
        try:
            instance.replay(events)
        except (NonDeterminismError, WorkflowTaskError) as exc:
            return ReplayResult(workflow_id, workflow_type, exc)
        return ReplayResult(workflow_id, workflow_type, None)
