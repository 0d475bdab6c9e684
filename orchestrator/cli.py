"""The ``orchestrator`` command line: run workers, start and inspect workflows.

Errors are printed as one line on stderr with a non-zero exit status; pass
``--verbose`` to see the traceback.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import orjson
import typer

from . import logs
from .client import Client
from .errors import ConfigurationError, OrchestratorError
from .worker import Worker

T = TypeVar("T")

app = typer.Typer(help="Durable workflows on Redis.", no_args_is_help=True)
workflow_app = typer.Typer(help="Start and inspect workflows.", no_args_is_help=True)
worker_app = typer.Typer(help="Run workers.", no_args_is_help=True)
app.add_typer(workflow_app, name="workflow")
app.add_typer(worker_app, name="worker")

UrlOption = typer.Option(
    None,
    "--redis-url",
    envvar="ORCHESTRATOR_REDIS_URL",
    help="Redis URL (default redis://localhost:6379/0).",
)
NamespaceOption = typer.Option("default", "--namespace", "-n", envvar="ORCHESTRATOR_NAMESPACE")
_state = {"verbose": False}
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
WorkflowIdOption = typer.Option(..., "--workflow-id", "-w", help="Workflow id.")
RunIdOption = typer.Option(None, "--run-id", "-r", help="Run id (default: the current run).")


@app.callback()
def _main(verbose: bool = typer.Option(False, "--verbose", help="Show tracebacks.")) -> None:
    _state["verbose"] = verbose


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine, turning expected errors into one line on stderr."""
    try:
        return asyncio.run(coro)
    except (OrchestratorError, TimeoutError, OSError) as exc:
        if _state["verbose"]:
            raise
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


def _parse_input(raw: str | None, path: Path | None) -> list[Any]:
    if raw is not None and path is not None:
        raise ConfigurationError("give --input or --input-file, not both")
    text = path.read_text() if path is not None else raw
    if text is None:
        return []
    try:
        return [orjson.loads(text)]
    except orjson.JSONDecodeError as exc:
        raise ConfigurationError(f"input is not valid JSON: {exc}") from None


def _echo_json(value: Any) -> None:
    typer.echo(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode())


@workflow_app.command("start")
def workflow_start(
    workflow_type: str = typer.Option(..., "--type", "-t", help="Workflow type name."),
    workflow_id: str = typer.Option(..., "--workflow-id", "-w"),
    task_queue: str = typer.Option(..., "--task-queue", "-q"),
    input_json: str | None = typer.Option(None, "--input", "-i", help="Input as JSON."),
    input_file: Path | None = typer.Option(None, "--input-file", help="Input JSON file."),
    wait: bool = typer.Option(False, "--wait", help="Wait for and print the result."),
    url: str | None = UrlOption,
    namespace: str = NamespaceOption,
) -> None:
    """Start a workflow."""

    async def main() -> None:
        args = _parse_input(input_json, input_file)
        async with await Client.connect(url, namespace=namespace) as client:
            handle = await client.start_workflow(
                workflow_type, *args, id=workflow_id, task_queue=task_queue
            )
            typer.echo(f"Started workflow {handle.id} run {handle.run_id}")
            if wait:
                _echo_json(await handle.result())

    _run(main())


@workflow_app.command("result")
def workflow_result(
    workflow_id: str = typer.Option(..., "--workflow-id", "-w"),
    run_id: str | None = typer.Option(None, "--run-id", "-r"),
    url: str | None = UrlOption,
    namespace: str = NamespaceOption,
) -> None:
    """Wait for a workflow's result and print it as JSON."""

    async def main() -> None:
        async with await Client.connect(url, namespace=namespace) as client:
            _echo_json(await client.get_workflow_handle(workflow_id, run_id).result())

    _run(main())


@workflow_app.command("describe")
def workflow_describe(
    workflow_id: str = typer.Option(..., "--workflow-id", "-w"),
    run_id: str | None = typer.Option(None, "--run-id", "-r"),
    url: str | None = UrlOption,
    namespace: str = NamespaceOption,
) -> None:
    """Print a workflow's status as JSON."""

    async def main() -> None:
        async with await Client.connect(url, namespace=namespace) as client:
            description = await client.get_workflow_handle(workflow_id, run_id).describe()
            _echo_json(description.to_dict())

    _run(main())


@workflow_app.command("signal")
def workflow_signal(
    workflow_id: str = WorkflowIdOption,
    name: str = typer.Option(..., "--name", help="Signal name."),
    input_json: str | None = typer.Option(None, "--input", "-i", help="Signal input as JSON."),
    url: str | None = UrlOption,
    namespace: str = NamespaceOption,
) -> None:
    """Send a signal to a running workflow."""

    async def main() -> None:
        args = _parse_input(input_json, None)
        async with await Client.connect(url, namespace=namespace) as client:
            await client.get_workflow_handle(workflow_id).signal(name, *args)
            typer.echo(f"Signal {name} sent to workflow {workflow_id}")

    _run(main())


