"""The deterministic runtime, fed hand-written histories (no Redis)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from orchestrator import ActivityError, NonDeterminismError, workflow
from orchestrator.commands import (
    CancelTimer,
    CompleteWorkflow,
    FailWorkflow,
    ScheduleActivity,
    StartTimer,
)
from orchestrator.converter import loads
from orchestrator.runtime import WorkflowInstance
from orchestrator.workflow import WorkflowDefinition, WorkflowInfo


@workflow.defn(name="Two")
async def two(x: int) -> list[Any]:
    a, b = await asyncio.gather(
        workflow.start_activity("A", x, start_to_close_timeout=5),
        workflow.start_activity("B", x, start_to_close_timeout=5),
    )
    c = await workflow.execute_activity("C", a + b, start_to_close_timeout=5)
    return [a, b, c]


@workflow.defn(name="Catches")
async def catches() -> str:
    try:
        await workflow.execute_activity("A", start_to_close_timeout=5)
    except ActivityError as err:
        return f"caught {err.type}: {err.failure.message} (attempt {err.failure.attempt})"
    return "no"


@workflow.defn(name="Sleeps")
async def sleeps() -> None:
    await asyncio.sleep(1)


class History:
    """Builds a history the way the Lua scripts would record it."""

    def __init__(self, workflow_type: str, *args: Any) -> None:
        self.events: list[dict[str, Any]] = []
        self.add(
            "WorkflowExecutionStarted",
            workflow_type=workflow_type,
            task_queue="q",
            input=list(args),
        )

    def add(self, kind: str, **attrs: Any) -> dict[str, Any]:
        event = {
            "id": len(self.events) + 1,
            "type": kind,
            "ts": 1_000 * len(self.events),
            "attrs": attrs,
        }
        self.events.append(event)
        return event

    def task(self, *commands: tuple[str, dict[str, Any]]) -> None:
        self.add("WorkflowTaskStarted")
        self.add("WorkflowTaskCompleted")
        for kind, attrs in commands:
            self.add(kind, **attrs)


def instance(fn: Any) -> WorkflowInstance:
    definition = WorkflowDefinition.of(fn)
    return WorkflowInstance(
        definition, WorkflowInfo("default", "wf", "run-1", definition.name, "q")
    )


def scheduled(seq: int, kind: str) -> tuple[str, dict[str, Any]]:
    return "ActivityTaskScheduled", {"seq": seq, "activity_type": kind}


def test_first_task_schedules_both_parallel_activities() -> None:
    h = History("Two", 3)
    h.add("WorkflowTaskStarted")
    commands = instance(two).apply(h.events)
    assert [(c.seq, c.activity_type) for c in commands if isinstance(c, ScheduleActivity)] == [
        (1, "A"),
        (2, "B"),
    ]


def test_replay_reaches_the_same_state_as_live_execution() -> None:
    h = History("Two", 3)
    h.task(scheduled(1, "A"), scheduled(2, "B"))
    h.add("ActivityTaskCompleted", seq=2, result=20)
    h.add("ActivityTaskCompleted", seq=1, result=10)
    h.task(scheduled(3, "C"))
    h.add("ActivityTaskCompleted", seq=3, result=99)
    h.add("WorkflowTaskStarted")
    commands = instance(two).apply(h.events)
    assert len(commands) == 1 and isinstance(commands[0], CompleteWorkflow)
    assert loads(commands[0].result_json) == [10, 20, 99]


def test_events_arriving_during_a_task_wait_for_the_next_one() -> None:
    h = History("Two", 3)
    h.add("WorkflowTaskStarted")
    # A completes while the first task runs: it belongs to the next activation.
    h.add("ActivityTaskCompleted", seq=1, result=1)
    h.add("WorkflowTaskCompleted")
    h.add("ActivityTaskScheduled", seq=1, activity_type="A")
    h.add("ActivityTaskScheduled", seq=2, activity_type="B")
    h.add("ActivityTaskCompleted", seq=2, result=2)
    h.add("WorkflowTaskStarted")
    commands = instance(two).apply(h.events)
    assert [(c.seq, c.activity_type) for c in commands if isinstance(c, ScheduleActivity)] == [
        (3, "C")
    ]


def test_a_cached_instance_continues_from_new_events_only() -> None:
    h = History("Two", 3)
    h.add("WorkflowTaskStarted")
    cached = instance(two)
    first = cached.apply(h.events)
    h.add("WorkflowTaskCompleted")
    for command in first:
        assert isinstance(command, ScheduleActivity)
        h.add("ActivityTaskScheduled", seq=command.seq, activity_type=command.activity_type)
    seen = cached.last_event_id
    h.add("ActivityTaskCompleted", seq=1, result=1)
    h.add("ActivityTaskCompleted", seq=2, result=2)
    h.add("WorkflowTaskStarted")
    from_cache = cached.apply(h.events[seen:])
    from_scratch = instance(two).apply(h.events)
    assert from_cache == from_scratch
    assert isinstance(from_cache[0], ScheduleActivity) and from_cache[0].activity_type == "C"


def test_changed_activity_type_is_non_determinism() -> None:
    h = History("Two", 3)
    h.task(scheduled(1, "A"), scheduled(2, "Z"))
    h.add("WorkflowTaskStarted")
    with pytest.raises(NonDeterminismError) as info:
        instance(two).apply(h.events)
    assert "ActivityTaskScheduled(seq=2, activity_type='Z')" in str(info.value)
    assert "ScheduleActivity(seq=2, activity_type='B')" in str(info.value)


def test_missing_command_is_non_determinism() -> None:
    h = History("Two", 3)
    h.task(scheduled(1, "A"))
    h.add("ActivityTaskCompleted", seq=1, result=1)
    h.add("WorkflowTaskStarted")
    with pytest.raises(NonDeterminismError, match=r"issued ScheduleActivity\(seq=2"):
        instance(two).apply(h.events)


def test_extra_recorded_command_is_non_determinism() -> None:
    h = History("Two", 3)
    h.task(scheduled(1, "A"), scheduled(2, "B"), scheduled(3, "X"))
    h.add("WorkflowTaskStarted")
    with pytest.raises(NonDeterminismError, match="no longer issues it"):
        instance(two).apply(h.events)


def test_failed_and_timed_out_tasks_are_skipped_on_replay() -> None:
    h = History("Two", 3)
    h.add("WorkflowTaskStarted")
    h.add("WorkflowTaskTimedOut", attempt=1)
    h.add("WorkflowTaskStarted")
    h.add("WorkflowTaskFailed", failure={})
    h.add("WorkflowTaskStarted")
    commands = instance(two).apply(h.events)
    assert [c.activity_type for c in commands if isinstance(c, ScheduleActivity)] == ["A", "B"]


def test_activity_failure_is_raised_in_workflow_code() -> None:
    h = History("Catches")
    h.task(scheduled(1, "A"))
    h.add(
        "ActivityTaskFailed",
        seq=1,
        attempt=3,
        failure={"type": "KeyError", "message": "nope", "attempt": 3},
    )
    h.add("WorkflowTaskStarted")
    (command,) = instance(catches).apply(h.events)
    assert isinstance(command, CompleteWorkflow)
    assert loads(command.result_json) == "caught KeyError: nope (attempt 3)"


def test_asyncio_sleep_is_a_durable_timer() -> None:
    h = History("Sleeps")
    h.add("WorkflowTaskStarted")
    (command,) = instance(sleeps).apply(h.events)
    assert isinstance(command, StartTimer) and command.duration_ms == 1000


def test_a_fired_timer_resumes_the_code_and_a_cancelled_one_is_recorded() -> None:
    @workflow.defn(name="Race")
    async def race() -> str:
        try:
            await asyncio.wait_for(workflow.execute_activity("Slow", start_to_close_timeout=60), 5)
        except TimeoutError:
            return "timed out"
        return "finished"

    h = History("Race")
    h.task(("TimerStarted", {"seq": 1}), scheduled(1, "Slow"))
    h.add("TimerFired", seq=1)
    h.add("WorkflowTaskStarted")
    commands = instance(race).apply(h.events)
    assert isinstance(commands[-1], CompleteWorkflow)
    assert loads(commands[-1].result_json) == "timed out"

    h = History("Race")
    h.task(("TimerStarted", {"seq": 1}), scheduled(1, "Slow"))
    h.add("ActivityTaskCompleted", seq=1, result=None)
    h.add("WorkflowTaskStarted")
    commands = instance(race).apply(h.events)
    assert isinstance(commands[0], CancelTimer) and commands[0].seq == 1
    assert loads(commands[-1].result_json) == "finished"


def test_wait_condition_wakes_when_state_changes() -> None:
    @workflow.defn(name="Cond")
    async def cond() -> list[int]:
        got: list[int] = []

        async def collect() -> None:
            for i in range(2):
                got.append(await workflow.execute_activity("A", i, start_to_close_timeout=5))

        task = asyncio.ensure_future(collect())
        await workflow.wait_condition(lambda: len(got) == 2)
        await task
        return got

    h = History("Cond")
    h.task(scheduled(1, "A"))
    h.add("ActivityTaskCompleted", seq=1, result=10)
    h.task(scheduled(2, "A"))
    h.add("ActivityTaskCompleted", seq=2, result=20)
    h.add("WorkflowTaskStarted")
    (command,) = instance(cond).apply(h.events)
    assert loads(command.result_json) == [10, 20]


def test_unserializable_result_fails_the_workflow() -> None:
    @workflow.defn(name="Bad")
    async def bad() -> object:
        return object()

    h = History("Bad")
    h.add("WorkflowTaskStarted")
    (command,) = instance(bad).apply(h.events)
    assert isinstance(command, FailWorkflow)
    assert command.failure.type == "SerializationError"


def test_workflow_api_outside_a_workflow_is_a_clear_error() -> None:
    with pytest.raises(Exception, match="only be called from workflow code"):
        workflow.now()


def test_missing_timeouts_are_rejected() -> None:
    @workflow.defn(name="NoTimeout")
    async def no_timeout() -> None:
        await workflow.execute_activity("A")

    h = History("NoTimeout")
    h.add("WorkflowTaskStarted")
    (command,) = instance(no_timeout).apply(h.events)
    assert isinstance(command, FailWorkflow)
    assert "start_to_close_timeout" in command.failure.message


def test_wrong_workflow_arguments_fail_the_run_like_any_error() -> None:
    h = History("Two")  # "Two" needs one argument
    h.add("WorkflowTaskStarted")
    (command,) = instance(two).apply(h.events)
    assert isinstance(command, FailWorkflow)
    assert command.failure.type == "TypeError"


@pytest.mark.parametrize(
    ("cancellation", "requested"),
    [("TRY_CANCEL", True), ("WAIT_CANCELLATION_COMPLETED", True), ("ABANDON", False)],
)
def test_cancellation_types(cancellation: str, requested: bool) -> None:
    from orchestrator import ActivityCancellationType
    from orchestrator.commands import RequestCancelActivity

    kind = ActivityCancellationType[cancellation]

    @workflow.defn(name="Cancels")
    async def cancels() -> str:
        handle = workflow.start_activity("Slow", start_to_close_timeout=60, cancellation_type=kind)
        await asyncio.sleep(0)
        handle.cancel()
        try:
            await handle
        except asyncio.CancelledError:
            return "cancelled"
        except ActivityError as err:
            return f"activity error {err.type}"
        return "finished"

    h = History("Cancels")
    h.add("WorkflowTaskStarted")
    commands = instance(cancels).apply(h.events)
    assert any(isinstance(c, RequestCancelActivity) for c in commands) is requested
    # Waiting for the activity's acknowledgement keeps the workflow open; the others go on.
    closed = isinstance(commands[-1], CompleteWorkflow)
    assert closed is (kind is not ActivityCancellationType.WAIT_CANCELLATION_COMPLETED)
