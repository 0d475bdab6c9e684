"""An embedded Redis for development, the demo and the tests.

``EmbeddedRedis`` runs a private Redis on 127.0.0.1 for as long as a ``with`` block lasts. It
prefers a real ``redis-server`` binary from PATH and falls back to fakeredis's TCP server, which
speaks the same protocol (Lua with cjson, streams, blocking XREADGROUP) from a thread of this
process. The fallback keeps everything in memory and is meant for trying things out, not for
measuring anything.

Never point this at a Redis you did not start: it always binds to loopback on its own port.
"""

from __future__ import annotations

import logging
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Self

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from .errors import OrchestratorError

if TYPE_CHECKING:
    from fakeredis import TcpFakeServer

logger = logging.getLogger(__name__)

HOST = "127.0.0.1"
KINDS = ("redis-server", "fakeredis")

START_TIMEOUT_SECONDS = 10.0
STOP_TIMEOUT_SECONDS = 5.0
# A port picked by free_port() can be taken by someone else before redis-server binds it.
PORT_ATTEMPTS = 3
LOG_TAIL_LINES = 5


class EmbeddedRedisError(OrchestratorError):
    """Raised when the embedded Redis cannot be started."""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago.

    The port is released before returning, so another process may grab it first; callers that
    start a server on it should be ready to retry.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class EmbeddedRedis:
    """A private Redis on 127.0.0.1, running while the context manager is open.

    ``kind`` says which implementation runs ("redis-server" or "fakeredis") and ``url`` where
    to reach it once started. With ``data_dir`` a redis-server keeps its append-only file there,
    so data survives a restart on the same directory; without it the server runs in a temporary
    directory with persistence off, and the directory is removed on exit.
    """

    def __init__(
        self,
        data_dir: Path | None = None,
        port: int | None = None,
        prefer: str = "auto",
    ) -> None:
        self.kind = _choose_kind(prefer, data_dir)
        self._data_dir = data_dir
        self._requested_port = port
        self._port: int | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._temp_dir: Path | None = None
        self._fake_server: TcpFakeServer | None = None
        self._fake_thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The redis:// URL of the running server (database 0)."""
        if self._port is None:
            raise EmbeddedRedisError("the embedded Redis is not running")
        return f"redis://{HOST}:{self._port}/0"

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self, port: int | None = None) -> None:
        """Start the server and return once it answers.

        ``port`` overrides the constructor's; passing the old port after ``stop()`` restarts the
        server at the same URL (with ``data_dir``, on the same data too).
        """
        if self._port is not None:
            raise EmbeddedRedisError("the embedded Redis is already running")
        port = port if port is not None else self._requested_port
        if self.kind == "redis-server":
            self._start_redis_server(port)
        else:
            self._start_fakeredis(port)
        logger.info("embedded Redis (%s) listening at %s", self.kind, self.url)

    def stop(self) -> None:
        """Stop the server and remove its temporary directory; safe to call more than once."""
        if self._process is not None:
            _terminate(self._process)
            self._process = None
        if self._fake_server is not None:
            self._stop_fakeredis()
        if self._temp_dir is not None:
            shutil.rmtree(self._temp_dir, ignore_errors=True)
            self._temp_dir = None
        if self._port is not None:
            logger.info("embedded Redis (%s) on port %d stopped", self.kind, self._port)
            self._port = None

    # redis-server

    def _start_redis_server(self, requested_port: int | None) -> None:
        directory = self._prepare_directory()
        attempts = 1 if requested_port is not None else PORT_ATTEMPTS
        for attempt in range(1, attempts + 1):
            port = requested_port or free_port()
            log = _LogFile(directory / "redis.log")
            process = _spawn_redis_server(directory, port, log, persist=self._data_dir is not None)
            try:
                _wait_for_ping(process, port, log)
            except _PortTaken as exc:
                _terminate(process)
                if requested_port is not None:
                    self._discard_temp_dir()
                    raise EmbeddedRedisError(f"port {port} on {HOST} is already in use") from exc
                logger.debug("port %d was taken (attempt %d of %d)", port, attempt, attempts)
                continue
            except BaseException:
                # Covers Ctrl-C during the wait as well: never leave a half-started server behind.
                _terminate(process)
                self._discard_temp_dir()
                raise
            self._process, self._port = process, port
            return

        self._discard_temp_dir()
        raise EmbeddedRedisError(f"redis-server found no free port after {attempts} attempts")

    def _prepare_directory(self) -> Path:
        if self._data_dir is not None:
            self._data_dir.mkdir(parents=True, exist_ok=True)
            return self._data_dir
        self._temp_dir = Path(tempfile.mkdtemp(prefix="orchestrator-redis-"))
        return self._temp_dir

    def _discard_temp_dir(self) -> None:
        if self._temp_dir is not None:
            shutil.rmtree(self._temp_dir, ignore_errors=True)
            self._temp_dir = None

    # fakeredis

    def _start_fakeredis(self, requested_port: int | None) -> None:
        server_class = _import_fake_server()
        try:
            server = server_class((HOST, requested_port or 0), server_type="redis")
        except OSError as exc:
            raise EmbeddedRedisError(f"fakeredis could not listen on {HOST}: {exc}") from exc

        # A connection thread stuck in a blocking command (BLPOP, XREADGROUP BLOCK 0) never sees
        # its client leave nor the server stop, so stop() must not wait for it. Such threads are
        # left behind as daemon threads until this process exits: a known shortcoming of the
        # fallback, harmless for a demo or a test run.
        server.daemon_threads = True
        server.block_on_close = False

        # Binding port 0 lets the OS choose, so unlike redis-server there is no race to retry.
        self._port = int(server.server_address[1])
        self._fake_server = server
        self._fake_thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"embedded-fakeredis-{self._port}",
            daemon=True,
        )
        self._fake_thread.start()

    def _stop_fakeredis(self) -> None:
        assert self._fake_server is not None
        # shutdown() stops the accept loop and tells connection threads to finish; server_close()
        # closes the listening socket so the port is free again.
        self._fake_server.shutdown()
        self._fake_server.server_close()
        if self._fake_thread is not None:
            self._fake_thread.join(STOP_TIMEOUT_SECONDS)
            self._fake_thread = None
        self._fake_server = None


