"""Child workflows worker: a batch fans out to one child workflow per image.

Workflow ``ThumbnailBatch(images)`` on task queue ``children``:

1. starts one child workflow ``Thumbnail(image)`` per image with
   ``workflow.start_child_workflow``, all at once, each with its own workflow id
   (``<batch id>-<image>``), and waits for every one with ``asyncio.gather``;
2. a child whose ``Resize`` activity refuses its image (any name containing ``corrupt``)
   fails; the batch sees that as a ``ChildWorkflowError``, records why, and carries on
   with the others instead of failing as a whole;
3. runs one more child, ``ContactSheet``, on the thumbnails that were made, with
   ``workflow.execute_child_workflow`` (start and wait in one call).

Each child is a workflow of its own, with its own history: look at one with
``orchestrator workflow show -w <batch id>-<image>``.

    python workers/children.py           # then: python starters/children.py
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import timedelta

from orchestrator import (
    ApplicationError,
    ChildWorkflowError,
    Client,
    Worker,
    activity,
    logs,
    workflow,
)
from orchestrator.entrypoint import run_program

TASK_QUEUE = "children"
TIMEOUT = timedelta(seconds=10)


@dataclass
class BatchReport:
    thumbnails: dict[str, str] = field(default_factory=dict)  # image -> thumbnail
    failures: dict[str, str] = field(default_factory=dict)  # image -> why it has none
    contact_sheet: str = ""


@activity.defn(name="Resize")
def resize(image: str, size: int) -> str:
    if "corrupt" in image:
        raise ApplicationError(
            f"{image} is not a readable image", type="CorruptImage", non_retryable=True
        )
    stem = image.rsplit(".", 1)[0]
    return f"thumbs/{stem}-{size}.jpg"


@activity.defn(name="Assemble")
def assemble(thumbnails: list[str]) -> str:
    return f"contact sheet of {len(thumbnails)} thumbnails: {' '.join(thumbnails)}"


@workflow.defn(name="Thumbnail")
async def thumbnail(image: str) -> str:
    # An activity that fails for good fails this child workflow too, with the same error.
    return await workflow.execute_activity(resize, image, 128, start_to_close_timeout=TIMEOUT)


@workflow.defn(name="ContactSheet")
async def contact_sheet(thumbnails: list[str]) -> str:
    return await workflow.execute_activity(assemble, thumbnails, start_to_close_timeout=TIMEOUT)


@workflow.defn(name="ThumbnailBatch")
async def thumbnail_batch(images: list[str]) -> BatchReport:
    batch_id = workflow.info().workflow_id
    children = await asyncio.gather(
        *(
            workflow.start_child_workflow(thumbnail, image, id=f"{batch_id}-{image}")
            for image in images
        )
    )
    workflow.logger.info("started %d children: %s", len(children), [c.id for c in children])

    # return_exceptions: one failed child must not stop us from collecting the others.
    results = await asyncio.gather(*children, return_exceptions=True)
    report = BatchReport()
    for image, result in zip(images, results, strict=True):
        if isinstance(result, ChildWorkflowError):
            report.failures[image] = result.failure.message if result.failure else result.status
        elif isinstance(result, BaseException):
            raise result  # not a child's failure: a bug here, let it fail the batch
        else:
            report.thumbnails[image] = result

    report.contact_sheet = await workflow.execute_child_workflow(
        contact_sheet, list(report.thumbnails.values()), id=f"{batch_id}-contact-sheet"
    )
    return report


async def main() -> None:
    logs.configure("INFO")
    client = await Client.connect()
    try:
        worker = Worker(
            client,
            task_queue=TASK_QUEUE,
            workflows=[thumbnail_batch, thumbnail, contact_sheet],
            activities=[resize, assemble],
        )
        await worker.run()
    finally:
        await client.close()


if __name__ == "__main__":
    run_program(main())
