"""Commands a workflow activation issues, and the history events they become.

A command is what the workflow code asked for; the workflow-task completion
script turns each into a history event. On replay, the commands the code issues
again are matched against those events to detect non-determinism.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from . import history
from .errors import Failure
from .retry import RetryPolicy


class ActivityCancellationType(enum.Enum):
    """What cancelling an activity's handle does, as in Temporal."""

    TRY_CANCEL = "try_cancel"
    """Ask the activity to stop and resolve the handle as cancelled at once."""
    WAIT_CANCELLATION_COMPLETED = "wait_cancellation_completed"
    """Ask the activity to stop and wait until it has (or until it ends anyway)."""
    ABANDON = "abandon"
    """Resolve the handle as cancelled; let the activity run on unaware."""


@dataclass(frozen=True, slots=True)
class ActivityOptions:
    task_queue: str
    start_to_close_ms: int
    schedule_to_close_ms: int
    retry_policy: RetryPolicy
    schedule_to_start_ms: int = 0
    heartbeat_ms: int = 0
    cancellation_type: ActivityCancellationType = ActivityCancellationType.TRY_CANCEL


@dataclass(frozen=True, slots=True)
class ScheduleActivity:
    seq: int
    activity_type: str
    input_json: bytes
    options: ActivityOptions
    event_type: str = history.ACTIVITY_TASK_SCHEDULED

    def describe(self) -> str:
        return f"ScheduleActivity(seq={self.seq}, activity_type={self.activity_type!r})"

    def matches(self, event: history.Event) -> bool:
        attrs = event["attrs"]
        return (
            event["type"] == self.event_type
            and attrs.get("seq") == self.seq
            and attrs.get("activity_type") == self.activity_type
        )


@dataclass(frozen=True, slots=True)
class CompleteWorkflow:
    result_json: bytes
    event_type: str = history.WORKFLOW_EXECUTION_COMPLETED

    def describe(self) -> str:
        return "CompleteWorkflow"

    def matches(self, event: history.Event) -> bool:
        return event["type"] == self.event_type


@dataclass(frozen=True, slots=True)
class FailWorkflow:
    failure: Failure
    event_type: str = history.WORKFLOW_EXECUTION_FAILED

    def describe(self) -> str:
        return f"FailWorkflow({self.failure.type})"

    def matches(self, event: history.Event) -> bool:
        return event["type"] == self.event_type


@dataclass(frozen=True, slots=True)
class RequestCancelActivity:
    seq: int
    task_queue: str
    event_type: str = history.ACTIVITY_TASK_CANCEL_REQUESTED

    def describe(self) -> str:
        return f"RequestCancelActivity(seq={self.seq})"

    def matches(self, event: history.Event) -> bool:
        return event["type"] == self.event_type and event["attrs"].get("seq") == self.seq


@dataclass(frozen=True, slots=True)
class CancelWorkflow:
    event_type: str = history.WORKFLOW_EXECUTION_CANCELED

    def describe(self) -> str:
        return "CancelWorkflow"

    def matches(self, event: history.Event) -> bool:
        return event["type"] == self.event_type


@dataclass(frozen=True, slots=True)
class ContinueAsNew:
    input_json: bytes
    event_type: str = history.WORKFLOW_EXECUTION_CONTINUED_AS_NEW

    def describe(self) -> str:
        return "ContinueAsNew"

    def matches(self, event: history.Event) -> bool:
        return event["type"] == self.event_type


@dataclass(frozen=True, slots=True)
class RecordMarker:
    """A version marker: this run took the branch of patch ``patch_id``."""

    patch_id: str
    event_type: str = history.MARKER_RECORDED

    def describe(self) -> str:
        return f"RecordMarker(patch_id={self.patch_id!r})"

    def matches(self, event: history.Event) -> bool:
        return event["type"] == self.event_type and event["attrs"].get("patch_id") == self.patch_id


@dataclass(frozen=True, slots=True)
class StartChildWorkflow:
    seq: int
    workflow_type: str
    input_json: bytes
    workflow_id: str
    task_queue: str
    parent_close_policy: str
    event_type: str = history.START_CHILD_WORKFLOW_EXECUTION_INITIATED

    def describe(self) -> str:
        return f"StartChildWorkflow(seq={self.seq}, workflow_type={self.workflow_type!r})"

    def matches(self, event: history.Event) -> bool:
        attrs = event["attrs"]
        return (
            event["type"] == self.event_type
            and attrs.get("seq") == self.seq
            and attrs.get("workflow_type") == self.workflow_type
        )


@dataclass(frozen=True, slots=True)
class StartTimer:
    seq: int
    duration_ms: int
    event_type: str = history.TIMER_STARTED

    def describe(self) -> str:
        return f"StartTimer(seq={self.seq})"

    def matches(self, event: history.Event) -> bool:
        return event["type"] == self.event_type and event["attrs"].get("seq") == self.seq


@dataclass(frozen=True, slots=True)
class CancelTimer:
    seq: int
    event_type: str = history.TIMER_CANCELED

    def describe(self) -> str:
        return f"CancelTimer(seq={self.seq})"

    def matches(self, event: history.Event) -> bool:
        return event["type"] == self.event_type and event["attrs"].get("seq") == self.seq


Command = (
    ScheduleActivity
    | RequestCancelActivity
    | StartTimer
    | CancelTimer
    | CompleteWorkflow
    | FailWorkflow
    | CancelWorkflow
    | ContinueAsNew
    | RecordMarker
    | StartChildWorkflow
)


def describe_event(event: history.Event) -> str:
    attrs = event.get("attrs", {})
    if event["type"] == history.ACTIVITY_TASK_SCHEDULED:
        return (
            f"ActivityTaskScheduled(seq={attrs.get('seq')}, "
            f"activity_type={attrs.get('activity_type')!r})"
        )
    if event["type"] in (
        history.TIMER_STARTED,
        history.TIMER_CANCELED,
        history.ACTIVITY_TASK_CANCEL_REQUESTED,
    ):
        return f"{event['type']}(seq={attrs.get('seq')})"
    if event["type"] == history.START_CHILD_WORKFLOW_EXECUTION_INITIATED:
        return (
            f"StartChildWorkflowExecutionInitiated(seq={attrs.get('seq')}, "
            f"workflow_type={attrs.get('workflow_type')!r})"
        )
    if event["type"] == history.MARKER_RECORDED:
        return f"MarkerRecorded(patch_id={attrs.get('patch_id')!r})"
    return str(event["type"])
