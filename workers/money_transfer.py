"""Money transfer worker: a saga that moves money between two accounts of a small bank.

Workflow ``MoneyTransfer(source, target, amount, reference)`` on task queue ``money-transfer``
withdraws ``amount`` cents from ``source``, then deposits them into ``target``. If the deposit
fails for good (the target account is closed, or the bank stays down through every retry), the
compensation ``Refund`` puts the money back into ``source`` and the workflow fails with the
deposit's error. Whatever fails, no money is created or lost.

The bank lives in the same Redis as the orchestrator:

- ``bank:balances``  hash, account -> balance in integer cents;
- ``bank:applied``   set of ``<reference>:<operation>`` already applied, which makes each
  activity idempotent: a worker can die after the bank applied an operation but before its
  result was recorded, and the retry must not apply it twice;
- ``bank:closed``    set of closed accounts, which refuse deposits;
- ``bank:flaky:<account>``  a count of deposits into ``account`` that fail as if the bank were
  down, each attempt using one up (for demos and tests);
- ``bank:delay:<account>``  seconds a deposit into ``account`` waits after the bank applied it
  and before it answers, like a slow network (for demos and tests).

    python workers/money_transfer.py     # then: python starters/money_transfer.py
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from redis.asyncio import Redis

from orchestrator import (
    ActivityError,
    ApplicationError,
    Client,
    RetryPolicy,
    Worker,
    activity,
    logs,
    workflow,
)
from orchestrator.connection import redis_url
from orchestrator.entrypoint import run_program

TASK_QUEUE = "money-transfer"

BALANCES = "bank:balances"
APPLIED = "bank:applied"
CLOSED = "bank:closed"

logger = logging.getLogger("workers.money_transfer")


def flaky_key(account: str) -> str:
    return f"bank:flaky:{account}"


def delay_key(account: str) -> str:
    return f"bank:delay:{account}"


# One script applies every bank operation, so that the balance change and the record that it
# was made happen together or not at all. It sits here rather than in a .lua file so that the
# sample stays one file.
APPLY_ONCE = """
-- Apply one operation of a transfer to a balance, at most once per reference and operation.
--
-- KEYS[1]  bank:balances  hash: account -> balance in integer cents
-- KEYS[2]  bank:applied   set: "<reference>:<operation>" of every operation applied
-- KEYS[3]  bank:closed    set: closed accounts
-- ARGV[1]  account
-- ARGV[2]  change in cents: negative takes money out, positive puts it in
-- ARGV[3]  this operation's member of bank:applied
-- ARGV[4]  a member of bank:applied that forbids this operation, or "" for none
-- ARGV[5]  "1" if the account must be open: known, and not in bank:closed
--
-- Returns {code, balance}; nothing changes unless code is "applied":
--   "applied"       the change is made; balance is the new one
--   "duplicate"     ARGV[3] was applied before; balance is the current one
--   "conflict"      ARGV[4] was applied
--   "closed"        ARGV[5] is "1" and the account is closed or unknown
--   "insufficient"  the balance is lower than the amount taken out
local balance = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if redis.call('SISMEMBER', KEYS[2], ARGV[3]) == 1 then
  return {'duplicate', balance}
end
if ARGV[4] ~= '' and redis.call('SISMEMBER', KEYS[2], ARGV[4]) == 1 then
  return {'conflict', balance}
end
if ARGV[5] == '1' and (redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0
    or redis.call('SISMEMBER', KEYS[3], ARGV[1]) == 1) then
  return {'closed', balance}
end
local change = tonumber(ARGV[2])
if balance + change < 0 then
  return {'insufficient', balance}
