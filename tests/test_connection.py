"""Connecting: URLs, passwords, unreachable servers, clear errors."""

from __future__ import annotations

import asyncio
import concurrent.futures
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from orchestrator import Client, ConfigurationError, RedisUnavailableError, connection
from orchestrator.connection import safe_url
from orchestrator.devserver import free_port

from helpers import run


def server_command(binary: str, port: int, data_dir: Path, *extra: str) -> list[str]:
    """A throwaway redis-server on loopback that keeps nothing."""
    return [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "",
            "--appendonly", "no", "--dir", str(data_dir), *extra]  # fmt: skip


@pytest.fixture
def password_server(redis_server_binary: str, tmp_path: Path) -> Iterator[int]:
    port = free_port()
    proc = subprocess.Popen(
        server_command(redis_server_binary, port, tmp_path, "--requirepass", "s3cret"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            try:
                redis.Redis(port=port, password="s3cret").ping()
                break
            except redis.exceptions.ConnectionError:
                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_password_in_the_url_is_used(password_server: int) -> None:
    async def main() -> None:
        url = f"redis://:s3cret@127.0.0.1:{password_server}/0"
        async with await Client.connect(url) as client:
            assert await client.redis.ping()

    run(main())


def test_wrong_password_is_a_clear_error(password_server: int) -> None:
    async def main() -> None:
        with pytest.raises(RedisUnavailableError, match="refused the credentials") as info:
            await Client.connect(f"redis://:wrong@127.0.0.1:{password_server}/0")
        assert "wrong" not in str(info.value)  # the password is never shown

    run(main())


def test_missing_password_is_a_clear_error(password_server: int) -> None:
    async def main() -> None:
        with pytest.raises(RedisUnavailableError, match="password"):
            await Client.connect(f"redis://127.0.0.1:{password_server}/0")

    run(main())


def test_unreachable_redis_is_a_clear_error() -> None:
    async def main() -> None:
        with pytest.raises(RedisUnavailableError, match="cannot reach Redis"):
            await Client.connect(f"redis://127.0.0.1:{free_port()}/0")

    run(main())


def test_malformed_url_is_a_configuration_error() -> None:
    async def main() -> None:
        with pytest.raises(ConfigurationError, match="invalid Redis URL"):
            await Client.connect("http://example.invalid/")

    run(main())


def test_passwords_are_masked_in_messages() -> None:
    assert safe_url("redis://user:pw@host:1/0") == "redis://user:***@host:1/0"
    assert safe_url("redis://host:1/0") == "redis://host:1/0"


def test_bad_ids_are_rejected_before_touching_redis(redis_url: str) -> None:
    async def main() -> None:
        async with await Client.connect(redis_url) as client:
            with pytest.raises(ConfigurationError, match="workflow id"):
                await client.start_workflow("Hello", id="", task_queue="q")
            with pytest.raises(ConfigurationError, match="task queue"):
                await client.start_workflow("Hello", id="x", task_queue="")
            with pytest.raises(Exception, match="JSON serializable"):
                await client.start_workflow("Hello", object(), id="x", task_queue="q")

    run(main())


def test_shard_count_must_match_the_namespace(redis_url: str) -> None:
    async def main() -> None:
        async with await Client.connect(redis_url, namespace="sharded", shards=4) as client:
            assert client.keys.shards == 4
        async with await Client.connect(redis_url, namespace="sharded") as client:
            assert client.keys.shards == 4
        with pytest.raises(ConfigurationError, match="4 shard"):
            await Client.connect(redis_url, namespace="sharded", shards=2)

    run(main())


def test_password_from_the_environment(
    password_server: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORCHESTRATOR_REDIS_PASSWORD", "s3cret")

    async def main() -> None:
        async with await Client.connect(f"redis://127.0.0.1:{password_server}/0") as client:
            assert await client.redis.ping()

    run(main())


def test_a_password_that_breaks_the_url_is_not_quoted_back() -> None:
    async def main() -> None:
        with pytest.raises(ConfigurationError, match="percent-encoded") as info:
            await Client.connect("redis://:s3cr/t@pw#1@127.0.0.1:6390/0")
        assert "s3cr" not in str(info.value)

    run(main())


def test_connect_waits_for_a_redis_that_comes_up(redis_server_binary: str, tmp_path: Path) -> None:
    port = free_port()

    def start_later() -> subprocess.Popen[bytes]:
        time.sleep(1.0)
        return subprocess.Popen(
            server_command(redis_server_binary, port, tmp_path), stdout=subprocess.DEVNULL
        )

    async def main() -> None:
        with pytest.raises(RedisUnavailableError, match="cannot reach Redis"):
            began = time.monotonic()
            await Client.connect(f"redis://127.0.0.1:{port}/0", wait=0.5)
        assert time.monotonic() - began >= 0.5
        pool = concurrent.futures.ThreadPoolExecutor(1)
        server = pool.submit(start_later)
        try:
            async with await Client.connect(f"redis://127.0.0.1:{port}/0", wait=20) as client:
                assert await client.redis.ping()
        finally:
            server.result().terminate()
            server.result().wait(timeout=10)
            pool.shutdown()

    run(main())


def test_only_a_call_begun_during_an_outage_ends_it() -> None:
    """Health probes read `failing_since`: a slow call that began before Redis failed
    (a step that wrote, then slept) must not pass for proof that Redis is back."""
    stats = connection.stats

    async def slow() -> int:
        await asyncio.sleep(0.05)
        return 1

    async def main() -> None:
        began_before = asyncio.create_task(connection.with_retry(slow))
        await asyncio.sleep(0.01)
        stats.failing_since = time.monotonic()  # meanwhile, another call failed
        await began_before
        assert stats.failing_since is not None
        await connection.with_retry(slow)
        assert stats.failing_since is None

    try:
        run(main())
    finally:
        stats.failing_since = None
