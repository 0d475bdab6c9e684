"""Commands a workflow activation issues, and the history events they become.

A command is what the workflow code asked for; the workflow-task completion
script turns each into a history event. On replay, the commands the code issues
again are matched against those events to detect non-determinism.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import history
from .errors import Failure
from .retry import RetryPolicy


@dataclass(frozen=True, slots=True)
class ActivityOptions:
    task_queue: str
    start_to_close_ms: int
    schedule_to_close_ms: int
    retry_policy: RetryPolicy


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


Command = ScheduleActivity | StartTimer | CancelTimer | CompleteWorkflow | FailWorkflow


def describe_event(event: history.Event) -> str:
    attrs = event.get("attrs", {})
    if event["type"] == history.ACTIVITY_TASK_SCHEDULED:
        return (
            f"ActivityTaskScheduled(seq={attrs.get('seq')}, "
            f"activity_type={attrs.get('activity_type')!r})"
        )
    if event["type"] in (history.TIMER_STARTED, history.TIMER_CANCELED):
        return f"{event['type']}(seq={attrs.get('seq')})"
    return str(event["type"])
