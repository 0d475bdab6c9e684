"""A worker process for tests: ``python tests/worker_process.py TASK_QUEUE [ROLE]``.

ROLE ``all`` (default) runs every test workflow and activity; ``workflows`` and
``activities`` run only one kind. Reads ORCHESTRATOR_REDIS_URL.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from orchestrator import Client, Worker, logs

import defs


async def main(task_queue: str, role: str) -> None:
    logs.configure("INFO")
    client = await Client.connect()
    try:
        worker = Worker(
            client,
            task_queue=task_queue,
            workflows=defs.ALL_WORKFLOWS if role in ("all", "workflows") else [],
            activities=defs.ALL_ACTIVITIES if role in ("all", "activities") else [],
            graceful_shutdown_timeout=float(sys.argv[3]) if len(sys.argv) > 3 else 10.0,
            poll_block=0.2,
        )
        await worker.run()
    finally:
        await client.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "all"))
