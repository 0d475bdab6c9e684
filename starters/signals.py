"""Approve one order, reject another and let a third expire, querying their status on the way.

    python starters/signals.py

Needs ``python workers/signals.py`` running on the same Redis.

1. ``client.signal_with_start`` starts order A's workflow and delivers the manager's approval
   to it before its code runs; the ``status`` query shows one of two approvals; then an
   ``approve`` signal sent to the running workflow completes the approval and ships the order.
2. Order B is started, then rejected by a ``reject`` signal.
3. Order C is started with a 1 s timeout and nobody decides: it expires.
"""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from orchestrator import Client
from orchestrator.entrypoint import run_program
from workers.signals import TASK_QUEUE, OrderStatus

DECISION_TIMEOUT = 30.0  # seconds an order waits for approval


def show(status: OrderStatus) -> str:
    approvers = ", ".join(status.approved_by) or "nobody"
    count = f"{len(status.approved_by)} of {status.approvals_needed}"
    return f"{status.state}, approved by {approvers} ({count})"


async def approve_in_two_steps(client: Client) -> None:
    order_id = f"order-{uuid.uuid4().hex[:6]}"
    handle = await client.signal_with_start(
        "OrderApproval",
        order_id,
        2,
        DECISION_TIMEOUT,
        id=order_id,
        task_queue=TASK_QUEUE,
        signal="approve",
        signal_args=["manager"],
    )
    print(f"Signal-with-start: started {order_id} (run {handle.run_id}), approved by manager")
    # The answer includes signals no workflow task has processed yet.
    status = await handle.query("status", result_type=OrderStatus)
    print(f"Status of {order_id}: {show(status)}")

    await handle.signal("approve", "finance")
    print(f"Signalled {order_id}: approved by finance")
    print(f"Result: {await handle.result()}")
    status = await handle.query("status", result_type=OrderStatus)
    print(f"Status of {order_id}: {show(status)}; {status.shipment}")


async def reject(client: Client) -> None:
    order_id = f"order-{uuid.uuid4().hex[:6]}"
    handle = await client.start_workflow(
        "OrderApproval", order_id, 2, DECISION_TIMEOUT, id=order_id, task_queue=TASK_QUEUE
    )
    await handle.signal("reject", "finance", "over budget")
    print(f"Signalled {order_id}: rejected by finance")
    print(f"Result: {await handle.result()}")


async def expire(client: Client) -> None:
    order_id = f"order-{uuid.uuid4().hex[:6]}"
    handle = await client.start_workflow(
        "OrderApproval", order_id, 2, 1.0, id=order_id, task_queue=TASK_QUEUE
    )
    print(f"Started {order_id}; nobody decides")
    print(f"Result: {await handle.result()}")


async def main() -> None:
    client = await Client.connect()
    try:
        await approve_in_two_steps(client)
        await reject(client)
        await expire(client)
    finally:
        await client.close()


if __name__ == "__main__":
    run_program(main())
