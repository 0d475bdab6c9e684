"""Horizontal scaling: several worker processes share one task queue, and hand work back.

The workers are ``tests/scale_worker.py`` processes; their ``ScaleStep`` activity records
every start and completion (and the pid that ran it) in the test's Redis.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import redis

from orchestrator import Client
from orchestrator.keys import CONSUMER_GROUP, Keys

from helpers import events_of, run, spawn, wait_until

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
WORKER = "tests/scale_worker.py"
STARTED, COMPLETED = "scale:started", "scale:completed"
STARTED_BY, COMPLETED_BY = "scale:started_by:", "scale:completed_by:"


def stop(proc: subprocess.Popen[str], timeout: float = 20.0) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=timeout)


async def start_all(url: str, queue: str, ids: list[str], parallel: int, sequential: int) -> None:
    async with await Client.connect(url) as client:
        for workflow_id in ids:
            await client.start_workflow(
                "Scale", parallel, sequential, id=workflow_id, task_queue=queue
            )


async def results_and_histories(
    url: str, ids: list[str], wait: float
) -> dict[str, tuple[Any, list[dict[str, Any]]]]:
    async with await Client.connect(url) as client:
        out = {}
        for workflow_id in ids:
            handle = client.get_workflow_handle(workflow_id)
            out[workflow_id] = (await handle.result(timeout=wait), await handle.history())
        return out


def task_streams(queue: str) -> list[str]:
    keys = Keys()  # the default namespace, one shard
    return [
        keys.workflow_tasks(queue, 0),
        keys.activity_tasks(queue, 0),
        keys.query_tasks(queue, 0),
    ]


def assert_streams_drained(r: redis.Redis, queue: str) -> None:
    """No entry is pending with any consumer, and the task streams hold no entry."""
    for stream in task_streams(queue):
        if not r.exists(stream):
            continue
        assert r.xpending(stream, CONSUMER_GROUP)["pending"] == 0, stream
        assert r.xlen(stream) == 0, (stream, r.xrange(stream, count=5))


def consumer_pending(r: redis.Redis, queue: str, consumer: str) -> dict[str, list[Any]]:
    """Entries of each task stream still in ``consumer``'s pending entries list."""
    held = {}
    for stream in task_streams(queue):
        if r.exists(stream):
            entries = r.xpending_range(stream, CONSUMER_GROUP, "-", "+", 100, consumername=consumer)
            if entries:
                held[stream] = entries
    return held


def activity_seqs(history: list[dict[str, Any]], kind: str) -> Counter[int]:
    return Counter(e["attrs"]["seq"] for e in events_of(history, kind))


def test_backlog_is_shared_by_four_worker_processes(
    env: dict[str, str], processes: list[Any], redis_url: str, tmp_path: Path
) -> None:
    queue, parallel, sequential, n = "scale", 3, 2, 400
    steps = parallel + sequential
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    ids = [f"scale-{i}" for i in range(n)]
    run(start_all(redis_url, queue, ids, parallel, sequential))  # the backlog, before any worker

    options = ["--max-activities", "20", "--max-workflow-tasks", "20", "--log-level", "WARNING"]
    workers = [
        spawn(processes, env, WORKER, queue, *options, log=tmp_path / f"worker-{i}.log")
        for i in range(4)
    ]
    began = time.monotonic()
    outcomes = run(results_and_histories(redis_url, ids, wait=60))
    elapsed = time.monotonic() - began
    assert [stop(w) for w in workers] == [0, 0, 0, 0]

    # Every step of every workflow started once and completed once.
    expected = {f"{w}:{step}" for w in ids for step in range(steps)}
    started, completed = r.hgetall(STARTED), r.hgetall(COMPLETED)
    assert set(started) == expected and set(completed) == expected
    assert {k for k, v in started.items() if v != "1"} == set()
    assert {k for k, v in completed.items() if v != "1"} == set()

    # The work was shared: each worker process ran a part of it, and the parts add up.
    by_pid = {w.pid: r.lrange(f"{COMPLETED_BY}{w.pid}", 0, -1) for w in workers}
    shares = {pid: len(keys) for pid, keys in by_pid.items()}
    print(f"\n{n * steps} activities in {elapsed:.1f} s; completed per worker pid: {shares}")
    assert all(count > 0 for count in shares.values()), shares
    assert sorted(k for keys in by_pid.values() for k in keys) == sorted(expected)
    ran_by = {key: pid for pid, keys in by_pid.items() for key in keys}

    for workflow_id, (result, history) in outcomes.items():
        # Each step's result names the worker process that recorded it.
        assert result == [
            f"{workflow_id}:{step}@{ran_by[f'{workflow_id}:{step}']}" for step in range(steps)
        ]
        seqs = activity_seqs(history, "ActivityTaskScheduled")
        assert len(seqs) == steps and set(seqs.values()) == {1}
        assert activity_seqs(history, "ActivityTaskStarted") == seqs
        assert activity_seqs(history, "ActivityTaskCompleted") == seqs
        assert not events_of(history, "ActivityTaskAttemptFailed")
        assert len(events_of(history, "WorkflowExecutionCompleted")) == 1

    assert_streams_drained(r, queue)
    for i in range(4):
        assert "reclaimed task" not in (tmp_path / f"worker-{i}.log").read_text()


