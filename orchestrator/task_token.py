"""Task tokens: a handle on one activity attempt that outlives the worker running it.

An activity that cannot finish within its own call (it waits for a human, or for
another system's callback) hands its token out and calls
``activity.raise_complete_async()``. Whoever later holds the token completes or
fails the attempt with :class:`AsyncActivityHandle`; the same fencing applies as
for a worker's report, so a token of an attempt that timed out is refused.
"""

from __future__ import annotations

import base64
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from . import scripts
from .converter import dumps, failure_from_exception
from .errors import ConfigurationError, Failure, StaleTaskError
from .timers import Timer

if TYPE_CHECKING:
    from .client import Client


@dataclass(frozen=True, slots=True)
class TaskToken:
    namespace: str
    workflow_id: str
    run_id: str
    seq: int
    entry_id: str
    activity_queue: str
    workflow_queue: str

    def encode(self) -> str:
        raw = orjson.dumps(
            [
                self.namespace,
                self.workflow_id,
                self.run_id,
                self.seq,
                self.entry_id,
                self.activity_queue,
                self.workflow_queue,
            ]
        )
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> TaskToken:
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            ns, wid, rid, seq, entry, queue, wqueue = orjson.loads(raw)
            return cls(ns, wid, rid, int(seq), entry, queue, wqueue)
        except (ValueError, TypeError) as exc:
            raise ConfigurationError(f"not a task token: {token[:40]!r}") from exc


class AsyncActivityHandle:
    """Completes, fails or heartbeats an activity attempt by its task token."""

    def __init__(self, client: Client, token: str) -> None:
        self.client = client
        self.token = TaskToken.decode(token)
        if self.token.namespace != client.namespace:
            raise ConfigurationError(
                f"the token belongs to namespace {self.token.namespace!r}, not {client.namespace!r}"
            )

    def _keys(self) -> list[str]:
        k, t = self.client.keys, self.token
        return [
            k.activity(t.workflow_id, t.run_id, t.seq),
            k.run(t.workflow_id, t.run_id),
            k.history(t.workflow_id, t.run_id),
            k.workflow_tasks_for(t.workflow_queue, t.workflow_id),
            k.timers_for(t.workflow_id),
        ]

    def _check(self, reply: Any, what: str) -> None:
        if reply[0] == "STALE":
            raise StaleTaskError(
                f"cannot {what}: the activity attempt is no longer current "
                "(it timed out, was cancelled, or its workflow closed)"
            )

    async def complete(self, result: Any = None) -> None:
        reply = await scripts.ACTIVITY_COMPLETE(
            self.client.redis, self._keys(), [self.token.entry_id, dumps(result)]
        )
        self._check(reply, "complete it")

    async def fail(self, error: BaseException | str, *, non_retryable: bool = False) -> None:
        """Fail the attempt; it is retried as its retry policy says."""
        if isinstance(error, BaseException):
            failure = failure_from_exception(error)
        else:
            failure = Failure("AsyncActivityFailure", error, non_retryable=non_retryable)
        t = self.token
        retry = Timer(
            "retry", t.workflow_id, t.run_id, t.seq, "", t.activity_queue, t.workflow_queue
        )
        reply = await scripts.ACTIVITY_FAIL(
            self.client.redis,
            self._keys(),
            [
                t.entry_id,
                dumps(failure.to_dict()),
                failure.type,
                "1" if failure.non_retryable or non_retryable else "0",
                random.random(),
                retry.member(),
            ],
        )
        self._check(reply, "fail it")

    async def heartbeat(self, *details: Any) -> bool:
        """Record progress; returns True if the workflow asked the activity to stop."""
        t = self.token
        reply = await scripts.ACTIVITY_HEARTBEAT(
            self.client.redis,
            [
                self.client.keys.activity(t.workflow_id, t.run_id, t.seq),
                self.client.keys.timers_for(t.workflow_id),
            ],
            [t.entry_id, dumps(list(details)), 0, ""],
        )
        self._check(reply, "heartbeat")
        return bool(int(reply[1]))
