"""The embedded Redis, in both kinds, and the ./dev entry point's argument handling.

Every behaviour the orchestrator relies on (Lua with cjson, consumer groups, blocking reads) is
checked against both kinds, so a fakeredis that drifts from real Redis shows up here first.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from orchestrator.devserver import EmbeddedRedis, EmbeddedRedisError, free_port

ROOT = Path(__file__).resolve().parent.parent

# Reads a JSON object, bumps one field and writes it back: enough to prove cjson is loaded.
BUMP_SCRIPT = """
local value = cjson.decode(ARGV[1])
value.count = value.count + 1
return cjson.encode(value)
"""


@pytest.fixture(params=["redis-server", "fakeredis"])
def kind(request: pytest.FixtureRequest) -> str:
    """Each kind in turn; the redis-server one follows the suite's skip-or-fail rule."""
    if request.param == "redis-server":
        request.getfixturevalue("redis_server_binary")
    return str(request.param)


@pytest.fixture
def no_redis_server_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A PATH holding nothing, as on a machine without redis-server."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


@contextlib.contextmanager
def connect(url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        yield client
    finally:
        client.close()


def refuses_connections(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0))
    try:
        client.ping()
    except redis.ConnectionError:
        return True
    finally:
        client.close()
    return False


def fakeredis_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("embedded-fakeredis-")]


# Both kinds


def test_kind_and_url(kind: str) -> None:
    with EmbeddedRedis(prefer=kind) as server:
        assert server.kind == kind
        assert re.fullmatch(r"redis://127\.0\.0\.1:\d+/0", server.url)


def test_ping(kind: str) -> None:
    with EmbeddedRedis(prefer=kind) as server, connect(server.url) as client:
        assert client.ping() is True


def test_lua_script_with_cjson(kind: str) -> None:
    with EmbeddedRedis(prefer=kind) as server, connect(server.url) as client:
        result = client.eval(BUMP_SCRIPT, 0, '{"count": 41, "name": "x"}')

    assert result in ('{"count":42,"name":"x"}', '{"name":"x","count":42}')


def test_stream_consumer_group_with_blocking_read(kind: str) -> None:
    with EmbeddedRedis(prefer=kind) as server, connect(server.url) as client:
        client.xgroup_create("tasks", "workers", id="0", mkstream=True)
        entry_id = client.xadd("tasks", {"n": "1"})

        delivered = client.xreadgroup("workers", "w1", {"tasks": ">"}, count=1, block=100)
        started = time.monotonic()
        nothing = client.xreadgroup("workers", "w1", {"tasks": ">"}, count=1, block=200)
        waited = time.monotonic() - started

    assert _entries(delivered) == [(entry_id, {"n": "1"})]
    assert not _entries(nothing)
    assert waited >= 0.15


def test_blocked_reader_is_woken_by_a_new_entry(kind: str) -> None:
    with EmbeddedRedis(prefer=kind) as server, connect(server.url) as client:
        client.xgroup_create("tasks", "workers", id="0", mkstream=True)
        timer = threading.Timer(0.2, _add_entry, args=(server.url,))
        timer.start()
        try:
            reply = client.xreadgroup("workers", "w1", {"tasks": ">"}, count=1, block=3000)
        finally:
            timer.join()

    assert [fields for _, fields in _entries(reply)] == [{"n": "late"}]


def test_refuses_connections_after_exit(kind: str) -> None:
    with EmbeddedRedis(prefer=kind) as server:
        url = server.url

    assert refuses_connections(url)


