"""Watching a run while it goes: new history events as they are appended, and a status line.

A run's history is a Redis stream, so watching it is a blocking XREAD from the
last event seen: no polling, and each event arrives the moment it is recorded.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from rich.console import Console
from rich.status import Status

from .. import history
from ..client import Client, WorkflowHandle
from .render import local_time


async def follow_history(
    client: Client, workflow_id: str, run_id: str, *, block: float = 5.0
) -> AsyncIterator[list[history.Event]]:
    """The run's events in batches, oldest first, ending with the batch that closes the run.

    The first batch is everything recorded so far; after that each batch is what was
    appended since. A read that waited ``block`` seconds for nothing yields an empty
    batch, so that a caller can refresh a clock.
    """
    key = client.keys.history(workflow_id, run_id)
    last_id = "0-0"
    while True:
        reply = await client.redis.xread({key: last_id}, block=max(1, int(block * 1000)))
        if not reply:
            yield []
            continue
        entries = reply[0][1]
        last_id = entries[-1][0]
        events = history.from_stream(entries)
        yield events
        if any(event.get("type") in history.CLOSE_EVENTS for event in events):
            return


class StepTracker:
    """What a run is doing now, in words, from the latest event of its history."""

    def __init__(self) -> None:
        self.step = "waiting for the run's first event"
        self._activity_types: dict[Any, str] = {}

    def see(self, event: history.Event) -> None:
        kind, attrs = str(event.get("type", "")), event.get("attrs") or {}
        if kind == history.ACTIVITY_TASK_SCHEDULED:
            self._activity_types[attrs.get("seq")] = str(attrs.get("activity_type", ""))
        self.step = self._describe(kind, attrs)

    def _describe(self, kind: str, attrs: dict[str, Any]) -> str:
        if kind.startswith("ActivityTask"):
            name = self._activity_types.get(attrs.get("seq"), f"seq {attrs.get('seq')}")
            attempt = attrs.get("attempt")
            detail = f"{name}, attempt {attempt}" if attempt else name
            failure = attrs.get("failure")
            if isinstance(failure, dict):
                detail += f": {failure.get('type', 'Error')}: {failure.get('message', '')}"
            return f"{kind} ({detail})"
        if kind == history.TIMER_STARTED and attrs.get("fire_at"):
            return f"{kind} (fires at {local_time(int(attrs['fire_at']))})"
        if kind == history.WORKFLOW_EXECUTION_SIGNALED:
            return f"{kind} ({attrs.get('name', '')})"
        if kind.startswith(("StartChildWorkflow", "ChildWorkflow")) and attrs.get("workflow_id"):
            return f"{kind} ({attrs['workflow_id']})"
        if kind == history.WORKFLOW_TASK_STARTED and attrs.get("worker"):
            return f"{kind} (worker {attrs['worker']})"
        return kind


class StatusLine:
    """A waiting command's status on stderr.

    On a terminal it is one live line with a spinner, the current step and the
    elapsed time, gone once the wait ends. Elsewhere (a log file, a CI job) a live
    line would be noise, so each new step is printed once, with its elapsed time.
    """

    def __init__(self, console: Console) -> None:
        self.console = console
        self.started = time.monotonic()
        self._last_step: str | None = None
        self._live: Status | None = None
        if console.is_terminal:
            self._live = console.status("starting")
            self._live.start()

    def show(self, step: str) -> None:
        line = f"[{time.monotonic() - self.started:6.1f} s] {step}"
        if self._live is not None:
            self._live.update(line)
        elif step != self._last_step:
            self.console.print(line)
        self._last_step = step

    def stop(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None


async def wait_with_status(
    client: Client,
    handle: WorkflowHandle,
    status: StatusLine,
    timeout: float | None = None,  # noqa: ASYNC109 - handed on to handle.result()
) -> Any:
    """The run's result, showing its progress on ``status`` while waiting for it."""
    watcher = asyncio.create_task(_watch(client, handle, status))
    try:
        return await handle.result(timeout=timeout)
    finally:
        watcher.cancel()
        # The status is decoration: whatever stopped it must not hide the result.
        await asyncio.gather(watcher, return_exceptions=True)
        status.stop()


async def _watch(client: Client, handle: WorkflowHandle, status: StatusLine) -> None:
    tracker = StepTracker()
    run_id = handle.run_id
    while run_id:
        async for events in follow_history(client, handle.id, run_id, block=0.5):
            for event in events:
                tracker.see(event)
            status.show(tracker.step)
        # Closed; a run that continued as new names the run to watch next.
        run_id = await client.redis.hget(client.keys.run(handle.id, run_id), "continued_to")
