"""Throughput benchmark: workflows per second through one or more worker processes.

    .venv/bin/python bench/throughput.py [--workflows N] [--activities K] [--shape seq|par]
                                         [--worker-processes P]

Starts its own redis-server on a free loopback port (no persistence), P worker
processes (default 1) on one task queue, and a starter in this process. Each
workflow runs K no-op activities (sequentially or gathered in parallel). The
whole backlog is enqueued before the workers start. Reports the start rate,
end-to-end workflows/s and activities/s, and CPU microseconds per activity and
per workflow for the workers (all of them, summed) and for redis-server; also
the workers' CPU without their start-up (up to their first heartbeat). Figures
are printed, not asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from orchestrator import Client  # noqa: E402
from orchestrator.devserver import EmbeddedRedis  # noqa: E402
from orchestrator.keys import Keys  # noqa: E402

QUEUE = "bench"


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _redis_cpu(url: str) -> float:
    info = redis.Redis.from_url(url).info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


async def _start_all(url: str, n: int, k: int, shape: str) -> tuple[float, list[str]]:
    async with await Client.connect(url) as client:
        began = time.perf_counter()
        ids = []
        for i in range(n):
            handle = await client.start_workflow("Bench", k, shape, id=f"b-{i}", task_queue=QUEUE)
            ids.append(handle.id)
        return time.perf_counter() - began, ids


async def _wait_all(url: str, ids: list[str]) -> None:
    async with await Client.connect(url) as client:
        for workflow_id in ids:
            await client.get_workflow_handle(workflow_id).result(timeout=600)


class _StartupCpu(threading.Thread):
    """Records each worker's CPU seconds when it first heartbeats (its start-up done)."""

    def __init__(self, url: str, pids: list[int]) -> None:
        super().__init__(daemon=True)
        self._redis = redis.Redis.from_url(url, decode_responses=True)
        self._pids = pids
        self.cpu: dict[int, float] = {}
        self.done = threading.Event()

    def run(self) -> None:
        key = Keys().workers(QUEUE)
        while len(self.cpu) < len(self._pids) and not self.done.is_set():
            ready = {int(identity.split(":")[1]) for identity in self._redis.zrange(key, 0, -1)}
            for pid in ready & set(self._pids) - set(self.cpu):
                self.cpu[pid] = _cpu_seconds(pid)
            time.sleep(0.005)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workflows", type=int, default=2000)
    parser.add_argument("--activities", type=int, default=1)
    parser.add_argument("--shape", choices=("seq", "par"), default="seq")
    parser.add_argument(
        "--worker-processes", type=int, default=1, help="worker processes on the one task queue"
    )
    args = parser.parse_args()
    if args.worker_processes < 1:
        parser.error("--worker-processes must be at least 1")

    with EmbeddedRedis(prefer="redis-server") as server:
        url = server.url
        enqueue_s, ids = asyncio.run(_start_all(url, args.workflows, args.activities, args.shape))
        env = {**os.environ, "ORCHESTRATOR_REDIS_URL": url}
        redis_before = _redis_cpu(url)
        began = time.perf_counter()
        script = os.environ.get("BENCH_WORKER", str(ROOT / "bench" / "bench_worker.py"))
        workers = [
            subprocess.Popen([sys.executable, script], env=env, cwd=ROOT)
            for _ in range(args.worker_processes)
        ]
        startup = _StartupCpu(url, [w.pid for w in workers])
        startup.start()
        try:
            asyncio.run(_wait_all(url, ids))
            elapsed = time.perf_counter() - began
            worker_cpu = sum(_cpu_seconds(w.pid) for w in workers)
        finally:
            startup.done.set()
            for worker in workers:
                worker.terminate()
            for worker in workers:
                worker.wait(timeout=30)
        redis_cpu = _redis_cpu(url) - redis_before
        startup.join(timeout=5)

    n, k, p = args.workflows, args.activities, args.worker_processes
    activities = n * k
    print(f"workflows: {n}, activities per workflow: {k} ({args.shape})")
    print(f"start rate:            {n / enqueue_s:8.0f} workflows/s")
    label = f"drain ({p} worker{'s' if p > 1 else ''}):"
    print(
        f"{label:<22} {n / elapsed:8.0f} workflows/s  "
        f"{activities / elapsed:8.0f} activities/s  ({elapsed:.2f} s, start-up included)"
    )
    print(f"worker CPU:            {worker_cpu / activities * 1e6:8.0f} us/activity")
    print(f"redis CPU:             {redis_cpu / activities * 1e6:8.0f} us/activity")
    print(
        f"per workflow:          {worker_cpu / n * 1e6:8.0f} us worker CPU  "
        f"{redis_cpu / n * 1e6:8.0f} us redis CPU  "
        f"(redis busy {redis_cpu / elapsed:.0%} of one core)"
    )
    if len(startup.cpu) == p:
        warm = worker_cpu - sum(startup.cpu.values())
        print(
            f"workers' start-up:     {sum(startup.cpu.values()):8.2f} s CPU in all; without it "
            f"{warm / n * 1e6:8.0f} us worker CPU per workflow"
        )


if __name__ == "__main__":
    main()
