"""``orchestrator server start-dev``: a Redis for development, in one command.

It runs ``redis-server`` from PATH when there is one (keeping its data in
``--data-dir`` when given), else an in-memory fakeredis server inside this
process, always on 127.0.0.1. It runs until Ctrl-C or SIGTERM, then stops the
server it started.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Annotated

import redis
import typer

from ..devserver import EmbeddedRedis
from ..errors import OrchestratorError
from .reporting import reported_errors, warn

server_app = typer.Typer(help="Run a Redis for development.", no_args_is_help=True)

# How often the server is checked to still answer while it runs.
CHECK_SECONDS = 2.0


class DevServerError(OrchestratorError):
    """Raised when the development server stops answering while it should run."""


@server_app.command("start-dev")
def start_dev(
    port: Annotated[
        int | None,
        typer.Option(
            "--port", "-p", min=1, max=65535, help="Port on 127.0.0.1 (default: a free one)."
        ),
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            "--db-file",
            file_okay=False,
            help="Folder where redis-server keeps its data across restarts "
            "(default: none, data is lost on stop).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Run a Redis on 127.0.0.1 for development until Ctrl-C, and print the URL to use."""
    # What the embedded server logs, this command says itself, in its own words.
    logging.getLogger("orchestrator.devserver").setLevel(logging.ERROR)
    stop = threading.Event()
    with reported_errors(), _stopped_by_signals(stop):
        server = EmbeddedRedis(data_dir=data_dir, port=port)
        if data_dir is not None and server.kind == "fakeredis":
            warn(f"redis-server is not on PATH: data is kept in memory only, not in {data_dir}")
        with server:
            _announce(server, data_dir)
            _serve(server, stop)
        typer.echo("Dev server stopped.")


def _announce(server: EmbeddedRedis, data_dir: Path | None) -> None:
    if server.kind == "redis-server" and data_dir is not None:
        where = f"data kept in {data_dir}"
    else:
        where = "data kept in memory, lost on stop"
    typer.echo(f"Dev server ({server.kind}, {where}) listening at {server.url}")
    typer.echo("Use it from other shells with:")
    typer.echo(f"  export ORCHESTRATOR_REDIS_URL={server.url}")
    typer.echo("Press Ctrl-C to stop it.")


def _serve(server: EmbeddedRedis, stop: threading.Event) -> None:
    """Wait for the stop signal, checking now and then that the server still answers."""
    probe = redis.Redis.from_url(server.url, socket_timeout=5, socket_connect_timeout=5)
    try:
        while not stop.wait(CHECK_SECONDS):
            try:
                probe.ping()
            except redis.RedisError as exc:
                raise DevServerError(
                    f"the dev server at {server.url} stopped answering: {exc}"
                ) from None
    finally:
        probe.close()


@contextlib.contextmanager
def _stopped_by_signals(stop: threading.Event) -> Iterator[None]:
    """Turn SIGINT and SIGTERM into setting ``stop`` while the block runs."""

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signals = (signal.SIGINT, signal.SIGTERM)
    try:
        previous = {sig: signal.signal(sig, handler) for sig in signals}
    except ValueError:  # not the main thread: leave signals alone
        previous = {}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
