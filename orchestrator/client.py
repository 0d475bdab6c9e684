"""The client: start workflows, wait for their results, describe them.

client = await Client.connect()            # ORCHESTRATOR_REDIS_URL or localhost
handle = await client.start_workflow("Workflow", "Temporal",
                                     id="hello_world_workflowID",
                                     task_queue="hello-world")
print(await handle.result())
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import orjson
from redis.asyncio import Redis

from . import history, retention, scripts, visibility
from .connection import connect, redis_url
from .converter import dumps, to_type
from .errors import (
    ConfigurationError,
    Failure,
    NamespaceMismatchError,
    QueryError,
    WorkflowAlreadyStartedError,
    WorkflowFailureError,
    WorkflowNotFoundError,
    WorkflowNotRunningError,
    WorkflowResultTimeoutError,
)
from .keys import Keys
from .retry import to_seconds
from .task_token import AsyncActivityHandle
from .timers import Timer
from .visibility import WorkflowPage
from .workflow import WorkflowDefinition

if TYPE_CHECKING:
    from .schedules import ScheduleClient

MAX_ID_LENGTH = 1000
CONFLICT_POLICIES = ("fail", "use_existing", "terminate_existing")
REUSE_POLICIES = ("allow_duplicate", "allow_duplicate_failed_only", "reject_duplicate")


@dataclass(frozen=True, slots=True)
class _StartOptions:
    conflict: str = "fail"
    reuse: str = "allow_duplicate"
    run_timeout_ms: int = 0
    execution_timeout_ms: int = 0
    run_id: str = ""  # chosen by the caller: a child's run id is fixed before it starts
    parent_json: bytes = b""


def _ms(seconds: float | None) -> int:
    return int((seconds or 0) * 1000)


def _check_choice(value: str, choices: tuple[str, ...], what: str) -> None:
    if value not in choices:
        raise ConfigurationError(f"{what} must be one of {', '.join(choices)} (got {value!r})")


def check_name(value: str, what: str) -> str:
    """Reject empty, overlong or non-string ids and names with a clear error."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"{what} must be a non-empty string")
    if len(value) > MAX_ID_LENGTH:
        raise ConfigurationError(f"{what} is longer than {MAX_ID_LENGTH} characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in value) or value != value.strip():
        raise ConfigurationError(
            f"{what} {value!r} must not contain control characters or surrounding spaces"
        )
    return value


async def namespace_keys(redis: Redis, namespace: str, shards: int | None) -> Keys:
    """Keys for a namespace, agreeing with the shard count recorded in Redis.

    The first process to use a namespace records its shard count; every later
    one must use the same, since the count decides where each workflow lives.
    """
    check_name(namespace, "namespace")
    if shards is not None and not 1 <= shards <= 1024:
        raise ConfigurationError("shards must be between 1 and 1024")
    meta = Keys(namespace).meta()
    await redis.hsetnx(meta, "shards", shards or 1)
    recorded = int(await redis.hget(meta, "shards") or 1)
    if shards is not None and shards != recorded:
        raise NamespaceMismatchError(
            f"namespace {namespace!r} has {recorded} shard(s), not {shards}"
        )
    return Keys(namespace, recorded)


@dataclass(frozen=True, slots=True)
class WorkflowDescription:
    workflow_id: str
    run_id: str
    workflow_type: str
    task_queue: str
    status: str
    start_time: datetime | None
    close_time: datetime | None
    history_length: int
    failure: Failure | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "workflow_id": self.workflow_id,
            "run_id": self.run_id,
            "workflow_type": self.workflow_type,
            "task_queue": self.task_queue,
            "status": self.status,
            "start_time": self.start_time.isoformat() if self.start_time else None,
            "close_time": self.close_time.isoformat() if self.close_time else None,
            "history_length": self.history_length,
            "failure": self.failure.to_dict() if self.failure else None,
        }


