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
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from redis.asyncio import Redis

from . import history, scripts
from .connection import connect
from .converter import dumps, to_type
from .errors import (
    ConfigurationError,
    Failure,
    NamespaceMismatchError,
    WorkflowAlreadyStartedError,
    WorkflowFailureError,
    WorkflowNotFoundError,
)
from .keys import Keys
from .workflow import WorkflowDefinition

MAX_ID_LENGTH = 1000


def check_name(value: str, what: str) -> str:
    """Reject empty, overlong or non-string ids and names with a clear error."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"{what} must be a non-empty string")
    if len(value) > MAX_ID_LENGTH:
        raise ConfigurationError(f"{what} is longer than {MAX_ID_LENGTH} characters")
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
        }


def _ms_to_datetime(value: str | None) -> datetime | None:
    return datetime.fromtimestamp(int(value) / 1000, tz=UTC) if value else None


class Client:
    """A connection to one namespace. Create it with :meth:`connect`."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys

    @property
    def namespace(self) -> str:
        return self.keys.namespace

    @classmethod
    async def connect(
        cls, url: str | None = None, *, namespace: str = "default", shards: int | None = None
    ) -> Client:
        redis = await connect(url)
        try:
            return cls(redis, await namespace_keys(redis, namespace, shards))
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
    ) -> WorkflowHandle:
        """Start a run of ``workflow`` (a registered function or its name) with ``args``.

        Raises :class:`WorkflowAlreadyStartedError` if ``id`` has a running run.
        """
        name = workflow if isinstance(workflow, str) else WorkflowDefinition.of(workflow).name
        check_name(name, "workflow type")
        check_name(id, "workflow id")
        check_name(task_queue, "task queue")
        run_id = str(uuid.uuid4())
        attrs = dumps({"workflow_type": name, "task_queue": task_queue, "input": list(args)})
        k = self.keys
        reply = await scripts.START_WORKFLOW(
            self.redis,
            [
                k.workflow(id),
                k.run(id, run_id),
                k.history(id, run_id),
                k.workflow_tasks_for(task_queue, id),
            ],
            [id, run_id, name, task_queue, attrs],
        )
        if reply[0] == "ALREADY_STARTED":
            raise WorkflowAlreadyStartedError(id, reply[1])
        return WorkflowHandle(self, id, run_id)

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

    def get_workflow_handle(self, workflow_id: str, run_id: str | None = None) -> WorkflowHandle:
        """A handle on an existing workflow; without ``run_id``, its current run."""
        return WorkflowHandle(self, check_name(workflow_id, "workflow id"), run_id)


class WorkflowHandle:
    """A workflow run: its ids, its status and its result."""

    def __init__(self, client: Client, workflow_id: str, run_id: str | None) -> None:
        self.client = client
        self.id = workflow_id
        self._run_id = run_id

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

    async def _state(self) -> dict[str, str]:
        run_id = await self._resolve_run()
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

        Waits on the run's history stream with blocking reads, not by polling.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        state = await self._state()
        history_key = self.client.keys.history(self.id, state["run_id"])
        last_id = f"0-{state.get('last_event_id', 0)}"
        while state.get("status") == "RUNNING":
            block_ms = 5000
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"workflow {self.id!r} still running after {timeout} s")
                block_ms = max(1, min(block_ms, int(remaining * 1000)))
            reply = await self.client.redis.xread({history_key: last_id}, block=block_ms)
            if reply:
                entries = reply[0][1]
                last_id = entries[-1][0]
                if any(e["type"] in history.CLOSE_EVENTS for e in history.from_stream(entries)):
                    state = await self._state()
        return self._outcome(state, result_type)

    def _outcome(self, state: dict[str, str], result_type: Any) -> Any:
        status = state.get("status", "")
        if status == "COMPLETED":
            return to_type(orjson.loads(state.get("result") or "null"), result_type)
        raw = state.get("failure")
        failure = Failure.from_dict(orjson.loads(raw)) if raw else None
        raise WorkflowFailureError(self.id, status, failure)
