"""One HTTP port per process for Prometheus and Kubernetes: ``/metrics``, ``/healthz``
and ``/readyz``.

The server runs in a daemon thread, as prometheus-client's own does, so a busy or
blocked event loop cannot hide from the probes: liveness is judged from
timestamps the loops leave behind, not by asking the loop.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from http.server import ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import urlparse

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import MetricsHandler

from . import connection

logger = logging.getLogger(__name__)

Verdict = tuple[bool, str]


class Outage(Protocol):
    """Since when Redis has been failing (None while it answers), and when it came back."""

    failing_since: float | None
    recovered_at: float | None


class Health:
    """Liveness and readiness, from what the process's loops report as they go.

    Live: every watched loop finished a step within ``stale_after`` seconds, or is
    waiting by design: for a free execution slot, or for Redis to come back. A
    restart cures neither, and restarting every worker during a Redis outage would
    only add to it. Ready: setup done (scripts loaded), Redis answering (its calls
    are not failing), and not shutting down.

    ``outage`` tells since when (monotonic) calls to Redis have been failing, or None
    while they get through, and when they last got through again: the loops get
    ``stale_after`` from then to step again.
    """

    def __init__(self, stale_after: float = 60.0, outage: Outage | None = None) -> None:
        self.stale_after = stale_after
        self.outage: Outage = outage or connection.stats
        self._watched: dict[str, float] = {}
        self._waiting: set[str] = set()
        self._prepared = False
        self._stopping = False

    def watch(self, name: str) -> None:
        self._watched.setdefault(name, time.monotonic())

    def beat(self, name: str) -> None:
        """``name`` finished a step."""
        if name in self._watched:
            self._watched[name] = time.monotonic()
            self._waiting.discard(name)

    def waiting(self, name: str) -> None:
        """``name`` waits for a free slot: slow work, not a stuck loop."""
        self._waiting.add(name)

    def prepared(self) -> None:
        self._prepared = True

    def stopping(self) -> None:
        self._stopping = True

    def live(self) -> Verdict:
        now = time.monotonic()
        down_since = self.outage.failing_since
        if down_since is not None:
            return True, f"waiting for Redis (unreachable for {now - down_since:.0f} s)"
        back = self.outage.recovered_at or 0.0
        stale = [
            f"{name} ({now - at:.0f} s)"
            for name, at in sorted(self._watched.items())
            if name not in self._waiting and now - max(at, back) > self.stale_after
        ]
        if stale:
            return False, "no recent step: " + ", ".join(stale)
        return True, "ok"

    def ready(self) -> Verdict:
        if self._stopping:
            return False, "shutting down"
        if not self._prepared:
            return False, "starting: scripts not loaded yet"
        down_since = self.outage.failing_since
        if down_since is not None:
            return False, f"Redis unreachable for {time.monotonic() - down_since:.0f} s"
        return True, "ok"


def _handler(registry: CollectorRegistry, health: Health) -> type[MetricsHandler]:
    probes: dict[str, Callable[[], Verdict]] = {
        "/healthz": health.live,
        "/livez": health.live,
        "/readyz": health.ready,
    }

    class Handler(MetricsHandler):
        def do_GET(self) -> None:
            path = urlparse(self.path).path
            if path == "/metrics":
                super().do_GET()
            elif path in probes:
                ok, reason = probes[path]()
                self._reply(200 if ok else 503, reason)
            else:
                self._reply(404, "not found: try /metrics, /healthz or /readyz")

        def _reply(self, status: int, text: str) -> None:
            body = (text + "\n").encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    Handler.registry = registry
    return Handler


class ProbeServer:
    """Serves a registry's metrics and a :class:`Health` on ``host:port`` (0: any free port)."""

    def __init__(
        self, registry: CollectorRegistry, health: Health, host: str = "0.0.0.0", port: int = 0
    ) -> None:
        self._server = ThreadingHTTPServer((host, port), _handler(registry, health))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="probes", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> ProbeServer:
        self._thread.start()
        host, port = self._server.server_address[:2]
        logger.info("serving /metrics, /healthz and /readyz on http://%s:%d", host, port)
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> ProbeServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
