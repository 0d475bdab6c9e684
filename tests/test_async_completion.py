"""Async activity completion: an activity finishes later, completed by its task token."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator import Client, ConfigurationError
from orchestrator.errors import StaleTaskError

import defs
from helpers import eventually, run, running_worker

OPTIONS: dict[str, Any] = dict(
    task_queue="async", workflows=defs.ALL_WORKFLOWS, activities=defs.ALL_ACTIVITIES
)


def test_complete_and_fail_by_token(url: str) -> None:
    async def main() -> None:
        async with await Client.connect(url) as client, running_worker(client, **OPTIONS):
            yes = await client.start_workflow("HumanApproval", "yes", id="yes", task_queue="async")
            no = await client.start_workflow("HumanApproval", "no", id="no", task_queue="async")
            yes_token = await eventually(lambda: client.redis.get("token:yes"))
            no_token = await eventually(lambda: client.redis.get("token:no"))

            await client.get_async_activity_handle(yes_token).heartbeat("reviewing")
            await client.get_async_activity_handle(yes_token).complete("approved")
            await client.get_async_activity_handle(no_token).fail("not today")
            assert await yes.result(timeout=20) == "approved"
            assert await no.result(timeout=20) == "rejected: not today"

            # The attempt is closed: its token no longer changes anything.
            with pytest.raises(StaleTaskError, match="no longer current"):
                await client.get_async_activity_handle(yes_token).complete("again")

    run(main())


def test_malformed_token_is_a_clear_error(url: str) -> None:
    async def main() -> None:
        async with await Client.connect(url) as client:
            with pytest.raises(ConfigurationError, match="not a task token"):
                client.get_async_activity_handle("garbage!")

    run(main())