@workflow_app.command("query")
def workflow_query(
    workflow_id: str = WorkflowIdOption,
    name: str = typer.Option(..., "--name", help="Query name."),
    input_json: str | None = typer.Option(None, "--input", "-i", help="Query input as JSON."),
    timeout: float = typer.Option(10.0, "--timeout", help="Seconds to wait for a worker."),
    url: str | None = UrlOption,
    namespace: str = NamespaceOption,
) -> None:
    """Ask a workflow's workers for a query's answer and print it as JSON."""

    async def main() -> None:
        args = _parse_input(input_json, None)
        async with await Client.connect(url, namespace=namespace) as client:
            handle = client.get_workflow_handle(workflow_id)
            _echo_json(await handle.query(name, *args, timeout=timeout))

    _run(main())


@workflow_app.command("cancel")
def workflow_cancel(
    workflow_id: str = WorkflowIdOption,
    reason: str = typer.Option("", "--reason"),
    url: str | None = UrlOption,
    namespace: str = NamespaceOption,
) -> None:
    """Ask a workflow to cancel: its code sees the cancellation and may clean up."""

    async def main() -> None:
        async with await Client.connect(url, namespace=namespace) as client:
            await client.get_workflow_handle(workflow_id).cancel(reason)
            typer.echo(f"Cancellation requested for workflow {workflow_id}")

    _run(main())


@workflow_app.command("terminate")
def workflow_terminate(
    workflow_id: str = WorkflowIdOption,
    reason: str = typer.Option("", "--reason"),
    url: str | None = UrlOption,
    namespace: str = NamespaceOption,
) -> None:
    """End a workflow at once, without running its code."""

    async def main() -> None:
        async with await Client.connect(url, namespace=namespace) as client:
            await client.get_workflow_handle(workflow_id).terminate(reason)
            typer.echo(f"Workflow {workflow_id} terminated")

    _run(main())


@workflow_app.command("show")
def workflow_show(
    workflow_id: str = typer.Option(..., "--workflow-id", "-w"),
    run_id: str | None = typer.Option(None, "--run-id", "-r"),
    url: str | None = UrlOption,
    namespace: str = NamespaceOption,
) -> None:
    """Print a workflow's history, one JSON event per line."""

    async def main() -> None:
        async with await Client.connect(url, namespace=namespace) as client:
            for event in await client.get_workflow_handle(workflow_id, run_id).history():
                typer.echo(orjson.dumps(event).decode())

    _run(main())


def _load_worker_spec(spec: str) -> Any:
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ConfigurationError(f"expected MODULE:ATTRIBUTE, got {spec!r}")
    sys.path.insert(0, str(Path.cwd()))
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(f"cannot import {module_name!r}: {exc}") from None
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise ConfigurationError(f"{module_name!r} has no attribute {attribute!r}") from None


@worker_app.command("run")
def worker_run(
    spec: str = typer.Argument(
        ...,
        help="MODULE:ATTRIBUTE naming a dict with 'workflows' "
        "and 'activities' lists (or a function returning one).",
    ),
    task_queue: str = typer.Option(..., "--task-queue", "-q", envvar="ORCHESTRATOR_TASK_QUEUE"),
    max_concurrent_activities: int = typer.Option(100, envvar="ORCHESTRATOR_MAX_ACTIVITIES"),
    max_concurrent_workflow_tasks: int = typer.Option(
        100, envvar="ORCHESTRATOR_MAX_WORKFLOW_TASKS"
    ),
    log_level: str = typer.Option("INFO", envvar="ORCHESTRATOR_LOG_LEVEL"),
    url: str | None = UrlOption,
    namespace: str = NamespaceOption,
) -> None:
    """Run a worker for the workflows and activities that SPEC names."""

    async def main() -> None:
        definition = _load_worker_spec(spec)
        if callable(definition) and not isinstance(definition, dict):
            try:
                definition = definition()
            except TypeError as exc:
                raise ConfigurationError(
                    f"{spec} could not be called without arguments: {exc}"
                ) from None
        if not isinstance(definition, dict):
            raise ConfigurationError(f"{spec} must be a dict with 'workflows' and 'activities'")
        if log_level.upper() not in LOG_LEVELS:
            raise ConfigurationError(f"--log-level must be one of {', '.join(LOG_LEVELS)}")
        logs.configure(log_level)
        async with await Client.connect(url, namespace=namespace) as client:
            worker = Worker(
                client,
                task_queue=task_queue,
                workflows=definition.get("workflows", []),
                activities=definition.get("activities", []),
                max_concurrent_activities=max_concurrent_activities,
                max_concurrent_workflow_tasks=max_concurrent_workflow_tasks,
            )
            await worker.run()

    _run(main())


def main() -> None:
    logging.getLogger("asyncio").setLevel(logging.WARNING)
    app()
