"""Members of the per-shard due-time set, and how each is fired.

A member names what falls due: ``[kind, workflow id, run id, seq, token,
activity task queue, workflow task queue]`` as JSON. Scripts store the member
they schedule so that a later transition can remove it exactly; every member
is built here, so Python and Lua never disagree on its spelling.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import orjson

from . import scripts
from .keys import Keys

ACTIVITY_KINDS = frozenset({"stc", "hb", "s2s", "s2c", "retry"})
WORKFLOW_TASK_KINDS = {"wft_timeout": "timeout", "wft_retry": "retry"}


@dataclass(frozen=True, slots=True)
class Timer:
    kind: str
    workflow_id: str
    run_id: str
    seq: int = 0
    token: str = ""
    activity_queue: str = ""
    workflow_queue: str = ""
    raw: str = field(default="", compare=False)  # the member as stored, when parsed

    def member(self) -> str:
        if self.raw:
            return self.raw
        return orjson.dumps(
            [
                self.kind,
                self.workflow_id,
                self.run_id,
                self.seq,
                self.token,
                self.activity_queue,
                self.workflow_queue,
            ]
        ).decode()

    @classmethod
    def parse(cls, member: str | bytes) -> Timer:
        kind, workflow_id, run_id, seq, token, activity_queue, workflow_queue = orjson.loads(member)
        raw = member if isinstance(member, str) else member.decode()
        return cls(kind, workflow_id, run_id, int(seq), token, activity_queue, workflow_queue, raw)

    def retry(self) -> Timer:
        """The member that dispatches the next attempt of this timer's activity."""
        return Timer(
            "retry",
            self.workflow_id,
            self.run_id,
            self.seq,
            "",
            self.activity_queue,
            self.workflow_queue,
        )

    def fire_call(self, keys: Keys) -> tuple[scripts.Script, list[Any], list[Any]]:
        """The script call that fires this timer (the script removes the member)."""
        wid, rid = self.workflow_id, self.run_id
        timers_key = keys.timers_for(wid)
        wft_stream = keys.workflow_tasks_for(self.workflow_queue, wid)
        if self.kind in ACTIVITY_KINDS:
            return (
                scripts.ACTIVITY_TIMER,
                [
                    keys.activity(wid, rid, self.seq),
                    keys.run(wid, rid),
                    keys.history(wid, rid),
                    wft_stream,
                    keys.activity_tasks_for(self.activity_queue, wid),
                    timers_key,
                ],
                [self.member(), self.kind, self.token, random.random(), self.retry().member()],
            )
        if self.kind == "wf_timeout":
            return (
                scripts.WORKFLOW_TIMEOUT,
                [
                    keys.run(wid, rid),
                    keys.history(wid, rid),
                    keys.workflow(wid),
                    timers_key,
                    keys.children(wid, rid),
                    *keys.closing_visibility(wid, "TIMED_OUT"),
                ],
                [self.member()],
            )
        if self.kind == "timer":
            return (
                scripts.TIMER_FIRE,
                [keys.run(wid, rid), keys.history(wid, rid), wft_stream, timers_key],
                [self.member(), self.seq],
            )
        mode = WORKFLOW_TASK_KINDS[self.kind]
        return (
            scripts.WORKFLOW_TASK_TIMER,
            [keys.run(wid, rid), keys.history(wid, rid), wft_stream, timers_key],
            [self.member(), mode, self.token],
        )