end
redis.call('SADD', KEYS[2], ARGV[3])
return {'applied', redis.call('HINCRBY', KEYS[1], ARGV[1], change)}
"""


async def _apply(
    bank: Redis,
    account: str,
    change: int,
    reference: str,
    operation: str,
    *,
    forbidden_by: str = "",
    must_be_open: bool = False,
) -> str:
    """Run APPLY_ONCE for one operation and return its code."""
    script = bank.register_script(APPLY_ONCE)
    member = f"{reference}:{operation}"
    forbidding = f"{reference}:{forbidden_by}" if forbidden_by else ""
    code, balance = await script(
        keys=[BALANCES, APPLIED, CLOSED],
        args=[account, change, member, forbidding, "1" if must_be_open else "0"],
    )
    if code == "duplicate":
        logger.info("%s was applied before; not applying it again", member)
    elif code == "applied":
        logger.info("%s applied: %s is now %d cents", member, account, balance)
    return str(code)


def _bank() -> Redis:
    return Redis.from_url(redis_url(), decode_responses=True)


@activity.defn(name="Withdraw")
async def withdraw(account: str, amount: int, reference: str) -> None:
    async with _bank() as bank:
        code = await _apply(bank, account, -amount, reference, "withdraw")
    if code == "insufficient":
        raise ApplicationError(
            f"account {account} holds less than {amount} cents",
            type="InsufficientFunds",
            non_retryable=True,
        )


@activity.defn(name="Deposit")
async def deposit(account: str, amount: int, reference: str) -> None:
    async with _bank() as bank:
        if int(await bank.get(flaky_key(account)) or 0) > 0:
            left = await bank.decr(flaky_key(account))
            raise ConnectionError(f"bank unavailable for {account} ({left} more failure(s) set)")

        code = await _apply(
            bank, account, amount, reference, "deposit", forbidden_by="refund", must_be_open=True
        )
        if code == "applied":
            # The money has moved; a slow answer from here on is what idempotency is for.
            await asyncio.sleep(float(await bank.get(delay_key(account)) or 0))

    if code == "closed":
        raise ApplicationError(
            f"account {account} is closed or unknown", type="AccountClosed", non_retryable=True
        )
    if code == "conflict":
        raise ApplicationError(
            f"transfer {reference} was refunded already", type="AlreadyRefunded", non_retryable=True
        )


@activity.defn(name="Refund")
async def refund(account: str, amount: int, reference: str) -> bool:
    """Give back a withdrawal; False if a deposit of the same transfer landed, so none is due.

    A deposit attempt the workflow gave up on (it timed out) may still have reached the bank.
    Refunding then would create money, so a refund and a deposit of one reference exclude
    each other: whichever the bank applies first wins.
    """
    async with _bank() as bank:
        code = await _apply(bank, account, amount, reference, "refund", forbidden_by="deposit")
    return code != "conflict"


# Withdrawals and refunds retry until they succeed or are refused: giving up on one whose
# attempt may have reached the bank would leave the books unbalanced.
UNTIL_DONE = RetryPolicy(initial_interval=0.2, maximum_interval=2.0)
DEPOSIT_RETRY = RetryPolicy(
    initial_interval=0.2,
    maximum_interval=1.0,
    maximum_attempts=5,
    non_retryable_error_types=["AccountClosed"],
)
TIMEOUT = timedelta(seconds=5)


@workflow.defn(name="MoneyTransfer")
async def money_transfer(source: str, target: str, amount: int, reference: str) -> str:
    if amount <= 0:
        raise ApplicationError(f"amount must be positive, got {amount} cents", type="InvalidAmount")

    await workflow.execute_activity(
        withdraw, source, amount, reference, start_to_close_timeout=TIMEOUT, retry_policy=UNTIL_DONE
    )
    try:
        await workflow.execute_activity(
            deposit,
            target,
            amount,
            reference,
            start_to_close_timeout=TIMEOUT,
            retry_policy=DEPOSIT_RETRY,
        )
    except ActivityError as err:
        # The compensation: give the withdrawn money back, then fail with the deposit's error.
        refunded = await workflow.execute_activity(
            refund,
            source,
            amount,
            reference,
            start_to_close_timeout=TIMEOUT,
            retry_policy=UNTIL_DONE,
        )
        if refunded:
            workflow.logger.warning(
                "deposit failed (%s); %d cents refunded to %s", err, amount, source
            )
            raise
        workflow.logger.warning("the deposit reached %s after all; the transfer stands", target)

    return f"moved {amount} cents from {source} to {target} ({reference})"


async def main() -> None:
    logs.configure("INFO")
    client = await Client.connect()
    try:
        worker = Worker(
            client,
            task_queue=TASK_QUEUE,
            workflows=[money_transfer],
            activities=[withdraw, deposit, refund],
        )
        await worker.run()
    finally:
        await client.close()


if __name__ == "__main__":
    run_program(main())
