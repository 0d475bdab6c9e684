"""Shared helpers for tests: running workers in-process and waiting for conditions."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from orchestrator import Client, Worker
from orchestrator.devserver import free_port as free_port  # re-exported for the tests

T = TypeVar("T")
ROOT = Path(__file__).resolve().parent.parent


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


@contextlib.asynccontextmanager
async def running_worker(client: Client, **options: Any) -> AsyncIterator[Worker]:
    """A worker running as a task of this loop, shut down (drained) on exit."""
    options.setdefault("poll_block", 0.2)
    options.setdefault("graceful_shutdown_timeout", 5.0)
    worker = Worker(client, **options)
    task = asyncio.create_task(worker.run(handle_signals=False))
    try:
        yield worker
    finally:
        worker.shutdown()
        await asyncio.wait_for(task, timeout=15)


async def eventually(
    check: Callable[[], Awaitable[T]], *, within: float = 15.0, interval: float = 0.05
) -> T:
    """Wait until ``check()`` returns something truthy; fail the test after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within} s")
        await asyncio.sleep(interval)


def events_of(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == kind]


async def returning(value: T) -> T:
    """``value`` as an awaitable, for :func:`eventually` checks that need no I/O."""
    return value


def wait_until(check: Callable[[], T], timeout: float = 20.0, what: str = "condition") -> T:
    """Blocking :func:`eventually`, for tests that drive processes rather than a loop."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"{what} not met within {timeout} s")


def spawn(
    processes: list[subprocess.Popen[str]],
    env: dict[str, str],
    *argv: str,
    log: Path | None = None,
) -> subprocess.Popen[str]:
    """Start ``python ARGV`` from the repository root, its output in ``log`` (or dropped);
    ``processes`` is the fixture that kills whatever is still running at the test's end."""
    with open(log, "w") if log else contextlib.nullcontext(subprocess.DEVNULL) as out:
        # The child keeps its own copy of the descriptor.
        proc = subprocess.Popen(
            [sys.executable, *argv],
            cwd=ROOT,
            env=env,
            text=True,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    processes.append(proc)
    return proc
