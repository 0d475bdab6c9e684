"""Workflows and activities used by the tests, importable by worker subprocesses too.

Activities count their real executions in Redis (``count:<name>``), so a test
can tell a replayed result from an activity that ran again.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from datetime import timedelta

import redis

from orchestrator import ActivityError, ApplicationError, RetryPolicy, activity, workflow

TIMEOUT = timedelta(seconds=10)


def _redis() -> redis.Redis:
    return redis.Redis.from_url(os.environ["ORCHESTRATOR_REDIS_URL"], decode_responses=True)


def _count(name: str) -> int:
    with _redis() as r:
        return int(r.incr(f"count:{name}"))


@activity.defn(name="Greet")
def greet(name: str) -> str:
    _count("Greet")
    return f"Hello {name}!"


@activity.defn(name="Echo")
async def echo(value: object) -> object:
    _count("Echo")
    return value


@activity.defn(name="Fail")
def fail(message: str) -> None:
    _count("Fail")
    raise ValueError(message)


@activity.defn(name="FailTwice")
def fail_twice(name: str) -> str:
    _count("FailTwice")
    attempt = activity.info().attempt
    if attempt < 3:
        raise ConnectionError(f"attempt {attempt} fails")
    return f"{name} after {attempt}"


@activity.defn(name="NotRetryable")
def not_retryable() -> None:
    _count("NotRetryable")
    raise ApplicationError("bad input", type="BadInput", non_retryable=True)


@activity.defn(name="WaitForGate")
async def wait_for_gate(gate: str) -> str:
    """Block until the test sets ``gate:<gate>`` in Redis (lets tests act mid-activity)."""
    _count(f"WaitForGate:{gate}")
    with _redis() as r:
        r.set(f"started:{gate}", activity.info().attempt)
    while True:
        with _redis() as r:
            if r.get(f"gate:{gate}"):
                return f"gate {gate} opened"
        await asyncio.sleep(0.05)


@activity.defn(name="Sleep")
def sleep(seconds: float) -> str:
    """Sleeps on the first attempt only, so a short timeout makes exactly one retry."""
    _count("Sleep")
    attempt = activity.info().attempt
    if attempt == 1:
        time.sleep(seconds)
    return f"attempt {attempt}"


@dataclass
class Order:
    item: str
    quantity: int


@dataclass
class Receipt:
    item: str
    total: float


@activity.defn(name="Price")
def price(order: Order) -> Receipt:
    assert isinstance(order, Order)
    return Receipt(order.item, order.quantity * 2.5)


@workflow.defn(name="Hello")
async def hello(name: str) -> str:
    return await workflow.execute_activity(greet, name, start_to_close_timeout=TIMEOUT)


@workflow.defn(name="ParallelAndSequential")
async def parallel_and_sequential(names: list[str]) -> dict[str, object]:
    handles = [workflow.start_activity(greet, n, start_to_close_timeout=TIMEOUT) for n in names]
    parallel = await asyncio.gather(*handles)
    chain = "x"
    for _ in range(3):
        chain = await workflow.execute_activity(echo, chain + "y", start_to_close_timeout=TIMEOUT)
    return {"parallel": parallel, "chain": chain}


@workflow.defn(name="CatchFailure")
async def catch_failure(message: str) -> dict[str, object]:
    try:
        await workflow.execute_activity(
            fail,
            message,
            start_to_close_timeout=TIMEOUT,
            retry_policy=RetryPolicy(maximum_attempts=2, initial_interval=0.1),
        )
    except ActivityError as err:
        return {
            "type": err.type,
            "message": err.failure.message,
            "attempt": err.failure.attempt,
            "has_stack": "ValueError" in err.failure.stack,
        }
    return {"caught": False}


@workflow.defn(name="Unhandled")
async def unhandled(message: str) -> None:
    raise RuntimeError(message)


@workflow.defn(name="Retries")
async def retries(initial: float) -> str:
    policy = RetryPolicy(initial_interval=initial, backoff_coefficient=2.0, jitter=0.0)
    return await workflow.execute_activity(
        fail_twice, "done", start_to_close_timeout=TIMEOUT, retry_policy=policy
    )


@workflow.defn(name="NonRetryable")
async def non_retryable_wf() -> str:
    try:
        await workflow.execute_activity(not_retryable, start_to_close_timeout=TIMEOUT)
    except ActivityError as err:
        return err.type
    return "no error"


@workflow.defn(name="Gated")
async def gated(gates: list[str], start_to_close: float = 10.0) -> list[str]:
    """Runs Greet, then waits on each gate in turn, then Greet again."""
    out = [await workflow.execute_activity(greet, "first", start_to_close_timeout=TIMEOUT)]
    for gate in gates:
        out.append(
            await workflow.execute_activity(
                wait_for_gate,
                gate,
                start_to_close_timeout=start_to_close,
                retry_policy=RetryPolicy(initial_interval=0.2),
            )
        )
    out.append(await workflow.execute_activity(greet, "last", start_to_close_timeout=TIMEOUT))
    return out


@workflow.defn(name="SlowActivity")
async def slow_activity(seconds: float, start_to_close: float) -> str:
    return await workflow.execute_activity(
        sleep,
        seconds,
        start_to_close_timeout=start_to_close,
        retry_policy=RetryPolicy(initial_interval=0.2),
    )


@workflow.defn(name="ScheduleToClose")
async def schedule_to_close(seconds: float) -> str:
    try:
        await workflow.execute_activity(
            fail_twice,
            "x",
            schedule_to_close_timeout=seconds,
            retry_policy=RetryPolicy(initial_interval=seconds * 2),
        )
    except ActivityError as err:
        return err.type
    return "completed"


@workflow.defn(name="Dataclasses")
async def dataclasses_wf(order: Order) -> Receipt:
    assert isinstance(order, Order)
    receipt = await workflow.execute_activity(price, order, start_to_close_timeout=TIMEOUT)
    assert isinstance(receipt, Receipt)
    return receipt


@workflow.defn(name="Deterministic")
async def deterministic() -> dict[str, object]:
    before = (workflow.now().isoformat(), workflow.random().random(), str(workflow.uuid4()))
    await workflow.execute_activity(echo, 1, start_to_close_timeout=TIMEOUT)
    return {"before": before, "info": workflow.info().workflow_type}


ALL_WORKFLOWS = [
    hello,
    parallel_and_sequential,
    catch_failure,
    unhandled,
    retries,
    non_retryable_wf,
    gated,
    slow_activity,
    schedule_to_close,
    dataclasses_wf,
    deterministic,
]
ALL_ACTIVITIES = [greet, echo, fail, fail_twice, not_retryable, wait_for_gate, sleep, price]


@workflow.defn(name="Sleeper")
async def sleeper(seconds: float) -> str:
    await workflow.sleep(seconds)
    return await workflow.execute_activity(greet, "after sleep", start_to_close_timeout=TIMEOUT)


@workflow.defn(name="WaitWithTimeout")
async def wait_with_timeout(seconds: float) -> str:
    try:
        await workflow.wait_condition(lambda: False, timeout=seconds)
    except TimeoutError:
        return "timed out"
    return "condition met"


ALL_WORKFLOWS += [sleeper, wait_with_timeout]


@workflow.defn(name="Approval")
async def approval(needed: int) -> list[str]:
    received: list[str] = []
    workflow.set_signal_handler("approve", received.append)
    workflow.set_query_handler("received", lambda: list(received))
    workflow.set_query_handler("count_with", lambda extra: len(received) + extra)
    await workflow.wait_condition(lambda: len(received) >= needed)
    return received


@workflow.defn(name="SignalAsync")
async def signal_async() -> list[str]:
    """An async handler that runs an activity per signal."""
    greetings: list[str] = []

    async def on_name(name: str) -> None:
        greetings.append(await workflow.execute_activity(greet, name, start_to_close_timeout=10))

    workflow.set_signal_handler("name", on_name)
    await workflow.wait_condition(lambda: len(greetings) == 2)
    return greetings


ALL_WORKFLOWS += [approval, signal_async]


@activity.defn(name="ResumeFromHeartbeat")
def resume_from_heartbeat(gate: str) -> list[object]:
    """Attempt 1 heartbeats 1, 2, 3 then hangs; a later attempt returns what it reads back."""
    info = activity.info()
    if info.attempt == 1:
        for step in (1, 2, 3):
            activity.heartbeat(step)
        with _redis() as r:
            r.set(f"started:{gate}", 1)
        time.sleep(3)  # silent: no heartbeats
        return ["attempt 1 finished"]
    return [info.attempt, *info.heartbeat_details]


@activity.defn(name="Chatty")
def chatty(beats: int) -> int:
    for i in range(beats):
        activity.heartbeat(i)
    return beats


@activity.defn(name="WorkUntilCancelled")
async def work_until_cancelled(gate: str) -> str:
    with _redis() as r:
        r.set(f"started:{gate}", 1)
    try:
        while True:
            activity.heartbeat("working")
            await asyncio.sleep(0.05)
    except asyncio.CancelledError:
        with _redis() as r:
            r.set(f"cancelled:{gate}", 1)
        raise


@activity.defn(name="Compensate")
def compensate(what: str) -> str:
    _count("Compensate")
    return f"undid {what}"


@workflow.defn(name="HeartbeatResume")
async def heartbeat_resume(gate: str) -> list[object]:
    return await workflow.execute_activity(
        resume_from_heartbeat,
        gate,
        start_to_close_timeout=30,
        heartbeat_timeout=1,
        retry_policy=RetryPolicy(initial_interval=0.1),
    )


@workflow.defn(name="ChattyWorkflow")
async def chatty_workflow(beats: int) -> int:
    return await workflow.execute_activity(
        chatty, beats, start_to_close_timeout=30, heartbeat_timeout=10
    )


@workflow.defn(name="CancelWithCleanup")
async def cancel_with_cleanup(gate: str, wait: bool) -> str:
    from orchestrator import ActivityCancellationType

    kind = (
        ActivityCancellationType.WAIT_CANCELLATION_COMPLETED
        if wait
        else ActivityCancellationType.TRY_CANCEL
    )
    try:
        await workflow.execute_activity(
            work_until_cancelled,
            gate,
            start_to_close_timeout=60,
            heartbeat_timeout=5,
            cancellation_type=kind,
        )
    except asyncio.CancelledError:
        await workflow.execute_activity(compensate, gate, start_to_close_timeout=10)
        raise
    return "not cancelled"


@workflow.defn(name="CancelUnstarted")
async def cancel_unstarted() -> str:
    task = workflow.start_activity(
        "NobodyRunsThis", task_queue="nowhere", start_to_close_timeout=10
    )
    await workflow.sleep(0.2)
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        return "cancelled"
    return "finished"


@workflow.defn(name="ScheduleToStart")
async def schedule_to_start() -> str:
    try:
        await workflow.execute_activity(
            "NobodyRunsThis",
            task_queue="nowhere",
            start_to_close_timeout=10,
            schedule_to_start_timeout=0.3,
        )
    except ActivityError as err:
        return f"{err.type}: {err.failure.message}"
    return "started"


ALL_WORKFLOWS += [
    heartbeat_resume,
    chatty_workflow,
    cancel_with_cleanup,
    cancel_unstarted,
    schedule_to_start,
]
ALL_ACTIVITIES += [resume_from_heartbeat, chatty, work_until_cancelled, compensate]


@workflow.defn(name="Counter")
async def counter(n: int, limit: int) -> int:
    if n < limit:
        await workflow.execute_activity(echo, n, start_to_close_timeout=10)
        workflow.continue_as_new(n + 1, limit)
    return n


@workflow.defn(name="Versioned")
async def versioned(name: str, gate: str) -> list[str]:
    """The patched version: runs that pass the patch point under this code also echo."""
    out = [await workflow.execute_activity(greet, name, start_to_close_timeout=10)]
    if workflow.patched("add-echo"):
        out.append(await workflow.execute_activity(echo, "patched", start_to_close_timeout=10))
    out.append(await workflow.execute_activity(wait_for_gate, gate, start_to_close_timeout=10))
    return out


ALL_WORKFLOWS += [counter, versioned]


@activity.defn(name="AwaitHuman")
def await_human(name: str) -> str:
    """Hands its task token to the outside world and completes later, by token."""
    with _redis() as r:
        r.set(f"token:{name}", activity.info().task_token)
    activity.raise_complete_async()


@workflow.defn(name="HumanApproval")
async def human_approval(name: str) -> str:
    try:
        return await workflow.execute_activity(
            await_human,
            name,
            start_to_close_timeout=60,
            retry_policy=RetryPolicy(maximum_attempts=1),
        )
    except ActivityError as err:
        return f"rejected: {err.failure.message}"


ALL_WORKFLOWS += [human_approval]
ALL_ACTIVITIES += [await_human]


@workflow.defn(name="Parent")
async def parent(mode: str) -> object:
    from orchestrator.errors import ChildWorkflowError

    if mode == "result":
        return await workflow.execute_child_workflow(hello, "child")
    if mode == "fail":
        try:
            await workflow.execute_child_workflow(unhandled, "child boom")
        except ChildWorkflowError as err:
            assert err.failure is not None
            return [err.status, err.failure.type, err.failure.message]
    if mode == "counter":
        return await workflow.execute_child_workflow(counter, 0, 2)
    if mode == "gated":
        return await workflow.execute_child_workflow(gated, ["child-gate"], 1.5, id="gated-child")
    if mode in ("terminate", "abandon", "request_cancel"):
        handle = await workflow.start_child_workflow(
            approval, 1, id=f"orphan-{mode}", parent_close_policy=mode
        )
        return handle.id
    return "unknown mode"


ALL_WORKFLOWS += [parent]
