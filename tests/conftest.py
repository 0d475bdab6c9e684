"""Fixtures shared by the whole suite.

One real redis-server, started on a free loopback port, serves the whole session; each test that
asks for ``redis_url`` gets it freshly flushed. Without a redis-server binary those tests are
skipped on a developer machine but fail in CI (CI=true), where a silent skip would hide them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator

import pytest
import redis

from orchestrator.devserver import EmbeddedRedis


@pytest.fixture(scope="session")
def redis_server_binary() -> str:
    """Path of redis-server on PATH; skips the test locally, fails it in CI, when missing."""
    path = shutil.which("redis-server")
    if path is not None:
        return path

    message = "redis-server is not on PATH (apt-get install redis-server, or brew install redis)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def redis_server(redis_server_binary: str) -> Iterator[EmbeddedRedis]:
    """A redis-server for the whole session, in a temporary directory, without persistence."""
    with EmbeddedRedis(prefer="redis-server") as server:
        yield server


@pytest.fixture
def redis_url(redis_server: EmbeddedRedis) -> str:
    """URL of the session's redis-server (database 0), emptied before the test."""
    client = redis.Redis.from_url(redis_server.url)
    try:
        client.flushall()
    finally:
        client.close()
    return redis_server.url


@pytest.fixture
def url(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """``redis_url``, also set as ORCHESTRATOR_REDIS_URL for the activities that read it."""
    monkeypatch.setenv("ORCHESTRATOR_REDIS_URL", redis_url)
    return redis_url


@pytest.fixture
def env(redis_url: str) -> dict[str, str]:
    """The environment for worker and starter processes that use ``redis_url``."""
    return {**os.environ, "ORCHESTRATOR_REDIS_URL": redis_url, "PYTHONUNBUFFERED": "1"}


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    """Processes a test starts (append them here); any still running at its end are killed."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