def _ms_to_datetime(value: str | None) -> datetime | None:
    return datetime.fromtimestamp(int(value) / 1000, tz=UTC) if value else None


class Client:
    """A connection to one namespace. Create it with :meth:`connect`."""

    def __init__(self, redis: Redis, keys: Keys, url: str | None = None) -> None:
        self.redis = redis
        self.keys = keys
        self.url = redis_url(url)  # what it connected to, for tools that open their own

    @property
    def namespace(self) -> str:
        return self.keys.namespace

    @property
    def schedules(self) -> ScheduleClient:
        """Create, list, describe, pause, unpause, trigger and delete schedules."""
        from .schedules import ScheduleClient  # imported here: schedules.py imports this module

        return ScheduleClient(self)

    @classmethod
    async def connect(
        cls,
        url: str | None = None,
        *,
        namespace: str = "default",
        shards: int | None = None,
        wait: float = 0.0,
    ) -> Client:
        """Connect to Redis; with ``wait``, keep trying an unreachable server that long."""
        redis = await connect(url, wait=wait)
        try:
            return cls(redis, await namespace_keys(redis, namespace, shards), url)
        except BaseException:
            await redis.aclose()
            raise

    async def close(self) -> None:
        await self.redis.aclose()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start_workflow(
        self,
        workflow: Callable[..., Any] | str,
        *args: Any,
        id: str,
        task_queue: str,
        id_conflict_policy: str = "fail",
        id_reuse_policy: str = "allow_duplicate",
        execution_timeout: timedelta | float | None = None,
        run_timeout: timedelta | float | None = None,
    ) -> WorkflowHandle:
        """Start a run of ``workflow`` (a registered function or its name) with ``args``.

        When ``id`` has a running run, ``id_conflict_policy`` decides: ``"fail"``
        (raise :class:`WorkflowAlreadyStartedError`), ``"use_existing"`` (return a
        handle on it: starting twice is idempotent) or ``"terminate_existing"``.
        When its last run is closed, ``id_reuse_policy`` decides: ``"allow_duplicate"``,
        ``"allow_duplicate_failed_only"`` or ``"reject_duplicate"``.
        ``run_timeout`` bounds this run; ``execution_timeout`` bounds it together with
        the runs that continue it as new. A run that times out closes as TIMED_OUT.
        """
        options = _StartOptions(
            id_conflict_policy,
            id_reuse_policy,
            _ms(to_seconds(run_timeout, "run_timeout")),
            _ms(to_seconds(execution_timeout, "execution_timeout")),
        )
        return await self._start(workflow, args, id, task_queue, None, options)

    async def signal_with_start(
        self,
        workflow: Callable[..., Any] | str,
        *args: Any,
        id: str,
        task_queue: str,
        signal: str,
        signal_args: Sequence[Any] = (),
    ) -> WorkflowHandle:
        """Signal the running run of ``id``, or start one and deliver the signal to it first."""
        check_name(signal, "signal name")
        attrs = dumps({"name": signal, "input": list(signal_args)})
        return await self._start(workflow, args, id, task_queue, attrs, _StartOptions())

    async def _start(
        self,
        workflow: Callable[..., Any] | str,
        args: Sequence[Any],
        workflow_id: str,
        task_queue: str,
        signal_attrs: bytes | None,
        options: _StartOptions,
    ) -> WorkflowHandle:
        name = workflow if isinstance(workflow, str) else WorkflowDefinition.of(workflow).name
        check_name(name, "workflow type")
        check_name(workflow_id, "workflow id")
        check_name(task_queue, "task queue")
        conflict, reuse = options.conflict, options.reuse
        _check_choice(conflict, CONFLICT_POLICIES, "id_conflict_policy")
        _check_choice(reuse, REUSE_POLICIES, "id_reuse_policy")
        run_id = options.run_id or str(uuid.uuid4())
        attrs = dumps(
            {
                "workflow_type": name,
                "task_queue": task_queue,
                "input": list(args),
                "workflow_id": workflow_id,
                "run_id": run_id,
            }
        )
        k, wid = self.keys, workflow_id
        new_keys = [
            k.run(wid, run_id),
            k.history(wid, run_id),
            k.workflow_tasks_for(task_queue, wid),
        ]
        # Acting on a running run (signal it, use or terminate it) needs its keys; a
        # plain start does not, and skips the read.
        look = signal_attrs is not None or conflict != "fail"
        for _ in range(10):
            seen, seen_queue = ("", "")
            if look:
                seen, seen_queue = await self.redis.hmget(k.workflow(wid), "run_id", "task_queue")
            old_keys = new_keys
            if seen:
                old_keys = [
                    k.run(wid, seen),
                    k.history(wid, seen),
                    k.workflow_tasks_for(seen_queue or task_queue, wid),
                ]
            reply = await scripts.START_WORKFLOW(
                self.redis,
                [
                    k.workflow(wid),
                    *new_keys,
                    *old_keys,
                    k.timers_for(wid),
                    k.children(wid, seen or run_id),
                    *k.visibility_for(wid),
                    k.visibility_by_type(k.shard_of(wid), name),
                    k.visibility_by_queue(k.shard_of(wid), task_queue),
                    k.visibility_by_status(k.shard_of(wid), "TERMINATED"),
                    k.stats(k.shard_of(wid)),
                    k.started_queues(k.shard_of(wid)),
                ],
                [
                    wid,
                    run_id,
                    name,
                    task_queue,
                    attrs,
                    signal_attrs or "",
                    seen or "",
                    conflict,
                    reuse,
                    options.run_timeout_ms,
                    options.execution_timeout_ms,
                    Timer("wf_timeout", wid, run_id, 0, "", "", task_queue).member(),
                    options.parent_json,
                ],
            )
            outcome = reply[0]
            if outcome == "RACE":
                look = True
                continue
            if outcome == "ALREADY_STARTED":
                raise WorkflowAlreadyStartedError(wid, reply[1])
            if outcome == "REJECTED":
                raise WorkflowAlreadyStartedError(
                    wid, "", f"its last run ended {reply[1]} and the reuse policy is {reuse}"
                )
            existing = outcome == "EXISTING"
            handle = WorkflowHandle(self, wid, reply[1] if existing else run_id)
            handle.started_new = not existing
            return handle
        raise WorkflowAlreadyStartedError(wid, "", "its runs kept changing while starting")

    async def execute_workflow(
        self,
        workflow: Callable[..., Any] | str,
        *args: Any,
        id: str,
        task_queue: str,
        result_type: Any = None,
    ) -> Any:
        """Start a workflow and wait for its result."""
        handle = await self.start_workflow(workflow, *args, id=id, task_queue=task_queue)
        return await handle.result(result_type=result_type)

    async def list_workflows(
        self,
        *,
        page_size: int = 100,
        next_page_token: str | None = None,
        **where: Any,
    ) -> WorkflowPage:
        """A page of runs, newest first; pass ``next_page_token`` back for the next page.

        Filters (all optional): ``status``, ``workflow_type``, ``task_queue``,
        ``started_after``/``started_before``, ``closed_after``/``closed_before``
        (aware datetimes). With close-time bounds, runs come newest closed first.
        """
        return await visibility.list_workflows(
            self, visibility.ListFilter(**where), page_size, next_page_token
        )

    async def set_retention(self, period: timedelta) -> None:
        """Keep this namespace's closed runs for ``period``, then remove them."""
        await retention.set_retention(self, period)

    async def retention(self) -> timedelta:
        """How long this namespace keeps closed runs (7 days unless set)."""
        return await retention.get_retention(self)

    async def count_workflows(self, **where: Any) -> int:
        """How many runs match the filters of :meth:`list_workflows`."""
        return await visibility.count_workflows(self, visibility.ListFilter(**where))

    def get_async_activity_handle(self, task_token: str) -> AsyncActivityHandle:
        """A handle to complete, fail or heartbeat an activity attempt by its task token."""
        return AsyncActivityHandle(self, task_token)

    def get_workflow_handle(self, workflow_id: str, run_id: str | None = None) -> WorkflowHandle:
        """A handle on an existing workflow; without ``run_id``, its current run."""
        return WorkflowHandle(self, check_name(workflow_id, "workflow id"), run_id)


