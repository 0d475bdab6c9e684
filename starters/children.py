"""Make thumbnails of four images, one of them corrupt, and print what each child returned.

    python starters/children.py [IMAGE ...]

Needs ``python workers/children.py`` running on the same Redis. The batch completes even
though one of its children fails: the failure is part of its result.
"""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from orchestrator import Client
from orchestrator.entrypoint import run_program
from workers.children import TASK_QUEUE, BatchReport

IMAGES = ["cat.jpg", "dog.jpg", "corrupt.png", "owl.jpg"]


async def main(images: list[str]) -> None:
    client = await Client.connect()
    try:
        handle = await client.start_workflow(
            "ThumbnailBatch", images, id=f"thumbnails-{uuid.uuid4().hex[:8]}", task_queue=TASK_QUEUE
        )
        print(f"Started workflow WorkflowID {handle.id} RunID {handle.run_id}")
        report: BatchReport = await handle.result(result_type=BatchReport)
        for image in images:
            if image in report.thumbnails:
                print(f"{image}: {report.thumbnails[image]}")
            else:
                print(f"{image}: failed: {report.failures[image]}")
        print(f"{len(report.thumbnails)} succeeded, {len(report.failures)} failed")
        print(f"Contact sheet: {report.contact_sheet}")
    finally:
        await client.close()


if __name__ == "__main__":
    run_program(main(sys.argv[1:] or IMAGES))
