"""``orchestrator workflow ...``: start workflows, watch them, act on them, replay them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from .. import history
from ..client import Client, WorkflowHandle
from .options import (
    InputFiles,
    Inputs,
    Namespace,
    Output,
    OutputFormat,
    RedisUrl,
    RunId,
    WorkflowId,
    parse_duration,
    parse_inputs,
)
from .progress import StatusLine, follow_history, wait_with_status
from .render import (
    console,
    json_text,
    local_time,
    print_events,
    print_fields,
    print_json,
    print_json_line,
)
from .replay import workflow_replay
from .reporting import note, run

workflow_app = typer.Typer(help="Start, watch and act on workflows.", no_args_is_help=True)

START = "Start options"


class ConflictPolicy(StrEnum):
    """``id_conflict_policy`` of ``Client.start_workflow``."""

    FAIL = "fail"
    USE_EXISTING = "use_existing"
    TERMINATE_EXISTING = "terminate_existing"


class ReusePolicy(StrEnum):
    """``id_reuse_policy`` of ``Client.start_workflow``."""

    ALLOW_DUPLICATE = "allow_duplicate"
    ALLOW_DUPLICATE_FAILED_ONLY = "allow_duplicate_failed_only"
    REJECT_DUPLICATE = "reject_duplicate"


WorkflowType = Annotated[str, typer.Option("--type", "-t", help="Workflow type name.")]
TaskQueue = Annotated[str, typer.Option("--task-queue", "-q", help="Task queue of its workers.")]
NewWorkflowId = Annotated[
    str | None,
    typer.Option(
        "--workflow-id", "-w", help="Workflow id (default: a new UUID).", show_default=False
    ),
]
ExecutionTimeout = Annotated[
    str | None,
    typer.Option(
        help="Bound on the whole execution, continue-as-new included (30s, 5m, 1h).",
        rich_help_panel=START,
    ),
]
RunTimeout = Annotated[
    str | None, typer.Option(help="Bound on this run (30s, 5m, 1h).", rich_help_panel=START)
]
IdConflictPolicy = Annotated[
    ConflictPolicy,
    typer.Option(help="When the id has a running run.", rich_help_panel=START),
]
IdReusePolicy = Annotated[
    ReusePolicy,
    typer.Option(help="When the id's last run is closed.", rich_help_panel=START),
]
ResultTimeout = Annotated[
    float | None,
    typer.Option("--timeout", help="Seconds to wait for the result (default: no limit).", min=0),
]


@dataclass(frozen=True, slots=True)
class _StartRequest:
    """A workflow to start, as the options of ``start`` and ``execute`` describe it."""

    workflow_type: str
    task_queue: str
    workflow_id: str | None
    inputs: list[str] | None
    input_files: list[Path] | None
    execution_timeout: str | None
    run_timeout: str | None
    conflict: ConflictPolicy
    reuse: ReusePolicy

    def arguments(self) -> list[Any]:
        """The workflow's arguments, every option checked: before Redis is reached."""
        _duration(self.execution_timeout, "--execution-timeout")
        _duration(self.run_timeout, "--run-timeout")
        return parse_inputs(self.inputs, self.input_files)

    async def send(self, client: Client, args: list[Any]) -> WorkflowHandle:
        return await client.start_workflow(
            self.workflow_type,
            *args,
            id=self.workflow_id or str(uuid.uuid4()),
            task_queue=self.task_queue,
            id_conflict_policy=self.conflict.value,
            id_reuse_policy=self.reuse.value,
            execution_timeout=_duration(self.execution_timeout, "--execution-timeout"),
            run_timeout=_duration(self.run_timeout, "--run-timeout"),
        )


def _duration(text: str | None, what: str) -> timedelta | None:
    return None if text is None else parse_duration(text, what)


def _print_result(workflow_id: str, result: Any, output: Output) -> None:
    if output is Output.JSON:
        print_json(result)
    else:
        print_fields(
            [("Workflow Id", workflow_id), ("Status", "COMPLETED"), ("Result", json_text(result))]
        )


