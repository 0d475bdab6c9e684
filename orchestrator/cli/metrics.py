"""``orchestrator metrics serve``: the namespace's queue-level gauges, from one process.

Workers report what they do; this exporter reports what Redis holds (backlog,
lag, pending tasks, timers, runs started and closed), so that those figures are
scraped once however many workers run. Run one replica per namespace.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from typing import Annotated

import typer
from prometheus_client import CollectorRegistry
from redis import Redis

from .. import logs
from ..connection import TRANSIENT, connect_sync, redis_url, safe_url
from ..errors import ConfigurationError
from ..probes import Health, ProbeServer
from ..queue_metrics import SCRAPE_SOCKET_TIMEOUT, QueueCollector
from .options import (
    ConnectTimeout,
    LogFormatOption,
    LogLevel,
    LogLevelOption,
    MetricsHost,
    Namespace,
    RedisUrl,
)
from .reporting import reported_errors

logger = logging.getLogger(__name__)

metrics_app = typer.Typer(help="Serve Prometheus metrics.", no_args_is_help=True)

PING_INTERVAL = 5.0


@metrics_app.command("serve")
def metrics_serve(
    port: Annotated[
        int,
        typer.Option(
            "--port",
            "--metrics-port",
            min=0,
            max=65535,
            envvar="ORCHESTRATOR_METRICS_PORT",
            help="Port for the HTTP server.",
        ),
    ] = 9464,
    host: MetricsHost = "0.0.0.0",
    task_queue: Annotated[
        list[str] | None,
        typer.Option(
            "--task-queue",
            "-q",
            help="A task queue to report even before a worker has served it; repeat it for "
            "several. Queues that workers serve are found on their own.",
            show_default=False,
        ),
    ] = None,
    timer_scan_limit: Annotated[
        int,
        typer.Option(
            min=0,
            help="Break timers down by kind only while the due-time set holds at most this "
            "many (the breakdown scans it).",
        ),
    ] = 100_000,
    log_level: LogLevelOption = LogLevel.INFO,
    log_format: LogFormatOption = logs.LogFormat.TEXT,
    url: RedisUrl = None,
    namespace: Namespace = "default",
    connect_timeout: ConnectTimeout = 60.0,
) -> None:
    """Serve the namespace's queue gauges on /metrics (with /healthz and /readyz) until Ctrl-C."""
    logs.configure(log_level.value, log_format)
    with reported_errors():
        client = connect_sync(url, socket_timeout=SCRAPE_SOCKET_TIMEOUT, wait=connect_timeout)
        collector = QueueCollector(
            client, [namespace], task_queues=task_queue or (), timer_scan_limit=timer_scan_limit
        )
        registry = CollectorRegistry(auto_describe=False)
        registry.register(collector)
        down = _Outage()
        health = Health(outage=down)
        try:
            server = ProbeServer(registry, health, host, port)
        except OSError as exc:
            raise ConfigurationError(f"cannot serve metrics on {host}:{port}: {exc}") from None
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    logger.info("exporting namespace %r of %s", namespace, safe_url(redis_url(url)))
    health.prepared()
    with server:
        _keep_pinging(client, down, stop)
    health.stopping()
    client.close()


class _Outage:
    """Since when (monotonic) Redis has not answered the exporter's pings, or None;
    and when it last answered again."""

    failing_since: float | None = None
    recovered_at: float | None = None


def _keep_pinging(client: Redis, down: _Outage, stop: threading.Event) -> None:
    """Tell readiness whether Redis answers, between scrapes, until asked to stop."""
    while not stop.wait(PING_INTERVAL):
        try:
            client.ping()
        except TRANSIENT as exc:
            if down.failing_since is None:
                down.failing_since = time.monotonic()
                logger.warning("Redis does not answer: %s", exc)
            continue
        if down.failing_since is not None:
            down.recovered_at = time.monotonic()
            logger.warning(
                "Redis answers again after %.0f s", down.recovered_at - down.failing_since
            )
            down.failing_since = None