class WorkflowHandle:
    """A workflow run: its ids, its status and its result."""

    def __init__(self, client: Client, workflow_id: str, run_id: str | None) -> None:
        self.client = client
        self.id = workflow_id
        self._run_id = run_id
        # False when a start returned the id's running run instead (use_existing, or
        # signal-with-start on a running workflow).
        self.started_new = True

    @property
    def run_id(self) -> str | None:
        return self._run_id

    async def _resolve_run(self) -> str:
        if self._run_id is None:
            run_id = await self.client.redis.hget(self.client.keys.workflow(self.id), "run_id")
            if not run_id:
                raise WorkflowNotFoundError(f"workflow {self.id!r} not found")
            self._run_id = run_id
        return self._run_id

    async def _state(self, run_id: str | None = None) -> dict[str, str]:
        run_id = run_id or await self._resolve_run()
        state = await self.client.redis.hgetall(self.client.keys.run(self.id, run_id))
        if not state:
            raise WorkflowNotFoundError(f"workflow {self.id!r} run {run_id} not found")
        return state

    async def describe(self) -> WorkflowDescription:
        state = await self._state()
        return WorkflowDescription(
            workflow_id=self.id,
            run_id=state["run_id"],
            workflow_type=state.get("workflow_type", ""),
            task_queue=state.get("task_queue", ""),
            status=state.get("status", ""),
            start_time=_ms_to_datetime(state.get("started_at")),
            close_time=_ms_to_datetime(state.get("closed_at")),
            history_length=int(state.get("last_event_id", 0)),
            failure=Failure.from_dict(orjson.loads(state["failure"]))
            if state.get("failure")
            else None,
        )

    async def signal(self, name: str, *args: Any) -> None:
        """Send signal ``name`` with ``args`` to the run; its handler runs in the workflow."""
        check_name(name, "signal name")
        attrs = dumps({"name": name, "input": list(args)})
        k, redis = self.client.keys, self.client.redis
        current, queue = await redis.hmget(k.workflow(self.id), "run_id", "task_queue")
        if not current:
            raise WorkflowNotFoundError(f"workflow {self.id!r} not found")
        run_id = self._run_id or current
        reply = await scripts.SIGNAL_WORKFLOW(
            redis,
            [
                k.workflow(self.id),
                k.run(self.id, run_id),
                k.history(self.id, run_id),
                k.workflow_tasks_for(queue, self.id),
            ],
            [run_id, attrs],
        )
        if reply[0] != "OK":
            raise WorkflowNotRunningError(
                f"workflow {self.id!r} run {run_id} is not running; nothing was signalled"
            )

    async def query(
        self,
        name: str,
        *args: Any,
        timeout: float = 10.0,  # noqa: ASYNC109 - bounds each blocking read
        result_type: Any = None,
    ) -> Any:
        """Ask the run's workers for query ``name``; raises :class:`QueryError` on no answer."""
        check_name(name, "query name")
        state = await self._state()
        k, redis, queue = self.client.keys, self.client.redis, state.get("task_queue", "")
        reply_key = k.query_reply(uuid.uuid4().hex)
        stream = k.query_tasks(queue, k.shard_of(self.id))
        # Bounded: queries nobody reads (no worker on the queue) must not pile up.
        entry_id = await redis.xadd(
            stream,
            {"w": self.id, "r": state["run_id"], "q": name, "a": dumps(list(args)), "k": reply_key},
            maxlen=1000,
            approximate=True,
        )
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            popped = await redis.blpop([reply_key], timeout=min(remaining, 5.0))
            if popped:
                answer = orjson.loads(popped[1])
                if "error" in answer:
                    raise QueryError(
                        f"query {name!r} of workflow {self.id!r} failed: {answer['error']}"
                    )
                return to_type(answer["result"], result_type)
        await redis.xdel(stream, entry_id)
        raise QueryError(
            f"no worker answered query {name!r} of workflow {self.id!r} within {timeout:g} s: "
            f"is a worker running for task queue {queue!r}?"
        )

    async def cancel(self, reason: str = "") -> None:
        """Ask the run to cancel: its code sees ``CancelledError`` and may clean up first."""
        state = await self._state()
        run_id, k = state["run_id"], self.client.keys
        reply = await scripts.REQUEST_CANCEL_WORKFLOW(
            self.client.redis,
            [
                k.run(self.id, run_id),
                k.history(self.id, run_id),
                k.workflow_tasks_for(state.get("task_queue", ""), self.id),
            ],
            [dumps({"reason": reason})],
        )
        if reply[0] == "NOT_RUNNING":
            raise WorkflowNotRunningError(
                f"workflow {self.id!r} run {run_id} is already closed ({reply[1].lower()})"
            )

    async def terminate(self, reason: str = "") -> None:
        """End the run at once, without running its code."""
        run_id = await self._resolve_run()
        k = self.client.keys
        reply = await scripts.TERMINATE_WORKFLOW(
            self.client.redis,
            [
                k.workflow(self.id),
                k.run(self.id, run_id),
                k.history(self.id, run_id),
                k.children(self.id, run_id),
                k.timers_for(self.id),
                *k.closing_visibility(self.id, "TERMINATED"),
            ],
            [run_id, dumps({"reason": reason})],
        )
        if reply[0] != "OK":
            raise WorkflowNotRunningError(
                f"workflow {self.id!r} run {run_id} is already closed ({reply[1].lower()})"
            )

    async def history(self) -> list[history.Event]:
        """Every event of the run, oldest first."""
        run_id = await self._resolve_run()
        entries = await self.client.redis.xrange(self.client.keys.history(self.id, run_id))
        return history.from_stream(entries)

    async def result(
        self,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - bounds each blocking read
        result_type: Any = None,
    ) -> Any:
        """Wait for the run to close; return its result or raise :class:`WorkflowFailureError`.

        Follows continue-as-new to the run that finally closes. Waits on each run's
        history stream with blocking reads, not by polling.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        state = await self._state()
        while True:
            state = await self._wait_closed(state, deadline)
            if state.get("status") != "CONTINUED_AS_NEW":
                return self._outcome(state, result_type)
            state = await self._state(state["continued_to"])

    async def _wait_closed(self, state: dict[str, str], deadline: float | None) -> dict[str, str]:
        history_key = self.client.keys.history(self.id, state["run_id"])
        last_id = f"0-{state.get('last_event_id', 0)}"
        while state.get("status") == "RUNNING":
            block_ms = 5000
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise WorkflowResultTimeoutError(
                        f"workflow {self.id!r} is still running; stopped waiting for its result"
                    )
                block_ms = max(1, min(block_ms, int(remaining * 1000)))
            reply = await self.client.redis.xread({history_key: last_id}, block=block_ms)
            if reply:
                entries = reply[0][1]
                last_id = entries[-1][0]
                if any(e["type"] in history.CLOSE_EVENTS for e in history.from_stream(entries)):
                    state = await self._state(state["run_id"])
        return state

    def _outcome(self, state: dict[str, str], result_type: Any) -> Any:
        status = state.get("status", "")
        if status == "COMPLETED":
            return to_type(orjson.loads(state.get("result") or "null"), result_type)
        raw = state.get("failure")
        failure = Failure.from_dict(orjson.loads(raw)) if raw else None
        raise WorkflowFailureError(self.id, status, failure)
