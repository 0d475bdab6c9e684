"""``orchestrator worker run``: a worker for the workflows and activities a module holds.

Every flag may be set instead by the environment variable shown in ``--help``
(``ORCHESTRATOR_TASK_QUEUE``, ``ORCHESTRATOR_LOG_LEVEL``, ...), which suits
containers. A flag, or its variable, wins over the same option in a worker-options
dict; the Worker's own default applies to what neither sets.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Annotated, Any

import typer
from prometheus_client import disable_created_metrics

from .. import logs
from ..client import Client
from ..errors import ConfigurationError
from ..worker import Worker
from . import loading
from .options import (
    ConnectTimeout,
    LogFormatOption,
    LogLevel,
    LogLevelOption,
    MetricsHost,
    Namespace,
    RedisUrl,
)
from .reporting import reported_errors, run

logger = logging.getLogger(__name__)

worker_app = typer.Typer(help="Run workers.", no_args_is_help=True)

LIMITS = "Limits"
OBSERVABILITY = "Metrics and logs"


@dataclass(frozen=True, slots=True)
class WorkerPlan:
    """What ``worker run`` will start: the Worker's options."""

    options: dict[str, Any]  # keyword arguments of Worker, task_queue included


def plan_worker(spec: str, flags: dict[str, Any]) -> WorkerPlan:
    """Merge what ``spec`` names with the flags that were given (those not None)."""
    options = loading.worker_options(loading.load(spec), spec)
    options.update({name: value for name, value in flags.items() if value is not None})
    if not options.get("task_queue"):
        raise ConfigurationError(
            "no task queue: give --task-queue (or ORCHESTRATOR_TASK_QUEUE), or name a dict "
            "of Worker options holding 'task_queue' (MODULE:ATTRIBUTE)"
        )
    return WorkerPlan(options)


SPEC_HELP = (
    "What to run: MODULE (or path/to/file.py) to serve every function in it decorated with "
    "workflow.defn or activity.defn; MODULE:ATTRIBUTE naming a dict of Worker options "
    "(workflows, activities, task_queue, ...), a function returning one, or a list of "
    "decorated functions."
)


@worker_app.command("run")
def worker_run(
    spec: Annotated[str, typer.Argument(metavar="MODULE[:ATTRIBUTE]", help=SPEC_HELP)],
    task_queue: Annotated[
        str | None,
        typer.Option("--task-queue", "-q", envvar="ORCHESTRATOR_TASK_QUEUE", show_default=False),
    ] = None,
    max_concurrent_activities: Annotated[
        int | None,
        typer.Option(
            min=1,
            envvar=["ORCHESTRATOR_MAX_CONCURRENT_ACTIVITIES", "ORCHESTRATOR_MAX_ACTIVITIES"],
            help="Activities run at once (default: 100).",
            rich_help_panel=LIMITS,
        ),
    ] = None,
    max_concurrent_workflow_tasks: Annotated[
        int | None,
        typer.Option(
            min=1,
            envvar=[
                "ORCHESTRATOR_MAX_CONCURRENT_WORKFLOW_TASKS",
                "ORCHESTRATOR_MAX_WORKFLOW_TASKS",
            ],
            help="Workflow tasks run at once (default: 100).",
            rich_help_panel=LIMITS,
        ),
    ] = None,
    graceful_shutdown_timeout: Annotated[
        float | None,
        typer.Option(
            min=0,
            envvar="ORCHESTRATOR_GRACEFUL_SHUTDOWN_TIMEOUT",
            help="Seconds running tasks get to finish on Ctrl-C or SIGTERM (default: 30).",
            rich_help_panel=LIMITS,
        ),
    ] = None,
    drive_schedules: Annotated[
        bool | None,
        typer.Option(
            "--drive-schedules/--no-drive-schedules",
            envvar="ORCHESTRATOR_DRIVE_SCHEDULES",
            help="Fire the namespace's due schedules too (default: drive them).",
            show_default=False,
        ),
    ] = None,
    identity: Annotated[
        str | None,
        typer.Option(
            envvar="ORCHESTRATOR_IDENTITY",
            help="Worker name in logs and task-queue describe (default: host:pid:random).",
            show_default=False,
        ),
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=65535,
            envvar="ORCHESTRATOR_METRICS_PORT",
            help="Serve /metrics, /healthz and /readyz on this port (default: not served).",
            show_default=False,
            rich_help_panel=OBSERVABILITY,
        ),
    ] = None,
    metrics_host: MetricsHost = "0.0.0.0",
    queue_metrics: Annotated[
        bool | None,
        typer.Option(
            "--queue-metrics/--no-queue-metrics",
            envvar="ORCHESTRATOR_QUEUE_METRICS",
            help="Also report the namespace's queue-level gauges, as `metrics serve` does. "
            "Turn it on for one worker only, or every scrape counts them again.",
            show_default=False,
            rich_help_panel=OBSERVABILITY,
        ),
    ] = None,
    log_level: LogLevelOption = LogLevel.INFO,
    log_format: LogFormatOption = logs.LogFormat.TEXT,
    url: RedisUrl = None,
    namespace: Namespace = "default",
    connect_timeout: ConnectTimeout = 60.0,
) -> None:
    """Run a worker for the workflows and activities MODULE[:ATTRIBUTE] names, until Ctrl-C.

    On Ctrl-C or SIGTERM the worker stops taking tasks and lets running ones finish.
    """
    flags = {
        "task_queue": task_queue,
        "max_concurrent_activities": max_concurrent_activities,
        "max_concurrent_workflow_tasks": max_concurrent_workflow_tasks,
        "graceful_shutdown_timeout": graceful_shutdown_timeout,
        "drive_schedules": drive_schedules,
        "identity": identity,
        "metrics_port": metrics_port,
        "metrics_host": metrics_host if metrics_port is not None else None,
        "queue_metrics": queue_metrics,
    }
    with reported_errors():
        plan = plan_worker(spec, flags)
    # A `_created` series per label set doubles the series Prometheus stores, for a
    # timestamp that restarts already reveal; this process is ours to configure.
    disable_created_metrics()
    logs.configure(log_level.value, log_format)

    async def main() -> None:
        client = await Client.connect(url, namespace=namespace, wait=connect_timeout)
        async with client:
            await Worker(client, **plan.options).run()

    run(main())
