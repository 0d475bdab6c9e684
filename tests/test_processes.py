"""Workers and starters as separate processes: the samples, SIGKILL, SIGTERM, Redis restarts."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from orchestrator import Client
from orchestrator.devserver import EmbeddedRedis

from helpers import events_of, eventually, run, running_worker, spawn, wait_until

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"


def test_hello_world_samples_across_processes(
    env: dict[str, str], processes: list[Any], tmp_path: Path
) -> None:
    worker = spawn(processes, env, "workers/hello_world.py", log=tmp_path / "worker.log")
    starter = subprocess.run(
        [sys.executable, "starters/hello_world.py"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert starter.returncode == 0, starter.stderr
    lines = starter.stdout.splitlines()
    assert "hello_world_workflowID" in lines[0] and "RunID" in lines[0]
    assert lines[-1] == "Workflow result: Hello Temporal!"

    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=15) == 0
    log = (tmp_path / "worker.log").read_text()
    for field in (
        "namespace=default",
        "task_queue=hello-world",
        "worker=",
        "workflow_id=hello_world_workflowID",
        "run_id=",
        "activity_type=Activity",
        "attempt=1",
    ):
        assert field in log


def test_greetings_sample_shows_retries(
    env: dict[str, str], processes: list[Any], tmp_path: Path
) -> None:
    log = tmp_path / "worker.log"
    spawn(processes, env, "workers/greetings.py", log=log)
    starter = subprocess.run(
        [sys.executable, "starters/greetings.py", "Ada"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert starter.returncode == 0, starter.stderr
    assert "Hello, Ada!, Bonjour, Ada!, Hola, Ada!" in starter.stdout
    assert "*** ADA ***" in starter.stdout
    assert "Hello Ada, on attempt 3!" in starter.stdout
    text = log.read_text()
    assert "activity_type=FlakyGreeting seq=6 attempt=1" in text
    assert "activity_type=FlakyGreeting seq=6 attempt=2" in text
    assert "retry in" in text


def test_sigkill_mid_activity_another_worker_finishes(
    env: dict[str, str], processes: list[Any], redis_url: str
) -> None:
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    first = spawn(processes, env, "tests/worker_process.py", "kill")

    async def start() -> str:
        async with await Client.connect(redis_url) as client:
            handle = await client.start_workflow(
                "Gated", ["k"], 1.5, id="killed", task_queue="kill"
            )
            return str(handle.run_id)

    run(start())
    wait_until(lambda: r.get("started:k"))
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    r.set("gate:k", "1")
    spawn(processes, env, "tests/worker_process.py", "kill")

    async def finish() -> tuple[Any, list[dict[str, Any]]]:
        async with await Client.connect(redis_url) as client:
            handle = client.get_workflow_handle("killed")
            return await handle.result(timeout=30), await handle.history()

    result, history = run(finish())
    assert result == ["Hello first!", "gate k opened", "Hello last!"]
    gate_events = [e for e in events_of(history, "ActivityTaskStarted") if e["attrs"]["seq"] == 2]
    assert [e["attrs"]["attempt"] for e in gate_events] == [1, 2]
    assert gate_events[0]["attrs"]["worker"] != gate_events[1]["attrs"]["worker"]
    completed = [e for e in events_of(history, "ActivityTaskCompleted") if e["attrs"]["seq"] == 2]
    assert len(completed) == 1
    assert len(events_of(history, "WorkflowExecutionCompleted")) == 1
    assert r.get("count:Greet") == "2"


def test_sigterm_finishes_the_running_activity_then_exits(
    env: dict[str, str], processes: list[Any], redis_url: str
) -> None:
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    worker = spawn(processes, env, "tests/worker_process.py", "term")

    async def start() -> None:
        async with await Client.connect(redis_url) as client:
            await client.start_workflow("Gated", ["t"], id="term", task_queue="term")

    run(start())
    wait_until(lambda: r.get("started:t"))
    worker.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    assert worker.poll() is None  # still draining the running activity
    r.set("gate:t", "1")
    assert worker.wait(timeout=15) == 0
    (history_key,) = r.keys("default:*:history")
    types = [e for e in r.xrange(history_key)]
    completed = [f for _, f in types if '"ActivityTaskCompleted"' in f["event"]]
    assert len(completed) == 2  # first greeting and the gated activity, then it stopped


@pytest.fixture
def persistent_redis(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_server_binary: str
) -> Iterator[EmbeddedRedis]:
    """A redis-server of this test's own with AOF persistence, so it can be restarted."""
    with EmbeddedRedis(data_dir=tmp_path / "data", prefer="redis-server") as server:
        monkeypatch.setenv("ORCHESTRATOR_REDIS_URL", server.url)
        yield server


async def restart(server: EmbeddedRedis, down_for: float) -> None:
    """Stop the server, wait (the workers keep retrying meanwhile), start it on its port."""
    port = int(server.url.rsplit(":", 1)[1].split("/")[0])
    server.stop()
    await asyncio.sleep(down_for)
    server.start(port=port)


def run_with_worker(server: EmbeddedRedis, scenario: Any) -> None:
    """Run ``scenario(client)`` with one in-process worker serving queue "restart"."""
    import defs

    async def main() -> None:
        async with (
            await Client.connect(server.url) as client,
            running_worker(
                client,
                task_queue="restart",
                workflows=defs.ALL_WORKFLOWS,
                activities=defs.ALL_ACTIVITIES,
            ),
        ):
            await scenario(client)

    run(main())


def test_worker_survives_a_redis_restart(persistent_redis: EmbeddedRedis) -> None:
    async def scenario(client: Client) -> None:
        handle = await client.start_workflow("Gated", ["r"], id="restart", task_queue="restart")
        await eventually(lambda: client.redis.get("started:r"))
        await restart(persistent_redis, 1.0)
        await client.redis.set("gate:r", "1")
        assert await handle.result(timeout=30) == ["Hello first!", "gate r opened", "Hello last!"]

    run_with_worker(persistent_redis, scenario)


def test_timer_survives_a_redis_restart_with_persistence(persistent_redis: EmbeddedRedis) -> None:
    async def scenario(client: Client) -> None:
        handle = await client.start_workflow("Sleeper", 2.0, id="persist", task_queue="restart")

        async def timer_started() -> bool:
            return bool(events_of(await handle.history(), "TimerStarted"))

        await eventually(timer_started)
        await restart(persistent_redis, 0.5)
        assert await handle.result(timeout=30) == "Hello after sleep!"
        assert len(events_of(await handle.history(), "TimerFired")) == 1

    run_with_worker(persistent_redis, scenario)