@workflow_app.command("start")
def workflow_start(
    workflow_type: WorkflowType,
    task_queue: TaskQueue,
    workflow_id: NewWorkflowId = None,
    inputs: Inputs = None,
    input_files: InputFiles = None,
    execution_timeout: ExecutionTimeout = None,
    run_timeout: RunTimeout = None,
    id_conflict_policy: IdConflictPolicy = ConflictPolicy.FAIL,
    id_reuse_policy: IdReusePolicy = ReusePolicy.ALLOW_DUPLICATE,
    wait: Annotated[
        bool, typer.Option("--wait", help="Wait for the result, as execute does.")
    ] = False,
    output: OutputFormat = Output.TABLE,
    url: RedisUrl = None,
    namespace: Namespace = "default",
) -> None:
    """Start a workflow and print its ids."""

    request = _StartRequest(
        workflow_type,
        task_queue,
        workflow_id,
        inputs,
        input_files,
        execution_timeout,
        run_timeout,
        id_conflict_policy,
        id_reuse_policy,
    )

    async def main() -> None:
        args = request.arguments()
        async with await Client.connect(url, namespace=namespace) as client:
            handle = await request.send(client, args)
            if wait:
                await _wait_and_print(client, handle, output, None)
            elif output is Output.JSON:
                print_json(
                    {
                        "workflow_id": handle.id,
                        "run_id": handle.run_id,
                        "started": handle.started_new,
                    }
                )
            elif handle.started_new:
                typer.echo(f"Started workflow {handle.id} run {handle.run_id}")
            else:
                typer.echo(f"Workflow {handle.id} is already running: run {handle.run_id}")

    run(main())


async def _wait_and_print(
    client: Client,
    handle: WorkflowHandle,
    output: Output,
    timeout: float | None,  # noqa: ASYNC109 - handed on to handle.result()
) -> None:
    note(f"Started workflow {handle.id} run {handle.run_id}; waiting for its result")
    status = StatusLine(console(stderr=True))
    result = await wait_with_status(client, handle, status, timeout)
    _print_result(handle.id, result, output)


@workflow_app.command("execute")
def workflow_execute(
    workflow_type: WorkflowType,
    task_queue: TaskQueue,
    workflow_id: NewWorkflowId = None,
    inputs: Inputs = None,
    input_files: InputFiles = None,
    execution_timeout: ExecutionTimeout = None,
    run_timeout: RunTimeout = None,
    id_conflict_policy: IdConflictPolicy = ConflictPolicy.FAIL,
    id_reuse_policy: IdReusePolicy = ReusePolicy.ALLOW_DUPLICATE,
    timeout: ResultTimeout = None,
    output: OutputFormat = Output.TABLE,
    url: RedisUrl = None,
    namespace: Namespace = "default",
) -> None:
    """Start a workflow and wait for its result, showing its progress on stderr.

    The result goes to stdout; a workflow that fails, is cancelled or terminated
    ends the command with exit status 1.
    """

    request = _StartRequest(
        workflow_type,
        task_queue,
        workflow_id,
        inputs,
        input_files,
        execution_timeout,
        run_timeout,
        id_conflict_policy,
        id_reuse_policy,
    )

    async def main() -> None:
        args = request.arguments()
        async with await Client.connect(url, namespace=namespace) as client:
            handle = await request.send(client, args)
            await _wait_and_print(client, handle, output, timeout)

    run(main())


@workflow_app.command("result")
def workflow_result(
    workflow_id: WorkflowId,
    run_id: RunId = None,
    timeout: ResultTimeout = None,
    output: OutputFormat = Output.TABLE,
    url: RedisUrl = None,
    namespace: Namespace = "default",
) -> None:
    """Wait for a workflow's result and print it; exit status 1 if the workflow did not complete."""

    async def main() -> None:
        async with await Client.connect(url, namespace=namespace) as client:
            result = await client.get_workflow_handle(workflow_id, run_id).result(timeout=timeout)
            _print_result(workflow_id, result, output)

    run(main())


@workflow_app.command("describe")
def workflow_describe(
    workflow_id: WorkflowId,
    run_id: RunId = None,
    output: OutputFormat = Output.TABLE,
    url: RedisUrl = None,
    namespace: Namespace = "default",
) -> None:
    """Show a workflow's status, times and latest event."""

    async def main() -> None:
        async with await Client.connect(url, namespace=namespace) as client:
            description = await client.get_workflow_handle(workflow_id, run_id).describe()
            key = client.keys.history(workflow_id, description.run_id)
            latest = history.from_stream(await client.redis.xrevrange(key, count=1))
        last_event = latest[0] if latest else None
        if output is Output.JSON:
            print_json({**description.to_dict(), "last_event": last_event})
            return
        failure = description.failure
        print_fields(
            [
                ("Workflow Id", description.workflow_id),
                ("Run Id", description.run_id),
                ("Type", description.workflow_type),
                ("Task Queue", description.task_queue),
                ("Status", description.status),
                ("Start Time", local_time(description.start_time)),
                ("Close Time", local_time(description.close_time)),
                ("History Length", description.history_length),
                ("Last Event", _event_line(last_event)),
                ("Failure", f"{failure.type}: {failure.message}" if failure else None),
            ]
        )

    run(main())