class _PortTaken(Exception):
    """redis-server exited because another process holds its port."""


def _choose_kind(prefer: str, data_dir: Path | None) -> str:
    if prefer not in ("auto", *KINDS):
        raise ValueError(f"prefer must be 'auto', 'redis-server' or 'fakeredis', not {prefer!r}")
    if prefer == "fakeredis" and data_dir is not None:
        raise ValueError("fakeredis keeps data in memory only; it cannot use a data_dir")

    if prefer == "redis-server" and shutil.which("redis-server") is None:
        raise EmbeddedRedisError("redis-server was requested but is not on PATH")
    if prefer != "auto":
        return prefer
    if shutil.which("redis-server") is not None:
        return "redis-server"

    if data_dir is not None:
        logger.warning("redis-server is not on PATH; using fakeredis, which ignores %s", data_dir)
    return "fakeredis"


class _LogFile:
    """redis-server's log file, read from where it ended before this start.

    A persistent data_dir keeps the log of earlier runs; reading only what this run appended
    keeps an old "Address already in use" from being mistaken for a new one.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = path.stat().st_size if path.exists() else 0

    def tail(self) -> str:
        """The last few lines this run wrote, joined on one line for an error message."""
        try:
            with self.path.open("rb") as stream:
                stream.seek(self._offset)
                text = stream.read().decode(errors="replace")
        except OSError:
            return f"no log at {self.path}"
        lines = [line.strip() for line in text.strip().splitlines()]
        return f"last lines of {self.path}: {' | '.join(lines[-LOG_TAIL_LINES:]) or '(empty)'}"


def _spawn_redis_server(
    directory: Path, port: int, log: _LogFile, persist: bool
) -> subprocess.Popen[bytes]:
    persistence = ["--appendonly", "yes"] if persist else ["--save", "", "--appendonly", "no"]
    command = [
        "redis-server",
        *("--bind", HOST, "--port", str(port), "--dir", str(directory)),
        *("--daemonize", "no", "--logfile", str(log.path)),
        *persistence,
    ]
    logger.debug("starting %s", " ".join(command))

    # Errors printed before redis-server opens its log file (a bad argument, say) go to stderr;
    # appending them to the same log keeps one place to look.
    with log.path.open("ab") as output:
        try:
            return subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=output,
                # Its own session keeps Ctrl-C away from it, so the owner decides when it stops
                # (after the workers that still talk to it).
                start_new_session=True,
            )
        except OSError as exc:
            raise EmbeddedRedisError(f"could not run redis-server: {exc}") from exc


def _wait_for_ping(process: subprocess.Popen[bytes], port: int, log: _LogFile) -> None:
    # No retries inside redis-py: this loop retries itself and must keep checking the process.
    client = redis.Redis(
        host=HOST,
        port=port,
        socket_connect_timeout=0.5,
        socket_timeout=0.5,
        retry=Retry(NoBackoff(), 0),
    )
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    try:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                _raise_early_exit(process.returncode, log)
            try:
                pid = client.info("server")["process_id"]
            except redis.RedisError:
                time.sleep(0.05)
                continue
            # Another server may already hold the port and answer before ours gives up on it;
            # talking to that one instead would be far worse than failing.
            if pid != process.pid:
                raise _PortTaken(f"{HOST}:{port} is answered by another Redis (pid {pid})")
            return
    finally:
        client.close()

    raise EmbeddedRedisError(
        f"redis-server did not answer on {HOST}:{port} within {START_TIMEOUT_SECONDS:.0f} s"
        f"; {log.tail()}"
    )


def _raise_early_exit(returncode: int, log: _LogFile) -> None:
    tail = log.tail()
    if "Address already in use" in tail:
        raise _PortTaken(tail)
    raise EmbeddedRedisError(f"redis-server exited with status {returncode} at startup; {tail}")


def _terminate(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        logger.warning("redis-server (pid %d) ignored SIGTERM; killing it", process.pid)
        process.kill()
        process.wait()


def _import_fake_server() -> type[TcpFakeServer]:
    # fakeredis is a test extra, not a runtime dependency, so it is imported only when needed.
    try:
        from fakeredis import TcpFakeServer
    except ImportError as exc:
        raise EmbeddedRedisError(
            "redis-server is not on PATH and fakeredis is not installed; "
            "install one of them (pip install 'fakeredis[lua]')"
        ) from exc
    return TcpFakeServer