def test_sigterm_hands_work_back_at_once(
    env: dict[str, str], processes: list[Any], redis_url: str, tmp_path: Path
) -> None:
    """Worker A is busy with slow activities when it gets SIGTERM: B does everything, at once.

    A holds nothing it has not started (it reads only as many tasks as it has free
    slots, and a task leaves the stream when its attempt starts), so B need not wait
    ``reclaim_idle`` (30 s) to reclaim anything; A's attempts still running at the end
    of its grace period are reported failed and retried (after the retry policy's
    initial interval, 1 s) by B.
    """
    queue, parallel, sequential, n = "handback", 2, 1, 12
    steps, grace = parallel + sequential, 1.0
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    ids = [f"handback-{i}" for i in range(n)]
    run(start_all(redis_url, queue, ids, parallel, sequential))

    worker_a = spawn(
        processes, env, WORKER, queue, "--max-activities", "2", "--grace", str(grace),
        "--sleep", "10", log=tmp_path / "a.log",
    )  # fmt: skip
    a_started = f"{STARTED_BY}{worker_a.pid}"
    wait_until(lambda: r.llen(a_started) == 2, what="A busy with 2 activities")
    worker_b = spawn(
        processes, env, WORKER, queue, "--max-activities", "4", "--sleep", "0.2",
        log=tmp_path / "b.log",
    )  # fmt: skip
    wait_until(lambda: r.llen(f"{COMPLETED_BY}{worker_b.pid}") > 0, what="B working")
    in_flight = set(r.lrange(a_started, 0, -1))
    assert len(in_flight) == 2

    signalled = time.monotonic()
    assert stop(worker_a) == 0
    a_exited = time.monotonic() - signalled
    # A left nothing behind in its pending entries lists for XAUTOCLAIM to find.
    held = consumer_pending(r, queue, f"scale:{worker_a.pid}")
    assert held == {}, f"entries A read but never started: {held}"

    outcomes = run(results_and_histories(redis_url, ids, wait=25))
    finished = time.monotonic() - signalled
    print(f"\nA exited {a_exited:.1f} s after SIGTERM; all done {finished:.1f} s after it")
    assert stop(worker_b) == 0
    # Far sooner than B could have reclaimed anything (reclaim_idle is 30 s).
    assert finished < 15, finished

    expected = {f"{w}:{step}" for w in ids for step in range(steps)}
    started, completed = r.hgetall(STARTED), r.hgetall(COMPLETED)
    assert set(completed) == expected
    assert {k for k, v in completed.items() if v != "1"} == set()  # none ran twice to completion
    assert r.llen(f"{COMPLETED_BY}{worker_a.pid}") == 0
    assert sorted(r.lrange(f"{COMPLETED_BY}{worker_b.pid}", 0, -1)) == sorted(expected)
    assert {k: int(v) for k, v in started.items() if v != "1"} == dict.fromkeys(in_flight, 2)

    a_identity, b_identity = f"scale:{worker_a.pid}", f"scale:{worker_b.pid}"
    cut_short = 0
    for result, history in outcomes.values():
        assert [item.rsplit("@", 1)[1] for item in result] == [str(worker_b.pid)] * steps
        seqs = activity_seqs(history, "ActivityTaskScheduled")
        assert len(seqs) == steps
        assert activity_seqs(history, "ActivityTaskCompleted") == seqs
        failed = events_of(history, "ActivityTaskAttemptFailed")
        assert {e["attrs"]["failure"]["type"] for e in failed} <= {"WorkerShutdownError"}
        for event in failed:
            # Cut short by a shutdown, not by its own fault: retried at once.
            assert event["attrs"]["retry_at"] == event["ts"]
            seq = event["attrs"]["seq"]
            starts = [
                e["attrs"]
                for e in events_of(history, "ActivityTaskStarted")
                if e["attrs"]["seq"] == seq
            ]
            assert [(s["attempt"], s["worker"]) for s in starts] == [
                (1, a_identity),
                (2, b_identity),
            ]
            cut_short += 1
    assert cut_short == 2

    assert_streams_drained(r, queue)
    b_log = (tmp_path / "b.log").read_text()
    assert "reclaimed task" not in b_log
    assert "WorkerShutdownError" in (tmp_path / "a.log").read_text()