def _event_line(event: history.Event | None) -> str | None:
    if event is None:
        return None
    return f"#{event.get('id')} {event.get('type')} at {local_time(event.get('ts'), millis=True)}"


@workflow_app.command("show")
def workflow_show(
    workflow_id: WorkflowId,
    run_id: RunId = None,
    follow: Annotated[
        bool,
        typer.Option("--follow", "-f", help="Keep printing new events until the run closes."),
    ] = False,
    output: OutputFormat = Output.TABLE,
    url: RedisUrl = None,
    namespace: Namespace = "default",
) -> None:
    """Print a run's history: the events it recorded, oldest first.

    With --output json it prints {"events": [...]}, which `workflow replay` reads.
    With --follow too, it prints one JSON event per line, as each is recorded.
    """

    async def main() -> None:
        async with await Client.connect(url, namespace=namespace) as client:
            handle = client.get_workflow_handle(workflow_id, run_id)
            current_run = (await handle.describe()).run_id
            if not follow:
                events = await handle.history()
                if output is Output.JSON:
                    print_json({"events": events})
                else:
                    print_events(events)
                return
            await _follow(client, workflow_id, current_run, output)

    run(main())


async def _follow(client: Client, workflow_id: str, run_id: str, output: Output) -> None:
    first = True
    async for events in follow_history(client, workflow_id, run_id):
        if not events:
            continue
        if output is Output.JSON:
            for event in events:
                print_json_line(event)
        else:
            print_events(events, header=first, aligned=True)
        first = False
    continued_to = await client.redis.hget(client.keys.run(workflow_id, run_id), "continued_to")
    if continued_to:
        note(f"Run {run_id} continued as new: run {continued_to}")


@workflow_app.command("signal")
def workflow_signal(
    workflow_id: WorkflowId,
    name: Annotated[str, typer.Option("--name", help="Signal name.")],
    inputs: Inputs = None,
    input_files: InputFiles = None,
    run_id: RunId = None,
    url: RedisUrl = None,
    namespace: Namespace = "default",
) -> None:
    """Send a signal to a running workflow."""

    async def main() -> None:
        args = parse_inputs(inputs, input_files)
        async with await Client.connect(url, namespace=namespace) as client:
            await client.get_workflow_handle(workflow_id, run_id).signal(name, *args)
        typer.echo(f"Signal {name} sent to workflow {workflow_id}")

    run(main())


@workflow_app.command("query")
def workflow_query(
    workflow_id: WorkflowId,
    name: Annotated[str, typer.Option("--name", help="Query name.")],
    inputs: Inputs = None,
    input_files: InputFiles = None,
    run_id: RunId = None,
    timeout: Annotated[
        float, typer.Option("--timeout", min=0, help="Seconds to wait for a worker's answer.")
    ] = 10.0,
    output: OutputFormat = Output.TABLE,
    url: RedisUrl = None,
    namespace: Namespace = "default",
) -> None:
    """Ask the workflow's workers to answer a query, and print the answer."""

    async def main() -> None:
        args = parse_inputs(inputs, input_files)
        async with await Client.connect(url, namespace=namespace) as client:
            handle = client.get_workflow_handle(workflow_id, run_id)
            answer = await handle.query(name, *args, timeout=timeout)
        if output is Output.JSON:
            print_json(answer)
        else:
            print_fields(
                [("Workflow Id", workflow_id), ("Query", name), ("Result", json_text(answer))]
            )

    run(main())


Reason = Annotated[str, typer.Option("--reason", help="Why, recorded in the history.")]


@workflow_app.command("cancel")
def workflow_cancel(
    workflow_id: WorkflowId,
    reason: Reason = "",
    run_id: RunId = None,
    url: RedisUrl = None,
    namespace: Namespace = "default",
) -> None:
    """Ask a workflow to cancel: its code sees the cancellation and may clean up."""

    async def main() -> None:
        async with await Client.connect(url, namespace=namespace) as client:
            await client.get_workflow_handle(workflow_id, run_id).cancel(reason)
        typer.echo(f"Cancellation requested for workflow {workflow_id}")

    run(main())


@workflow_app.command("terminate")
def workflow_terminate(
    workflow_id: WorkflowId,
    reason: Reason = "",
    run_id: RunId = None,
    url: RedisUrl = None,
    namespace: Namespace = "default",
) -> None:
    """End a workflow at once, without running its code."""

    async def main() -> None:
        async with await Client.connect(url, namespace=namespace) as client:
            await client.get_workflow_handle(workflow_id, run_id).terminate(reason)
        typer.echo(f"Workflow {workflow_id} terminated")

    run(main())


workflow_app.command("replay")(workflow_replay)
