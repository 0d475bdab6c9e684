"""Printing what commands found: rich tables for people, JSON for scripts.

Tables show times in the local zone of the person reading them, zone named
(``2026-05-04 14:03:22 CEST``); JSON keeps what scripts want: ISO 8601 times in
UTC, raw epoch milliseconds where the stored data has them.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import typer
from rich import box
from rich.console import Console
from rich.table import Table

from .. import history

MAX_VALUE_WIDTH = 80
PIPED_WIDTH = 200
# The longest event type, StartChildWorkflowExecutionInitiated.
EVENT_TYPE_WIDTH = 36
# Keys of event attributes whose string values read best unquoted.
NAME_KEYS = frozenset(
    {"activity_type", "workflow_type", "task_queue", "worker", "name", "patch_id"}
)
# Event attributes too bulky or too internal for a one-line summary.
HIDDEN_KEYS = frozenset({"retry_policy", "cancellation_type", "workflow_id", "run_id"})


def console(*, stderr: bool = False) -> Console:
    # Piped into a file or grep, rows are better long than folded at Rich's default of 80
    # columns; COLUMNS, when set, still decides.
    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() or "COLUMNS" in os.environ else PIPED_WIDTH
    # Values are data, never markup: a result like "[red]" must print as it is.
    return Console(stderr=stderr, width=width, markup=False, emoji=False, highlight=False)


def local_time(value: datetime | int | None, *, millis: bool = False) -> str:
    """A moment (a datetime, or epoch milliseconds) in the local zone, with the zone's name."""
    if value is None:
        return "-"
    moment = datetime.fromtimestamp(value / 1000, tz=UTC) if isinstance(value, int) else value
    local = moment.astimezone()
    text = local.strftime("%Y-%m-%d %H:%M:%S")
    if millis:
        text += f".{local.microsecond // 1000:03d}"
    return f"{text} {local.strftime('%Z') or local.strftime('%z')}"


def json_text(value: Any) -> str:
    return orjson.dumps(value, default=_default).decode()


def shorten(text: str, width: int = MAX_VALUE_WIDTH) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def print_json(value: Any) -> None:
    typer.echo(orjson.dumps(value, default=_default, option=orjson.OPT_INDENT_2).decode())


def print_json_line(value: Any) -> None:
    typer.echo(json_text(value))


def _default(value: Any) -> Any:
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Path | Exception):
        return str(value)
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def print_fields(rows: Iterable[tuple[str, Any]], title: str | None = None) -> None:
    """A two-column table of names and values, the way ``describe`` shows one thing."""
    table = Table(show_header=False, box=None, title=title, title_justify="left", pad_edge=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    for name, value in rows:
        table.add_row(name, "-" if value in (None, "") else str(value))
    console().print(table)


def print_table(
    headers: Sequence[str], rows: Iterable[Sequence[Any]], title: str | None = None
) -> None:
    table = Table(box=box.SIMPLE_HEAD, title=title, title_justify="left", pad_edge=False)
    for header in headers:
        table.add_column(header, overflow="fold")
    for row in rows:
        table.add_row(*("-" if cell in (None, "") else str(cell) for cell in row))
    console().print(table)


def print_events(
    events: Sequence[history.Event], *, header: bool = True, aligned: bool = False
) -> None:
    """History events as rows; ``aligned`` rows line up with those of other calls."""
    table = Table(box=None, show_header=header, pad_edge=False, header_style="bold")
    table.add_column("ID", justify="right", min_width=5 if aligned else None)
    table.add_column("Time", no_wrap=True)
    type_width = EVENT_TYPE_WIDTH if aligned else None
    table.add_column("Type", min_width=type_width, no_wrap=True)
    table.add_column("Details", overflow="fold")
    for event in events:
        table.add_row(
            str(event.get("id", "")),
            local_time(event.get("ts"), millis=True),
            str(event.get("type", "")),
            event_details(event),
        )
    console().print(table)


def event_details(event: history.Event) -> str:
    """An event's attributes in one line: ``activity_type=Greet seq=1 input=["A"]``."""
    parts = []
    for key, value in (event.get("attrs") or {}).items():
        if key in HIDDEN_KEYS or (key.endswith("_ms") and not value):
            continue
        if key == "failure" and isinstance(value, dict):
            text = f"{value.get('type', 'Error')}: {value.get('message', '')}"
        elif key in NAME_KEYS and isinstance(value, str):
            text = value
        else:
            text = json_text(value)
        parts.append(f"{key}={shorten(text)}")
    return " ".join(parts)