def test_occupied_port_is_a_clear_error(kind: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        with pytest.raises(EmbeddedRedisError, match=str(port) + "|in use"):
            EmbeddedRedis(port=port, prefer=kind).start()


def test_starting_twice_is_refused(kind: str) -> None:
    with EmbeddedRedis(prefer=kind) as server, pytest.raises(EmbeddedRedisError):
        server.start()


def test_stop_is_idempotent(kind: str) -> None:
    server = EmbeddedRedis(prefer=kind)
    server.start()
    server.stop()
    server.stop()

    with pytest.raises(EmbeddedRedisError):
        _ = server.url


# redis-server


@pytest.mark.usefixtures("redis_server_binary")
def test_redis_server_process_and_temp_dir_are_gone_after_exit() -> None:
    with EmbeddedRedis(prefer="redis-server") as server, connect(server.url) as client:
        pid = int(client.info("server")["process_id"])
        directory = Path(client.config_get("dir")["dir"])
        assert directory.is_dir()
        assert client.config_get("appendonly")["appendonly"] == "no"

    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not directory.exists()


@pytest.mark.usefixtures("redis_server_binary")
def test_data_dir_survives_a_restart(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with EmbeddedRedis(data_dir=data_dir, prefer="redis-server") as first, connect(first.url) as c:
        c.set("greeting", "hello")
        assert c.config_get("appendonly")["appendonly"] == "yes"

    with EmbeddedRedis(data_dir=data_dir, prefer="redis-server") as again, connect(again.url) as c:
        assert c.get("greeting") == "hello"
    assert (data_dir / "redis.log").is_file()


@pytest.mark.usefixtures("redis_server_binary")
def test_restart_on_the_same_port_keeps_the_url(tmp_path: Path) -> None:
    server = EmbeddedRedis(data_dir=tmp_path / "data", prefer="redis-server")
    server.start()
    try:
        url = server.url
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        with connect(url) as client:
            client.set("k", "v")

        server.stop()
        server.start(port=port)

        assert server.url == url
        with connect(url) as client:
            assert client.get("k") == "v"
    finally:
        server.stop()


@pytest.mark.usefixtures("redis_server_binary")
def test_another_redis_on_the_port_is_not_mistaken_for_ours() -> None:
    with EmbeddedRedis(prefer="redis-server") as first:
        port = int(first.url.rsplit(":", 1)[1].split("/")[0])

        with pytest.raises(EmbeddedRedisError, match="already in use"):
            EmbeddedRedis(port=port, prefer="redis-server").start()


@pytest.mark.usefixtures("no_redis_server_on_path")
def test_forcing_redis_server_without_the_binary_is_an_error() -> None:
    with pytest.raises(EmbeddedRedisError, match="not on PATH"):
        EmbeddedRedis(prefer="redis-server")


# fakeredis


def test_fakeredis_thread_is_gone_after_exit() -> None:
    with EmbeddedRedis(prefer="fakeredis") as server:
        assert len(fakeredis_threads()) == 1
        assert server.kind == "fakeredis"

    assert fakeredis_threads() == []


def test_fakeredis_stops_while_a_client_is_blocked() -> None:
    # A connection stuck in a blocking command must not hold up stop(); this once hung forever.
    server = EmbeddedRedis(prefer="fakeredis")
    server.start()
    threading.Thread(target=_blpop_forever, args=(server.url,), daemon=True).start()
    time.sleep(0.3)

    stopper = threading.Thread(target=server.stop, daemon=True)
    stopper.start()
    stopper.join(5)

    assert not stopper.is_alive()


@pytest.mark.usefixtures("no_redis_server_on_path")
def test_auto_falls_back_to_fakeredis_without_redis_server(tmp_path: Path) -> None:
    server = EmbeddedRedis()

    assert server.kind == "fakeredis"
    assert EmbeddedRedis(data_dir=tmp_path).kind == "fakeredis"


def test_fakeredis_refuses_a_data_dir(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="data_dir"):
        EmbeddedRedis(data_dir=tmp_path, prefer="fakeredis")


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="prefer"):
        EmbeddedRedis(prefer="memcached")


def test_free_port_can_be_bound() -> None:
    port = free_port()

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


# ./dev


@pytest.mark.parametrize("argv", [["frobnicate"], []], ids=["unknown-verb", "no-verb"])
def test_dev_prints_usage_and_exits_2(argv: list[str], tmp_path: Path) -> None:
    # Run from elsewhere: the script must find its own directory.
    result = subprocess.run(
        [str(ROOT / "dev"), *argv], cwd=tmp_path, capture_output=True, text=True, timeout=30
    )

    assert result.returncode == 2
    assert "./dev hello" in result.stderr
    assert "./dev test" in result.stderr
    assert result.stdout == ""


def _entries(reply: object) -> list[tuple[str, dict[str, str]]]:
    """The entries of a one-stream XREADGROUP reply, in either RESP2 or RESP3 shape."""
    if not reply:
        return []
    if isinstance(reply, dict):
        streams = list(reply.values())
        return [tuple(entry) for entry in streams[0][0]]  # type: ignore[misc]
    assert isinstance(reply, list)
    return [tuple(entry) for entry in reply[0][1]]  # type: ignore[misc]


def _add_entry(url: str) -> None:
    with connect(url) as client:
        client.xadd("tasks", {"n": "late"})


def _blpop_forever(url: str) -> None:
    # The client gives up after its socket timeout; the server side stays blocked regardless.
    with contextlib.suppress(redis.RedisError), connect(url) as client:
        client.blpop(["never"], timeout=0)
