"""Event types of a workflow run's history, and how to read them.

Each event is a JSON object ``{"id", "type", "ts", "attrs"}`` stored in the
run's history stream under the stream id ``0-<id>``; ``ts`` is the server's
time in milliseconds.
"""

from __future__ import annotations

from typing import Any

import orjson

WORKFLOW_EXECUTION_STARTED = "WorkflowExecutionStarted"
WORKFLOW_EXECUTION_COMPLETED = "WorkflowExecutionCompleted"
WORKFLOW_EXECUTION_FAILED = "WorkflowExecutionFailed"
WORKFLOW_EXECUTION_TERMINATED = "WorkflowExecutionTerminated"
WORKFLOW_EXECUTION_SIGNALED = "WorkflowExecutionSignaled"
WORKFLOW_EXECUTION_CANCEL_REQUESTED = "WorkflowExecutionCancelRequested"
WORKFLOW_EXECUTION_CANCELED = "WorkflowExecutionCanceled"
WORKFLOW_EXECUTION_CONTINUED_AS_NEW = "WorkflowExecutionContinuedAsNew"
MARKER_RECORDED = "MarkerRecorded"
WORKFLOW_EXECUTION_TIMED_OUT = "WorkflowExecutionTimedOut"
START_CHILD_WORKFLOW_EXECUTION_INITIATED = "StartChildWorkflowExecutionInitiated"
START_CHILD_WORKFLOW_EXECUTION_FAILED = "StartChildWorkflowExecutionFailed"
CHILD_WORKFLOW_EXECUTION_STARTED = "ChildWorkflowExecutionStarted"
CHILD_WORKFLOW_EXECUTION_COMPLETED = "ChildWorkflowExecutionCompleted"
CHILD_WORKFLOW_EXECUTION_FAILED = "ChildWorkflowExecutionFailed"
WORKFLOW_TASK_STARTED = "WorkflowTaskStarted"
WORKFLOW_TASK_COMPLETED = "WorkflowTaskCompleted"
WORKFLOW_TASK_FAILED = "WorkflowTaskFailed"
WORKFLOW_TASK_TIMED_OUT = "WorkflowTaskTimedOut"
ACTIVITY_TASK_SCHEDULED = "ActivityTaskScheduled"
ACTIVITY_TASK_STARTED = "ActivityTaskStarted"
ACTIVITY_TASK_ATTEMPT_FAILED = "ActivityTaskAttemptFailed"
ACTIVITY_TASK_COMPLETED = "ActivityTaskCompleted"
ACTIVITY_TASK_FAILED = "ActivityTaskFailed"
ACTIVITY_TASK_TIMED_OUT = "ActivityTaskTimedOut"
ACTIVITY_TASK_CANCEL_REQUESTED = "ActivityTaskCancelRequested"
ACTIVITY_TASK_CANCELED = "ActivityTaskCanceled"
TIMER_STARTED = "TimerStarted"
TIMER_FIRED = "TimerFired"
TIMER_CANCELED = "TimerCanceled"

# Written by a workflow task completion from the commands the code issued;
# replay must reproduce exactly these, in order.
COMMAND_EVENTS = frozenset(
    {
        ACTIVITY_TASK_SCHEDULED,
        ACTIVITY_TASK_CANCEL_REQUESTED,
        TIMER_STARTED,
        TIMER_CANCELED,
        WORKFLOW_EXECUTION_COMPLETED,
        WORKFLOW_EXECUTION_FAILED,
        WORKFLOW_EXECUTION_CANCELED,
        WORKFLOW_EXECUTION_CONTINUED_AS_NEW,
        MARKER_RECORDED,
        START_CHILD_WORKFLOW_EXECUTION_INITIATED,
    }
)
# Delivered to the workflow code as input at its next activation.
INPUT_EVENTS = frozenset(
    {
        WORKFLOW_EXECUTION_STARTED,
        WORKFLOW_EXECUTION_SIGNALED,
        WORKFLOW_EXECUTION_CANCEL_REQUESTED,
        ACTIVITY_TASK_COMPLETED,
        ACTIVITY_TASK_FAILED,
        ACTIVITY_TASK_TIMED_OUT,
        ACTIVITY_TASK_CANCELED,
        TIMER_FIRED,
        START_CHILD_WORKFLOW_EXECUTION_FAILED,
        CHILD_WORKFLOW_EXECUTION_STARTED,
        CHILD_WORKFLOW_EXECUTION_COMPLETED,
        CHILD_WORKFLOW_EXECUTION_FAILED,
    }
)
CLOSE_EVENTS = {
    WORKFLOW_EXECUTION_COMPLETED: "COMPLETED",
    WORKFLOW_EXECUTION_FAILED: "FAILED",
    WORKFLOW_EXECUTION_TERMINATED: "TERMINATED",
    WORKFLOW_EXECUTION_CANCELED: "CANCELED",
    WORKFLOW_EXECUTION_CONTINUED_AS_NEW: "CONTINUED_AS_NEW",
    WORKFLOW_EXECUTION_TIMED_OUT: "TIMED_OUT",
}

Event = dict[str, Any]


def parse_events(raw: list[str | bytes]) -> list[Event]:
    return [orjson.loads(item) for item in raw]


def from_stream(entries: list[tuple[Any, dict[Any, Any]]]) -> list[Event]:
    """Events from an XRANGE/XREAD reply on a history stream."""
    out = []
    for _entry_id, fields in entries:
        body = fields.get("event") if "event" in fields else fields.get(b"event")
        out.append(orjson.loads(body))
    return out
