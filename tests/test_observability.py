"""Metrics, health probes and JSON logs, scraped over HTTP as Prometheus and Kubernetes would."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from orchestrator import Client, RetryPolicy, WorkflowFailureError, logs, workflow
from orchestrator.connection import RedisStats
from orchestrator.probes import Health
from orchestrator.queue_metrics import QueueCollector

import defs
from helpers import eventually, free_port, returning, run, running_worker, spawn

ROOT = Path(__file__).resolve().parent.parent
QUEUE = "observed"
CLI = ["-m", "orchestrator.cli"]


@workflow.defn(name="TimesOut")
async def times_out() -> str:
    """The first attempt sleeps past its 0.3 s start-to-close timeout; the second returns."""
    return await workflow.execute_activity(
        defs.sleep,
        1.0,
        start_to_close_timeout=0.3,
        retry_policy=RetryPolicy(maximum_attempts=2, initial_interval=0.1),
    )


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


class Scrape:
    """One /metrics page, parsed: families by name, and sample values by name and labels."""

    def __init__(self, text: str) -> None:
        self.families = {f.name: f for f in text_string_to_metric_families(text)}

    def value(self, sample: str, **labels: str) -> float:
        """The sum of the samples named ``sample`` whose labels include ``labels``."""
        return sum(
            s.value
            for f in self.families.values()
            for s in f.samples
            if s.name == sample and labels.items() <= s.labels.items()
        )

    def label_names(self) -> set[str]:
        return {k for f in self.families.values() for s in f.samples for k in s.labels}


def scrape(port: int) -> Scrape:
    status, text = get(port, "/metrics")
    assert status == 200, text
    return Scrape(text)


def test_worker_metrics_match_what_happened(url: str) -> None:
    registry = CollectorRegistry()

    async def main() -> None:
        async with (
            await Client.connect(url) as client,
            running_worker(
                client,
                task_queue=QUEUE,
                workflows=[*defs.ALL_WORKFLOWS, times_out],
                activities=defs.ALL_ACTIVITIES,
                metrics_registry=registry,
                metrics_port=0,
                metrics_host="127.0.0.1",
                max_concurrent_activities=7,
            ) as worker,
        ):
            port = await eventually(lambda: returning(worker.metrics_port))
            await eventually(lambda: returning(get(port, "/readyz")[0] == 200))
            for name, args in [("Hello", ["x"]), ("Retries", [0.05]), ("Unhandled", ["boom"])]:
                handle = await client.start_workflow(
                    name, *args, id=f"m-{uuid.uuid4().hex[:6]}", task_queue=QUEUE
                )
                await _settle(handle)
            handle = await client.start_workflow("TimesOut", id="m-timeout", task_queue=QUEUE)
            assert await handle.result(timeout=20) == "attempt 2"
            # A run terminated while its activity runs refuses the activity's result.
            handle = await client.start_workflow("Gated", ["g"], id="m-late", task_queue=QUEUE)
            redis_ = redis.Redis.from_url(url)
            await eventually(lambda: returning(redis_.get("started:g")))
            await handle.terminate("no longer needed")
            redis_.set("gate:g", 1)
            late = "orchestrator_late_results_refused_total"
            await eventually(
                lambda: returning(scrape(port).value(late, task_kind="activity") == 1), within=10
            )
            redis_.close()

            page = scrape(port)
            q = {"namespace": "default", "task_queue": QUEUE}
            attempts = "orchestrator_activity_attempts_total"
            assert page.value(attempts, activity_type="Greet", outcome="completed", **q) == 2
            assert page.value(attempts, activity_type="FailTwice", outcome="failed", **q) == 2
            assert page.value(attempts, activity_type="FailTwice", outcome="completed", **q) == 1
            assert page.value(attempts, activity_type="Sleep", outcome="timed_out", **q) == 1
            assert page.value(attempts, activity_type="Sleep", outcome="completed", **q) == 1
            retries = "orchestrator_activity_retries_total"
            assert page.value(retries, activity_type="FailTwice", **q) == 2
            assert page.value(retries, activity_type="Sleep", **q) == 1
            s2s = "orchestrator_activity_schedule_to_start_seconds_count"
            assert page.value(s2s, activity_type="FailTwice", **q) == 3
            execution = "orchestrator_activity_execution_seconds_count"
            assert page.value(execution, activity_type="Greet", outcome="completed") == 2
            e2e = "orchestrator_workflow_end_to_end_seconds_count"
            assert page.value(e2e, workflow_type="Hello", status="COMPLETED", **q) == 1
            assert page.value(e2e, workflow_type="Unhandled", status="FAILED", **q) == 1
            wft = "orchestrator_workflow_tasks_total"
            assert page.value(wft, workflow_type="Hello", outcome="completed", **q) == 2
            assert page.value("orchestrator_workflow_task_execution_seconds_count", **q) >= 8
            slots = {"slot_type": "activity", **q}
            assert page.value("orchestrator_worker_slots_available", **slots) == 7
            assert page.value("orchestrator_worker_slots_used", **slots) == 0

            kinds = {name: f.type for name, f in page.families.items()}
            assert kinds["orchestrator_activity_attempts"] == "counter"
            assert kinds["orchestrator_activity_execution_seconds"] == "histogram"
            assert kinds["orchestrator_worker_slots_used"] == "gauge"
            assert all(name.startswith("orchestrator_") for name in kinds if "python" not in name)
            assert not page.label_names() & {"workflow_id", "run_id", "worker"}
            assert get(port, "/healthz") == (200, "ok\n")
            assert get(port, "/nowhere")[0] == 404

    run(main())


async def _settle(handle: Any) -> None:
    # A failing workflow is part of what the metrics must show.
    with contextlib.suppress(WorkflowFailureError):
        await handle.result(timeout=20)


def test_exporter_reports_backlog_timers_and_run_counters(url: str) -> None:
    async def main() -> None:
        async with await Client.connect(url) as client:
            for i in range(3):
                await client.start_workflow("Hello", "x", id=f"b-{i}", task_queue="idle-queue")
            client_sync = redis.Redis.from_url(url, decode_responses=True)
            # No worker ever served idle-queue: the exporter finds it from the runs started.
            collector = QueueCollector(client_sync, ["default"])
            await asyncio.sleep(0.05)  # the oldest task's age must be above 0
            page = Scrape(_render(collector))
            q = {"namespace": "default", "task_queue": "idle-queue", "task_kind": "workflow"}
            assert page.value("orchestrator_exporter_redis_up") == 1
            assert page.value("orchestrator_task_queue_backlog", **q) == 3
            assert page.value("orchestrator_task_queue_lag", **q) == 3
            assert page.value("orchestrator_task_queue_pending", **q) == 0
            assert page.value("orchestrator_task_queue_oldest_task_age_seconds", **q) > 0
            assert page.value("orchestrator_workflows_started_total", workflow_type="Hello") == 3
            assert page.value("orchestrator_workflows_open") == 3

            async with running_worker(
                client,
                task_queue="idle-queue",
                workflows=defs.ALL_WORKFLOWS,
                activities=defs.ALL_ACTIVITIES,
            ):
                for i in range(3):
                    await client.get_workflow_handle(f"b-{i}").result(timeout=20)
                await client.start_workflow("Sleeper", 60, id="sleepy", task_queue="idle-queue")
                await eventually(
                    lambda: returning(
                        Scrape(_render(collector)).value(
                            "orchestrator_timers_waiting_by_kind", kind="timer"
                        )
                        == 1
                    )
                )
                await client.get_workflow_handle("sleepy").terminate("enough")
            page = Scrape(_render(collector))
            closed = "orchestrator_workflows_closed_total"
            assert page.value(closed, workflow_type="Hello", status="COMPLETED") == 3
            assert page.value(closed, workflow_type="Sleeper", status="TERMINATED") == 1
            assert page.value("orchestrator_task_queue_backlog", **q) == 0
            assert page.value("orchestrator_workflows_open") == 0
            workers = page.value("orchestrator_task_queue_workers", task_queue="idle-queue")
            assert workers == 0  # the worker said goodbye when it stopped
            client_sync.close()

    run(main())


def _render(collector: QueueCollector) -> str:
    from prometheus_client import generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return generate_latest(registry).decode()


def test_exporter_reports_redis_down_instead_of_failing() -> None:
    port = free_port()  # nothing listens there
    collector = QueueCollector(redis.Redis(port=port, socket_connect_timeout=1), ["default"])
    page = Scrape(_render(collector))
    assert page.value("orchestrator_exporter_redis_up") == 0
    assert "orchestrator_task_queue_backlog" not in page.families


@pytest.mark.slow
def test_worker_and_exporter_processes_serve_http(
    env: dict[str, str], processes: list[subprocess.Popen[str]], tmp_path: Path
) -> None:
    worker_port, exporter_port = free_port(), free_port()
    common = ["--metrics-host", "127.0.0.1", "--log-format", "json"]
    worker_log = tmp_path / "worker.log"
    worker_args = ["worker", "run", "workers/hello_world.py", "-q", "hello-world", *common]
    spawn(processes, env, *CLI, *worker_args, "--metrics-port", str(worker_port), log=worker_log)
    spawn(processes, env, *CLI, "metrics", "serve", "--port", str(exporter_port), *common)
    _wait_http(worker_port, "/readyz")
    _wait_http(exporter_port, "/readyz")
    started = subprocess.run(
        [sys.executable, "starters/hello_world.py"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert started.returncode == 0, started.stderr
    worker_page = scrape(worker_port)
    assert (
        worker_page.value(
            "orchestrator_activity_attempts_total", activity_type="Activity", outcome="completed"
        )
        == 1
    )
    assert "orchestrator_task_queue_backlog" not in worker_page.families
    exporter_page = scrape(exporter_port)
    assert (
        exporter_page.value(
            "orchestrator_workflows_closed_total", workflow_type="Workflow", status="COMPLETED"
        )
        == 1
    )
    assert exporter_page.value("orchestrator_task_queue_workers", task_queue="hello-world") == 1
    assert "orchestrator_activity_attempts_total" not in {
        s.name for f in exporter_page.families.values() for s in f.samples
    }
    for proc in processes:
        proc.terminate()
        assert proc.wait(timeout=20) == 0
    lines = [orjson.loads(line) for line in worker_log.read_text().splitlines() if line.strip()]
    completed = [line for line in lines if line["message"].startswith("activity completed")]
    assert completed and completed[0]["activity_type"] == "Activity"
    assert {"namespace", "task_queue", "worker", "workflow_id", "run_id", "attempt"} <= set(
        completed[0]
    )


def _wait_http(port: int, path: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if get(port, path)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"nothing answered 200 on port {port}{path} within {timeout} s")


def test_health_judges_loops_and_readiness() -> None:
    outage = RedisStats()
    health = Health(stale_after=0.05, outage=outage)
    assert health.ready() == (False, "starting: scripts not loaded yet")
    health.watch("activity poll")
    health.prepared()
    assert health.live()[0] and health.ready()[0]
    time.sleep(0.1)
    ok, reason = health.live()
    assert not ok and "activity poll" in reason
    health.waiting("activity poll")  # every slot busy: slow work, not a stuck loop
    assert health.live()[0]
    health.beat("activity poll")
    time.sleep(0.1)
    outage.failed(ConnectionError("down"))  # Redis unreachable: a restart would not help
    ok, reason = health.live()
    assert ok and reason.startswith("waiting for Redis")
    ok, reason = health.ready()
    assert not ok and reason.startswith("Redis unreachable")
    outage.recovered()  # the loops get stale_after from now to step again
    assert health.live()[0] and health.ready()[0]
    time.sleep(0.1)
    assert not health.live()[0]
    health.stopping()
    assert health.ready() == (False, "shutting down")


def test_json_logs_carry_the_fields(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    logs.configure("INFO", "json")
    try:
        logging.getLogger("orchestrator.test").info(
            "activity %s", "completed", extra={"fields": {"workflow_id": "w1", "attempt": 2}}
        )
    finally:  # the handler writes to this test's captured stderr, closed after it
        root.handlers[:], level = saved
        root.setLevel(level)
    line = orjson.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert line["message"] == "activity completed"
    assert line["workflow_id"] == "w1" and line["attempt"] == 2
    assert line["level"] == "INFO" and line["time"].endswith("+00:00")


def test_worker_with_queue_metrics_serves_the_exporter_gauges_too(url: str) -> None:
    async def main() -> None:
        async with (
            await Client.connect(url) as client,
            running_worker(
                client,
                task_queue="with-gauges",
                workflows=defs.ALL_WORKFLOWS,
                activities=defs.ALL_ACTIVITIES,
                metrics_registry=CollectorRegistry(),
                metrics_port=0,
                metrics_host="127.0.0.1",
                queue_metrics=True,
            ) as worker,
        ):
            port = await eventually(lambda: returning(worker.metrics_port))
            handle = await client.start_workflow("Hello", "x", id="g", task_queue="with-gauges")
            await handle.result(timeout=20)
            page = scrape(port)
            closed = "orchestrator_workflows_closed_total"
            assert page.value(closed, workflow_type="Hello", status="COMPLETED") == 1
            assert page.value("orchestrator_activity_attempts_total", outcome="completed") == 1
            assert "orchestrator_task_queue_backlog" in page.families

    run(main())


def test_unregistered_types_share_one_label_and_workers_leave_their_groups(url: str) -> None:
    """A client may start any type name: the worker's metrics must not grow with them.
    A stopped worker removes itself from the consumer groups it read."""
    registry = CollectorRegistry()

    async def main() -> None:
        async with await Client.connect(url) as client:
            async with running_worker(
                client,
                task_queue=QUEUE,
                workflows=defs.ALL_WORKFLOWS,
                activities=defs.ALL_ACTIVITIES,
                metrics_registry=registry,
                metrics_port=0,
                metrics_host="127.0.0.1",
            ) as worker:
                port = await eventually(lambda: returning(worker.metrics_port))
                for i in range(3):
                    await client.start_workflow(f"Bogus-{i}", id=f"bogus-{i}", task_queue=QUEUE)
                tasks = "orchestrator_workflow_tasks_total"
                await eventually(
                    lambda: returning(
                        scrape(port).value(tasks, workflow_type="unregistered", outcome="failed")
                        >= 3
                    )
                )
                assert not any("Bogus" in name for name in _label_values(scrape(port)))
            for stream in (
                client.keys.workflow_tasks(QUEUE, 0),
                client.keys.activity_tasks(QUEUE, 0),
            ):
                assert await client.redis.xinfo_consumers(stream, "workers") == []

    run(main())


def _label_values(page: Scrape) -> set[str]:
    return {v for f in page.families.values() for s in f.samples for v in s.labels.values()}
