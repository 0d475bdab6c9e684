"""Connecting to Redis, and riding out its restarts.

``ORCHESTRATOR_REDIS_URL`` names the server (default ``redis://localhost:6379/0``);
``redis://:password@host`` authenticates and ``rediss://`` uses TLS.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable
from typing import TypeVar

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
SOCKET_TIMEOUT = 15.0
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


def redis_url(url: str | None = None) -> str:
    return url or os.environ.get("ORCHESTRATOR_REDIS_URL") or DEFAULT_URL


def safe_url(url: str) -> str:
    """The URL with any password masked, for messages and logs."""
    if "@" not in url:
        return url
    scheme, _, rest = url.partition("://")
    creds, _, host = rest.rpartition("@")
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"


async def connect(url: str | None = None, *, max_connections: int = 64) -> Redis:
    """Open a connection pool and check that the server answers, with a clear error if not.

    The pool makes callers wait for a free connection rather than fail when
    many tasks talk to Redis at once.
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
        )
        client = Redis.from_pool(pool)
    except (ValueError, TypeError) as exc:
        raise ConfigurationError(f"invalid Redis URL {safe_url(url)!r}: {exc}") from None
    try:
        await client.ping()
    except (redis.exceptions.AuthenticationError, redis.exceptions.ResponseError) as exc:
        await client.aclose()
        raise RedisUnavailableError(_auth_message(url, exc)) from None
    except TRANSIENT as exc:
        await client.aclose()
        raise RedisUnavailableError(f"cannot reach Redis at {safe_url(url)}: {exc}") from None
    return client


def _auth_message(url: str, exc: Exception) -> str:
    text = str(exc)
    if "@" not in url and ("NOAUTH" in text or "Authentication required" in text):
        return (
            f"Redis at {safe_url(url)} needs a password: put it in the URL "
            "(redis://:PASSWORD@host:port/0)"
        )
    if isinstance(exc, redis.exceptions.AuthenticationError) or "WRONGPASS" in text:
        return f"Redis at {safe_url(url)} refused the credentials: {text}"
    return f"Redis at {safe_url(url)}: {text}"


def _log_retry(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome else None
    logger.warning(
        "Redis unavailable (%s); retrying in %.1f s",
        exc,
        state.next_action.sleep if state.next_action else 0,
    )


async def with_retry(call: Callable[[], Awaitable[T]], *, give_up_after: float = 300.0) -> T:
    """Run ``call``, retrying transient Redis errors with exponential backoff and jitter."""
    # The first try goes straight through: this sits on every hot path.
    try:
        return await call()
    except TRANSIENT as exc:
        logger.warning("Redis unavailable (%s); retrying", exc)
    async for attempt in AsyncRetrying(
        retry=retry_if_exception_type(TRANSIENT),
        wait=wait_exponential(multiplier=0.1, max=5.0) + wait_random(0, 0.2),
        stop=stop_after_delay(give_up_after),
        before_sleep=_log_retry,
        reraise=True,
    ):
        with attempt:
            return await call()
    raise AssertionError("unreachable")  # AsyncRetrying either returns or re-raises


def is_transient(exc: BaseException) -> bool:
    return isinstance(exc, TRANSIENT)
