"""Run two money transfers, one that succeeds and one into a closed account, and show the books.

    python starters/money_transfer.py

Needs ``python workers/money_transfer.py`` running on the same Redis. Opens the accounts alice,
bob and carol the first time (carol's is closed), prints every balance before and after, the
outcome of each transfer, and checks that the bank's total did not change. Exits with status 1
if it did.
"""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from redis.asyncio import Redis

from orchestrator import Client, WorkflowFailureError
from orchestrator.entrypoint import run_program
from workers.money_transfer import BALANCES, CLOSED, TASK_QUEUE

OPENING_BALANCES = {"alice": 100_000, "bob": 50_000, "carol": 0}
CLOSED_ACCOUNT = "carol"
AMOUNT = 2_500


def money(cents: int) -> str:
    return f"{cents / 100:,.2f}"


async def balances(bank: Redis) -> dict[str, int]:
    books = await bank.hgetall(BALANCES)
    return {account: int(books[account]) for account in sorted(books)}


def show(books: dict[str, int]) -> str:
    accounts = ", ".join(f"{account} {money(cents)}" for account, cents in books.items())
    return f"{accounts} (total {money(sum(books.values()))})"


async def transfer(client: Client, source: str, target: str, amount: int) -> None:
    reference = f"transfer-{uuid.uuid4().hex[:8]}"
    handle = await client.start_workflow(
        "MoneyTransfer", source, target, amount, reference, id=reference, task_queue=TASK_QUEUE
    )
    label = f"Transfer {reference} of {money(amount)} from {source} to {target}"
    try:
        await handle.result()
    except WorkflowFailureError as err:
        print(f"{label} failed: {err.failure.message if err.failure else err}")
    else:
        print(f"{label} completed")


async def main() -> int:
    client = await Client.connect()
    try:
        bank = client.redis
        for account, cents in OPENING_BALANCES.items():
            await bank.hsetnx(BALANCES, account, cents)
        await bank.sadd(CLOSED, CLOSED_ACCOUNT)

        before = await balances(bank)
        print(f"Before: {show(before)}")
        await transfer(client, "alice", "bob", AMOUNT)
        await transfer(client, "alice", CLOSED_ACCOUNT, AMOUNT)
        after = await balances(bank)
        print(f"After:  {show(after)}")
    finally:
        await client.close()

    if sum(after.values()) != sum(before.values()):
        print("The total changed: money was created or lost!")
        return 1
    print("The total is unchanged.")
    return 0


if __name__ == "__main__":
    run_program(main())
