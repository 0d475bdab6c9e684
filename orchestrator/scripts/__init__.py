"""The Lua scripts, one per state transition, and the code that runs them.

Each ``.lua`` file in this folder is one atomic transition; shared helpers in
``lib/`` are pasted in where a script says ``--!include lib/<name>.lua``. The
text is assembled once at import; calls go by SHA (EVALSHA), and a script the
server no longer knows (after a restart or SCRIPT FLUSH) is loaded again and
the call repeated.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import NoScriptError

_HERE = Path(__file__).parent
_INCLUDE = re.compile(r"^--!include (\S+)$", re.MULTILINE)

KeyOrArg = str | bytes | int | float


def _assemble(path: Path) -> str:
    return _INCLUDE.sub(lambda m: (_HERE / m.group(1)).read_text(), path.read_text())


@dataclass(frozen=True, slots=True)
class Script:
    """One Lua script, identified by the SHA1 of its assembled text."""

    name: str
    text: str
    sha: str

    @classmethod
    def load(cls, name: str) -> Script:
        text = _assemble(_HERE / f"{name}.lua")
        return cls(name, text, hashlib.sha1(text.encode()).hexdigest())

    async def __call__(
        self, redis: Redis, keys: Sequence[KeyOrArg], args: Sequence[KeyOrArg]
    ) -> Any:
        try:
            return await redis.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            await redis.script_load(self.text)
            return await redis.evalsha(self.sha, len(keys), *keys, *args)

    def queue(self, pipe: Pipeline, keys: Sequence[KeyOrArg], args: Sequence[KeyOrArg]) -> None:
        """Add a call to a pipeline; run the pipeline with :func:`run_pipeline`."""
        pipe.evalsha(self.sha, len(keys), *keys, *args)


START_WORKFLOW = Script.load("start_workflow")
WORKFLOW_TASK_START = Script.load("workflow_task_start")
WORKFLOW_TASK_COMPLETE = Script.load("workflow_task_complete")
WORKFLOW_TASK_FAIL = Script.load("workflow_task_fail")
WORKFLOW_TASK_TIMER = Script.load("workflow_task_timer")
ACTIVITY_START = Script.load("activity_start")
ACTIVITY_COMPLETE = Script.load("activity_complete")
ACTIVITY_FAIL = Script.load("activity_fail")
ACTIVITY_TIMER = Script.load("activity_timer")
ACTIVITY_HEARTBEAT = Script.load("activity_heartbeat")
ACTIVITY_CANCEL = Script.load("activity_cancel")
REQUEST_CANCEL_WORKFLOW = Script.load("request_cancel_workflow")
TIMER_FIRE = Script.load("timer_fire")
SIGNAL_WORKFLOW = Script.load("signal_workflow")
TERMINATE_WORKFLOW = Script.load("terminate_workflow")
WORKFLOW_TIMEOUT = Script.load("workflow_timeout")
CHILD_STARTED = Script.load("child_started")
CHILD_CLOSED = Script.load("child_closed")
LIST_WORKFLOWS = Script.load("list_workflows")
PURGE_RUN = Script.load("purge_run")
TIMERS_DUE = Script.load("timers_due")
SCHEDULE_CREATE = Script.load("schedule_create")
SCHEDULES_DUE = Script.load("schedules_due")
SCHEDULE_ADVANCE = Script.load("schedule_advance")
SCHEDULE_ACTION_DONE = Script.load("schedule_action_done")
SCHEDULE_UPDATE = Script.load("schedule_update")
CONSUMER_LEAVE = Script.load("consumer_leave")

ALL = (
    START_WORKFLOW,
    WORKFLOW_TASK_START,
    WORKFLOW_TASK_COMPLETE,
    WORKFLOW_TASK_FAIL,
    WORKFLOW_TASK_TIMER,
    ACTIVITY_START,
    ACTIVITY_COMPLETE,
    ACTIVITY_FAIL,
    ACTIVITY_TIMER,
    ACTIVITY_HEARTBEAT,
    ACTIVITY_CANCEL,
    REQUEST_CANCEL_WORKFLOW,
    TIMER_FIRE,
    SIGNAL_WORKFLOW,
    TERMINATE_WORKFLOW,
    WORKFLOW_TIMEOUT,
    CHILD_STARTED,
    CHILD_CLOSED,
    LIST_WORKFLOWS,
    PURGE_RUN,
    TIMERS_DUE,
    SCHEDULE_CREATE,
    SCHEDULES_DUE,
    SCHEDULE_ADVANCE,
    SCHEDULE_ACTION_DONE,
    SCHEDULE_UPDATE,
    CONSUMER_LEAVE,
)


async def load_all(redis: Redis) -> None:
    """Register every script with the server, so the first calls go straight by SHA."""
    for script in ALL:
        await redis.script_load(script.text)


async def run_pipeline(
    redis: Redis, calls: Sequence[tuple[Script, list[Any], list[Any]]]
) -> list[Any]:
    """Run several script calls in one round trip; results (or exceptions) in order.

    Only the calls refused with NOSCRIPT are repeated, after loading the scripts:
    the others already ran and must not run twice.
    """
    results = await _pipelined(redis, calls)
    missing = [i for i, r in enumerate(results) if isinstance(r, NoScriptError)]
    if missing:
        await load_all(redis)
        retried = await _pipelined(redis, [calls[i] for i in missing])
        for i, result in zip(missing, retried, strict=True):
            results[i] = result
    return results


async def _pipelined(
    redis: Redis, calls: Sequence[tuple[Script, list[Any], list[Any]]]
) -> list[Any]:
    async with redis.pipeline(transaction=False) as pipe:
        for script, keys, args in calls:
            script.queue(pipe, keys, args)
        return list(await pipe.execute(raise_on_error=False))
