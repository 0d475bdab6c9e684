"""Automatic pipelining of script calls.

Under load, many tasks of one worker report to Redis in the same instant. Each
call made through :class:`ScriptBatcher` joins a batch that is sent as one
pipeline on the next turn of the event loop: one connection checkout, one write
and one read for the whole batch instead of one each. A lone call goes out
just as fast as a direct one. Every call is still its own atomic script.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis

from . import scripts

_Call = tuple[scripts.Script, Sequence[Any], Sequence[Any], asyncio.Future[Any]]


class ScriptBatcher:
    """Sends the script calls made during one event-loop turn as one pipeline."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._pending: list[_Call] = []
        self._sending: set[asyncio.Task[None]] = set()

    def call(self, script: scripts.Script, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        """Queue one call; await the returned future for its reply."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if not self._pending:
            loop.call_soon(self._flush)
        self._pending.append((script, keys, args, future))
        return future

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        task = asyncio.get_running_loop().create_task(self._send(batch))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, batch: list[_Call]) -> None:
        try:
            replies = await scripts.run_pipeline(
                self.redis, [(script, list(keys), list(args)) for script, keys, args, _ in batch]
            )
        except BaseException as exc:  # the connection failed: every caller sees it and retries
            for *_, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (*_, future), reply in zip(batch, replies, strict=True):
            if future.done():
                continue
            if isinstance(reply, Exception):
                future.set_exception(reply)
            else:
                future.set_result(reply)
