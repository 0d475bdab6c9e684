"""Connecting to Redis, and riding out its restarts.

``ORCHESTRATOR_REDIS_URL`` names the server (default ``redis://localhost:6379/0``);
``redis://:password@host`` authenticates and ``rediss://`` uses TLS. A password may
come instead from ``ORCHESTRATOR_REDIS_PASSWORD`` (used when the URL has none),
which suits a Kubernetes Secret better than a URL does.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

import redis
import redis.exceptions
from redis.asyncio import BlockingConnectionPool, Redis
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_delay,
    wait_exponential,
    wait_random,
)

from .errors import ConfigurationError, RedisUnavailableError

logger = logging.getLogger(__name__)

DEFAULT_URL = "redis://localhost:6379/0"
PASSWORD_ENV = "ORCHESTRATOR_REDIS_PASSWORD"
SOCKET_TIMEOUT = 15.0
CONNECT_RETRY_PAUSE = 2.0
T = TypeVar("T")

# Errors after which the same call may well succeed once Redis is back.
TRANSIENT = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,
    redis.exceptions.TryAgainError,
    ConnectionError,
    OSError,
)


@dataclass
class RedisStats:
    """This process's transient Redis errors and recoveries, for the metrics collector.

    Plain integers, bumped only on the error path: the hot path never touches them.
    """

    errors: Counter[str] = field(default_factory=Counter)
    reconnects: int = 0
    # When calls began to fail (monotonic), until one gets through; and when that last
    # happened. Health probes read both.
    failing_since: float | None = None
    recovered_at: float | None = None

    def failed(self, exc: BaseException) -> None:
        self.errors[type(exc).__name__] += 1
        if self.failing_since is None:
            self.failing_since = time.monotonic()

    def recovered(self) -> None:
        if self.failing_since is not None:
            logger.warning(
                "Redis answers again after %.1f s", time.monotonic() - self.failing_since
            )
            self.failing_since = None
            self.recovered_at = time.monotonic()


stats = RedisStats()


def redis_url(url: str | None = None) -> str:
    return url or os.environ.get("ORCHESTRATOR_REDIS_URL") or DEFAULT_URL


def _password() -> dict[str, str]:
    # redis-py lets a password in the URL override this one.
    password = os.environ.get(PASSWORD_ENV)
    return {"password": password} if password else {}


def safe_url(url: str) -> str:
    """The URL with any password masked, for messages and logs."""
    if "@" not in url:
        return url
    scheme, _, rest = url.partition("://")
    creds, _, host = rest.rpartition("@")
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"


async def connect(url: str | None = None, *, max_connections: int = 64, wait: float = 0.0) -> Redis:
    """Open a connection pool and check that the server answers, with a clear error if not.

    The pool makes callers wait for a free connection rather than fail when
    many tasks talk to Redis at once. With ``wait``, an unreachable server is
    tried again for up to that many seconds (a worker starting while Redis
    restarts); a refused password fails at once.
    """
    url = redis_url(url)
    try:
        # The socket timeout must outlast our longest blocking read (5 s), or a
        # quiet XREAD would be mistaken for a dead server.
        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=None,
            decode_responses=True,
            health_check_interval=30,
            socket_timeout=SOCKET_TIMEOUT,
            socket_keepalive=True,
            **_password(),
        )
        client = Redis.from_pool(pool)
    except (ValueError, TypeError) as exc:
        raise ConfigurationError(_url_message(url, exc)) from None
    deadline = time.monotonic() + wait
    while True:
        try:
            await client.ping()
            return client
        except (redis.exceptions.AuthenticationError, redis.exceptions.ResponseError) as exc:
            await client.aclose()
            raise RedisUnavailableError(_auth_message(url, exc)) from None
        except TRANSIENT as exc:
            if time.monotonic() >= deadline:
                await client.aclose()
                raise RedisUnavailableError(_unreachable_message(url, exc)) from None
            _log_waiting(url, exc, deadline)
        await asyncio.sleep(CONNECT_RETRY_PAUSE)


def connect_sync(
    url: str | None = None, *, socket_timeout: float = SOCKET_TIMEOUT, wait: float = 0.0
) -> redis.Redis:
    """A blocking client, for code that runs outside the event loop (the metrics
    exporter answers scrapes from its HTTP threads), with the same errors and
    ``wait`` as :func:`connect`."""
    url = redis_url(url)
    try:
        client = redis.Redis.from_url(
            url,
            decode_responses=True,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_timeout,
            socket_keepalive=True,
            health_check_interval=30,
            **_password(),
        )
    except (ValueError, TypeError) as exc:
        raise ConfigurationError(_url_message(url, exc)) from None
    deadline = time.monotonic() + wait
    while True:
        try:
            client.ping()
            return client
        except (redis.exceptions.AuthenticationError, redis.exceptions.ResponseError) as exc:
            client.close()
            raise RedisUnavailableError(_auth_message(url, exc)) from None
        except TRANSIENT as exc:
            if time.monotonic() >= deadline:
                client.close()
                raise RedisUnavailableError(_unreachable_message(url, exc)) from None
            _log_waiting(url, exc, deadline)
        time.sleep(CONNECT_RETRY_PAUSE)


def _log_waiting(url: str, exc: BaseException, deadline: float) -> None:
    logger.warning(
        "cannot reach Redis at %s (%s); trying again for up to %.0f s",
        safe_url(url),
        exc,
        max(0.0, deadline - time.monotonic()),
    )


def _unreachable_message(url: str, exc: BaseException) -> str:
    return f"cannot reach Redis at {safe_url(url)}: {exc}"


def _url_message(url: str, exc: Exception) -> str:
    if "@" not in url:
        return f"invalid Redis URL {url!r}: {exc}"
    # The parser's message may quote part of the password: say what to do instead.
    return (
        f"invalid Redis URL {safe_url(url)!r}: check its host, port and database; "
        "a password holding / + @ : # or % must be percent-encoded in the URL, or given "
        f"in ${PASSWORD_ENV} instead"
    )


def _auth_message(url: str, exc: Exception) -> str:
    text = str(exc)
    if "@" not in url and ("NOAUTH" in text or "Authentication required" in text):
        return (
            f"Redis at {safe_url(url)} needs a password: put it in the URL "
            f"(redis://:PASSWORD@host:port/0) or in ${PASSWORD_ENV}"
        )
    if isinstance(exc, redis.exceptions.AuthenticationError) or "WRONGPASS" in text:
        from_env = "@" not in url and os.environ.get(PASSWORD_ENV)
        source = f" (from ${PASSWORD_ENV})" if from_env else ""
        return f"Redis at {safe_url(url)} refused the credentials{source}: {text}"
    return f"Redis at {safe_url(url)}: {text}"


def _count_and_log_retry(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome else None
    if exc is not None:
        stats.failed(exc)
    logger.warning(
        "Redis unavailable (%s); retrying in %.1f s",
        exc,
        state.next_action.sleep if state.next_action else 0,
    )


async def with_retry(call: Callable[[], Awaitable[T]], *, give_up_after: float = 300.0) -> T:
    """Run ``call``, retrying transient Redis errors with exponential backoff and jitter."""
    # The first try goes straight through: this sits on every hot path.
    began = time.monotonic()
    try:
        result = await call()
    except TRANSIENT as exc:
        stats.failed(exc)
        logger.warning("Redis unavailable (%s); retrying", exc)
    else:
        # Another call failed and this one, begun since, got through. (A long call begun
        # before the failure proves nothing: it may have talked to Redis only at its start.)
        if stats.failing_since is not None and began > stats.failing_since:
            stats.recovered()
        return result
    async for attempt in AsyncRetrying(
        retry=retry_if_exception_type(TRANSIENT),
        wait=wait_exponential(multiplier=0.1, max=5.0) + wait_random(0, 0.2),
        stop=stop_after_delay(give_up_after),
        before_sleep=_count_and_log_retry,
        reraise=True,
    ):
        with attempt:
            result = await call()
            stats.reconnects += 1
            stats.recovered()
            return result
    raise AssertionError("unreachable")  # AsyncRetrying either returns or re-raises


def is_transient(exc: BaseException) -> bool:
    return isinstance(exc, TRANSIENT)
