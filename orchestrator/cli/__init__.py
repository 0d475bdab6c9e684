"""The ``orchestrator`` command: run a dev server and workers, start and inspect workflows.

One Typer app per command group, each in its own module:

    orchestrator server start-dev           server.py
    orchestrator worker run                 worker.py
    orchestrator workflow start|execute|... workflow.py
    orchestrator workflow list|count        listing.py
    orchestrator schedule create|list|...   schedule.py
    orchestrator task-queue describe        task_queue.py
    orchestrator metrics serve              metrics.py

Every error prints one line on stderr and exits non-zero (see ``reporting.py``);
``orchestrator --verbose ...`` shows the traceback as well.
"""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from . import listing  # noqa: F401 - registers `workflow list` and `workflow count`
from .metrics import metrics_app
from .reporting import OneLineErrorsGroup, verbose
from .schedule import schedule_app
from .server import server_app
from .task_queue import task_queue_app
from .worker import worker_app
from .workflow import workflow_app

__all__ = ["app", "main"]

app = typer.Typer(
    cls=OneLineErrorsGroup,
    help="Durable workflows on Redis.",
    no_args_is_help=True,
    # A traceback's locals could show a Redis URL with its password.
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(server_app, name="server")
app.add_typer(worker_app, name="worker")
app.add_typer(workflow_app, name="workflow")
app.add_typer(schedule_app, name="schedule")
app.add_typer(task_queue_app, name="task-queue")
app.add_typer(metrics_app, name="metrics")


@app.callback()
def _root(
    show_traceback: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show the traceback of an error.")
    ] = False,
) -> None:
    verbose.set(show_traceback)


def main() -> None:
    logging.getLogger("asyncio").setLevel(logging.WARNING)
    app(prog_name="orchestrator")
