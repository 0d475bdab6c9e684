"""Signals worker: an order waits for people to approve it, or for one to reject it.

Workflow ``OrderApproval(order_id, approvals_needed, timeout_seconds)`` on task queue
``signals``:

- signal ``approve(approver)`` adds an approval; signal ``reject(approver, reason)``
  rejects the order;
- query ``status`` returns the order's :class:`OrderStatus` at any time, changing nothing;
- the workflow waits with ``workflow.wait_condition(..., timeout=...)`` until enough people
  approved or one rejected; the timeout is a durable timer, so an order nobody decides on
  expires even if every worker was restarted meanwhile;
- an approved order is shipped by the activity ``ShipOrder``.

A signal that arrives before the code has set its handler is kept and handed to the handler
once it is set: that is what lets ``client.signal_with_start`` start a run and deliver a
signal to it in one step.

    python workers/signals.py            # then: python starters/signals.py
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from orchestrator import Client, Worker, activity, logs, workflow
from orchestrator.entrypoint import run_program

TASK_QUEUE = "signals"


@dataclass
class OrderStatus:
    """What the ``status`` query answers."""

    order_id: str
    state: str  # PENDING, APPROVED, REJECTED or EXPIRED
    approvals_needed: int
    approved_by: list[str] = field(default_factory=list)
    rejected_by: str = ""
    reason: str = ""
    shipment: str = ""


@activity.defn(name="ShipOrder")
def ship_order(order_id: str) -> str:
    return f"parcel for {order_id} handed to the courier"


@workflow.defn(name="OrderApproval")
async def order_approval(order_id: str, approvals_needed: int, timeout_seconds: float) -> str:
    status = OrderStatus(order_id, "PENDING", approvals_needed)

    def approve(approver: str) -> None:
        if status.state == "PENDING" and approver not in status.approved_by:
            status.approved_by.append(approver)

    def reject(approver: str, reason: str) -> None:
        if status.state == "PENDING":
            status.state, status.rejected_by, status.reason = "REJECTED", approver, reason

    workflow.set_signal_handler("approve", approve)
    workflow.set_signal_handler("reject", reject)
    workflow.set_query_handler("status", lambda: status)

    def decided() -> bool:
        return status.state == "REJECTED" or len(status.approved_by) >= approvals_needed

    try:
        await workflow.wait_condition(decided, timeout=timeout_seconds)
    except TimeoutError:
        status.state = "EXPIRED"
        return f"{order_id} expired: no decision within {timeout_seconds:g} s"

    if status.state == "REJECTED":
        return f"{order_id} rejected by {status.rejected_by}: {status.reason}"

    status.state = "APPROVED"
    status.shipment = await workflow.execute_activity(
        ship_order, order_id, start_to_close_timeout=timedelta(seconds=10)
    )
    return f"{order_id} approved by {', '.join(status.approved_by)}; {status.shipment}"


async def main() -> None:
    logs.configure("INFO")
    client = await Client.connect()
    try:
        worker = Worker(
            client, task_queue=TASK_QUEUE, workflows=[order_approval], activities=[ship_order]
        )
        await worker.run()
    finally:
        await client.close()


if __name__ == "__main__":
    run_program(main())
