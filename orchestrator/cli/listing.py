"""``orchestrator workflow list | count``: find runs by status, type, queue and time."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import typer

from ..client import Client
from ..errors import ConfigurationError
from .options import Namespace, Output, OutputFormat, RedisUrl
from .render import local_time, print_json, print_table
from .reporting import note, run
from .workflow import workflow_app

FILTERS = "Filters"

Status = Annotated[
    str | None,
    typer.Option(
        "--status",
        "-s",
        help="RUNNING, COMPLETED, FAILED, CANCELED, TERMINATED, TIMED_OUT or CONTINUED_AS_NEW.",
        rich_help_panel=FILTERS,
    ),
]
Type = Annotated[str | None, typer.Option("--type", "-t", rich_help_panel=FILTERS)]
Queue = Annotated[str | None, typer.Option("--task-queue", "-q", rich_help_panel=FILTERS)]
When = Annotated[
    str | None,
    typer.Option(help="ISO time; local time if it has no zone.", rich_help_panel=FILTERS),
]


def _filters(
    status: str | None, workflow_type: str | None, task_queue: str | None, **times: str | None
) -> dict[str, Any]:
    where: dict[str, Any] = {
        "status": status.upper() if status else None,
        "workflow_type": workflow_type,
        "task_queue": task_queue,
    }
    for name, text in times.items():
        if text is None:
            continue
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            flag = "--" + name.replace("_", "-")
            raise ConfigurationError(f"{flag}: not an ISO time: {text!r}") from None
        where[name] = moment if moment.tzinfo else moment.astimezone()
    return {k: v for k, v in where.items() if v is not None}


@workflow_app.command("list")
def workflow_list(
    status: Status = None,
    workflow_type: Type = None,
    task_queue: Queue = None,
    started_after: When = None,
    started_before: When = None,
    closed_after: When = None,
    closed_before: When = None,
    page_size: Annotated[int, typer.Option(min=1, max=1000)] = 20,
    next_page_token: Annotated[str | None, typer.Option(help="From the previous page.")] = None,
    output: OutputFormat = Output.TABLE,
    url: RedisUrl = None,
    namespace: Namespace = "default",
) -> None:
    """List runs, newest first, one page at a time."""

    async def main() -> None:
        where = _filters(
            status,
            workflow_type,
            task_queue,
            started_after=started_after,
            started_before=started_before,
            closed_after=closed_after,
            closed_before=closed_before,
        )
        async with await Client.connect(url, namespace=namespace) as client:
            page = await client.list_workflows(
                page_size=page_size, next_page_token=next_page_token, **where
            )
        if output is Output.JSON:
            print_json(
                {
                    "executions": [e.to_dict() for e in page.executions],
                    "next_page_token": page.next_page_token,
                }
            )
            return
        print_table(
            ["Status", "Workflow Id", "Type", "Task Queue", "Start Time", "Close Time"],
            [
                (
                    e.status,
                    e.workflow_id,
                    e.workflow_type,
                    e.task_queue,
                    local_time(e.start_time),
                    local_time(e.close_time),
                )
                for e in page.executions
            ],
        )
        if page.next_page_token:
            note(f"next page: --next-page-token {page.next_page_token}")

    run(main())


@workflow_app.command("count")
def workflow_count(
    status: Status = None,
    workflow_type: Type = None,
    task_queue: Queue = None,
    started_after: When = None,
    started_before: When = None,
    closed_after: When = None,
    closed_before: When = None,
    output: OutputFormat = Output.TABLE,
    url: RedisUrl = None,
    namespace: Namespace = "default",
) -> None:
    """Count the runs that match the filters."""

    async def main() -> None:
        where = _filters(
            status,
            workflow_type,
            task_queue,
            started_after=started_after,
            started_before=started_before,
            closed_after=closed_after,
            closed_before=closed_before,
        )
        async with await Client.connect(url, namespace=namespace) as client:
            count = await client.count_workflows(**where)
        if output is Output.JSON:
            print_json({"count": count})
        else:
            typer.echo(count)

    run(main())
