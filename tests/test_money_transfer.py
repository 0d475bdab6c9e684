"""The money transfer sample (workers/money_transfer.py): a saga whose books always balance.

Every test checks the balances exactly, not only their total, so a withdrawal or deposit made
twice shows up even when another mistake would hide it from the sum.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

# The sample lives outside the tests; import it from the repository root.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from orchestrator import ApplicationError, Client, WorkflowFailureError
from workers.money_transfer import (
    APPLIED,
    BALANCES,
    CLOSED,
    TASK_QUEUE,
    delay_key,
    deposit,
    flaky_key,
    money_transfer,
    refund,
    withdraw,
)

from helpers import events_of, run, running_worker, spawn, wait_until

ROOT = Path(__file__).resolve().parent.parent
OPENING = {"alice": 10_000, "bob": 5_000, "carol": 0}
TOTAL = sum(OPENING.values())


@pytest.fixture
def bank(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[redis.Redis]:
    """The bank's Redis with alice, bob and carol's accounts open; carol's is closed."""
    monkeypatch.setenv("ORCHESTRATOR_REDIS_URL", redis_url)
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    r.hset(BALANCES, mapping=OPENING)
    r.sadd(CLOSED, "carol")
    yield r
    r.close()


def balances(bank: redis.Redis) -> dict[str, int]:
    return {account: int(cents) for account, cents in bank.hgetall(BALANCES).items()}


def transfer(
    source: str, target: str, amount: int, reference: str = "t-1"
) -> tuple[Any, list[dict[str, Any]]]:
    """Run one transfer on an in-process worker; return its result (or error) and history."""

    async def main() -> tuple[Any, list[dict[str, Any]]]:
        async with (
            await Client.connect() as client,
            running_worker(
                client,
                task_queue=TASK_QUEUE,
                workflows=[money_transfer],
                activities=[withdraw, deposit, refund],
            ),
        ):
            handle = await client.start_workflow(
                "MoneyTransfer",
                source,
                target,
                amount,
                reference,
                id=reference,
                task_queue=TASK_QUEUE,
            )
            try:
                result: Any = await handle.result(timeout=30)
            except WorkflowFailureError as err:
                result = err
            return result, await handle.history()

    return run(main())


def attempts(history: list[dict[str, Any]], seq: int) -> list[int]:
    """Attempt numbers of the activity ``seq`` (1 withdraw, 2 deposit, 3 refund) that started."""
    started = events_of(history, "ActivityTaskStarted")
    return [e["attrs"]["attempt"] for e in started if e["attrs"]["seq"] == seq]


def test_transfer_moves_the_money(bank: redis.Redis) -> None:
    result, history = transfer("alice", "bob", 2_500)

    assert result == "moved 2500 cents from alice to bob (t-1)"
    assert balances(bank) == {"alice": 7_500, "bob": 7_500, "carol": 0}
    assert bank.smembers(APPLIED) == {"t-1:withdraw", "t-1:deposit"}
    assert (attempts(history, 1), attempts(history, 2), attempts(history, 3)) == ([1], [1], [])


def test_insufficient_funds_moves_nothing(bank: redis.Redis) -> None:
    error, history = transfer("bob", "alice", 5_001)

    assert isinstance(error, WorkflowFailureError) and error.failure is not None
    assert "InsufficientFunds: account bob holds less than 5001 cents" in error.failure.message
    assert balances(bank) == OPENING
    assert bank.smembers(APPLIED) == set()
    assert attempts(history, 1) == [1]  # refused at once, not retried
    assert attempts(history, 2) == []


def test_amount_must_be_positive(bank: redis.Redis) -> None:
    error, history = transfer("alice", "bob", 0)

    assert isinstance(error, WorkflowFailureError) and error.failure is not None
    assert error.failure.type == "InvalidAmount"
    assert balances(bank) == OPENING
    assert not events_of(history, "ActivityTaskScheduled")


@pytest.mark.parametrize("target", ["carol", "dave"], ids=["closed", "unknown"])
def test_deposit_to_a_closed_account_is_refunded(bank: redis.Redis, target: str) -> None:
    error, history = transfer("alice", target, 2_500)

    assert isinstance(error, WorkflowFailureError) and error.failure is not None
    assert error.failure.type == "ActivityError"  # the deposit's error, re-raised
    assert f"AccountClosed: account {target} is closed or unknown" in error.failure.message
    assert balances(bank) == OPENING
    assert bank.smembers(APPLIED) == {"t-1:withdraw", "t-1:refund"}
    assert (attempts(history, 1), attempts(history, 2), attempts(history, 3)) == ([1], [1], [1])
    assert history[-1]["type"] == "WorkflowExecutionFailed"


def test_flaky_deposit_succeeds_after_retries(bank: redis.Redis) -> None:
    bank.set(flaky_key("bob"), 3)

    result, history = transfer("alice", "bob", 2_500)

    assert result == "moved 2500 cents from alice to bob (t-1)"
    assert balances(bank) == {"alice": 7_500, "bob": 7_500, "carol": 0}
    assert attempts(history, 2) == [1, 2, 3, 4]
    failures = events_of(history, "ActivityTaskAttemptFailed")
    assert [e["attrs"]["failure"]["type"] for e in failures] == ["ConnectionError"] * 3
    assert bank.get(flaky_key("bob")) == "0"


