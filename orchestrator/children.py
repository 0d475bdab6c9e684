"""Child workflows across shards: starting them, reporting their end, closing with the parent.

A child lives on the shard of its own workflow id, usually not its parent's, so
no single script can touch both. Each step that crosses over is a timer due at
once on the shard that asks for it; a worker fires it as two transitions, one on
each side, and removes the timer last. Every step is idempotent (the child's run
id is fixed in advance; each side checks the child's recorded state), so a worker
dying between the two halves only means another worker repeats the step.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import orjson

from . import scripts
from .converter import dumps
from .errors import WorkflowAlreadyStartedError, WorkflowNotFoundError, WorkflowNotRunningError
from .timers import Timer

if TYPE_CHECKING:
    from .client import Client

logger = logging.getLogger(__name__)

CHILD_KINDS = frozenset({"child_start", "child_closed", "parent_closed"})
RETRY_MS = 100


class ChildCoordinator:
    """Fires the child-workflow timers of any shard."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.keys = client.keys

    async def fire(self, timer: Timer) -> str:
        if timer.kind == "child_start":
            return await self._start(timer)
        if timer.kind == "child_closed":
            return await self._report_closed(timer)
        return await self._apply_parent_close_policy(timer)

    async def _child_state(self, timer: Timer) -> dict[str, Any] | None:
        raw = await self.client.redis.hget(
            self.keys.children(timer.workflow_id, timer.run_id), str(timer.seq)
        )
        return orjson.loads(raw) if raw else None

    async def _drop(self, timer: Timer) -> str:
        await self.client.redis.zrem(self.keys.timers_for(timer.workflow_id), timer.member())
        return "STALE"

    async def _start(self, timer: Timer) -> str:
        """Start the child on its shard, then record the outcome on the parent's."""
        from .client import _StartOptions  # the client module imports this one

        child = await self._child_state(timer)
        if child is None:
            return await self._drop(timer)
        parent_key = self.keys.run(timer.workflow_id, timer.run_id)
        outcome, cause = "started", ""
        if await self.client.redis.hget(parent_key, "status") != "RUNNING":
            outcome, cause = "failed", "the parent closed before the child started"
        else:
            parent = dumps(
                {
                    "workflow_id": timer.workflow_id,
                    "run_id": timer.run_id,
                    "seq": timer.seq,
                    "task_queue": timer.workflow_queue,
                }
            )
            try:
                await self.client._start(
                    child["workflow_type"],
                    child["input"],
                    child["workflow_id"],
                    child["task_queue"],
                    None,
                    _StartOptions(run_id=child["run_id"], parent_json=parent),
                )
            except WorkflowAlreadyStartedError as err:
                outcome, cause = "failed", str(err)
        k, wid, rid = self.keys, timer.workflow_id, timer.run_id
        reply = await scripts.CHILD_STARTED(
            self.client.redis,
            [
                k.children(wid, rid),
                k.run(wid, rid),
                k.history(wid, rid),
                k.workflow_tasks_for(timer.workflow_queue, wid),
                k.timers_for(wid),
            ],
            [timer.member(), timer.seq, outcome, child["run_id"], cause],
        )
        return f"{outcome.upper()}:{reply[0]}"

    async def _report_closed(self, timer: Timer) -> str:
        """Tell the parent how its child (this timer's run) closed, then drop the timer."""
        k, redis = self.keys, self.client.redis
        state = await redis.hgetall(k.run(timer.workflow_id, timer.run_id))
        if not state.get("parent"):
            return await self._drop(timer)
        parent = orjson.loads(state["parent"])
        pwid, prid = parent["workflow_id"], parent["run_id"]
        status = state.get("status", "")
        payload = state.get("result") if status == "COMPLETED" else state.get("failure")
        reply = await scripts.CHILD_CLOSED(
            redis,
            [
                k.children(pwid, prid),
                k.run(pwid, prid),
                k.history(pwid, prid),
                k.workflow_tasks_for(parent["task_queue"], pwid),
            ],
            [parent["seq"], timer.workflow_id, status, payload or "null"],
        )
        if reply[0] == "NOT_STARTED":
            # The parent has not recorded the start yet: look again in a moment.
            next_try = int(time.time() * 1000) + RETRY_MS
            await redis.zadd(k.timers_for(timer.workflow_id), {timer.member(): next_try}, xx=True)
            return "NOT_STARTED"
        await redis.zrem(k.timers_for(timer.workflow_id), timer.member())
        return str(reply[0])

    async def _apply_parent_close_policy(self, timer: Timer) -> str:
        """The parent closed: terminate or cancel this child, as its policy says."""
        child = await self._child_state(timer)
        if child is not None and child["status"] == "started":
            handle = self.client.get_workflow_handle(child["workflow_id"])
            reason = f"parent {timer.workflow_id!r} closed"
            try:
                if child["policy"] == "terminate":
                    await handle.terminate(reason)
                elif child["policy"] == "request_cancel":
                    await handle.cancel(reason)
            except (WorkflowNotRunningError, WorkflowNotFoundError):
                pass  # it closed on its own meanwhile
        await self.client.redis.zrem(self.keys.timers_for(timer.workflow_id), timer.member())
        return "OK"