def test_bank_outage_through_every_retry_is_refunded(bank: redis.Redis) -> None:
    bank.set(flaky_key("bob"), 100)

    error, history = transfer("alice", "bob", 2_500)

    assert isinstance(error, WorkflowFailureError) and error.failure is not None
    assert "after 5 attempt(s): ConnectionError: bank unavailable for bob" in error.failure.message
    assert attempts(history, 2) == [1, 2, 3, 4, 5]
    assert balances(bank) == OPENING
    assert bank.smembers(APPLIED) == {"t-1:withdraw", "t-1:refund"}


def test_each_operation_applies_once_per_reference(bank: redis.Redis) -> None:
    """The activities called directly, as a retry after a lost answer would call them."""

    async def main() -> None:
        for _ in range(2):
            await withdraw("alice", 1_000, "t-2")
            await deposit("bob", 1_000, "t-2")
        assert balances(bank) == {"alice": 9_000, "bob": 6_000, "carol": 0}

        # A deposit that landed forbids the refund of the same transfer...
        assert await refund("alice", 1_000, "t-2") is False
        assert balances(bank) == {"alice": 9_000, "bob": 6_000, "carol": 0}

        # ...and a refund forbids a deposit that would arrive after it.
        await withdraw("alice", 1_000, "t-3")
        assert await refund("alice", 1_000, "t-3") is True
        assert await refund("alice", 1_000, "t-3") is True  # repeated: applied once
        with pytest.raises(ApplicationError) as info:
            await deposit("bob", 1_000, "t-3")
        assert info.value.type == "AlreadyRefunded" and info.value.non_retryable

    run(main())
    assert balances(bank) == {"alice": 9_000, "bob": 6_000, "carol": 0}
    assert sum(balances(bank).values()) == TOTAL


# Worker processes, as they run in production.


def test_sample_starter_prints_the_books(
    bank: redis.Redis, env: dict[str, str], processes: list[Any], tmp_path: Path
) -> None:
    bank.delete(BALANCES)  # the starter opens the accounts itself
    spawn(processes, env, "workers/money_transfer.py", log=tmp_path / "worker.log")

    starter = subprocess.run(
        [sys.executable, "starters/money_transfer.py"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert starter.returncode == 0, starter.stderr
    lines = starter.stdout.splitlines()
    assert lines[0] == "Before: alice 1,000.00, bob 500.00, carol 0.00 (total 1,500.00)"
    assert lines[1].startswith("Transfer transfer-") and lines[1].endswith(
        " of 25.00 from alice to bob completed"
    )
    assert lines[2].endswith(
        " of 25.00 from alice to carol failed: activity Deposit (seq 2) failed after 1 "
        "attempt(s): AccountClosed: account carol is closed or unknown"
    )
    assert lines[3] == "After:  alice 975.00, bob 525.00, carol 0.00 (total 1,500.00)"
    assert lines[4:] == ["The total is unchanged."]
    assert "Traceback" not in starter.stdout + starter.stderr


def test_worker_killed_after_the_bank_applied_the_deposit(
    bank: redis.Redis, env: dict[str, str], processes: list[Any], tmp_path: Path
) -> None:
    # The bank applies the deposit, then answers slowly: the worker dies before it can report.
    bank.set(delay_key("bob"), 60)
    first = spawn(processes, env, "workers/money_transfer.py", log=tmp_path / "first.log")

    async def start() -> None:
        async with await Client.connect() as client:
            await client.start_workflow(
                "MoneyTransfer", "alice", "bob", 2_500, "t-9", id="t-9", task_queue=TASK_QUEUE
            )

    run(start())
    wait_until(lambda: bank.sismember(APPLIED, "t-9:deposit"))
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    assert balances(bank) == {"alice": 7_500, "bob": 7_500, "carol": 0}

    # The deposit's attempt times out; its retry runs on another worker and must not pay twice.
    bank.delete(delay_key("bob"))
    spawn(processes, env, "workers/money_transfer.py", log=tmp_path / "second.log")

    async def finish() -> tuple[Any, list[dict[str, Any]]]:
        async with await Client.connect() as client:
            handle = client.get_workflow_handle("t-9")
            return await handle.result(timeout=30), await handle.history()

    result, history = run(finish())
    assert result == "moved 2500 cents from alice to bob (t-9)"
    assert balances(bank) == {"alice": 7_500, "bob": 7_500, "carol": 0}
    assert bank.smembers(APPLIED) == {"t-9:withdraw", "t-9:deposit"}
    assert attempts(history, 1) == [1]
    assert attempts(history, 2) == [1, 2]
    deposits = [e for e in events_of(history, "ActivityTaskStarted") if e["attrs"]["seq"] == 2]
    assert deposits[0]["attrs"]["worker"] != deposits[1]["attrs"]["worker"]
    failed = events_of(history, "ActivityTaskAttemptFailed")
    assert [e["attrs"]["failure"]["type"] for e in failed] == ["TimeoutError"]
    assert "t-9:deposit was applied before" in (tmp_path / "second.log").read_text()
