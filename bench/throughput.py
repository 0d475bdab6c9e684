"""Throughput benchmark: workflows per second through one worker process.

    .venv/bin/python bench/throughput.py [--workflows N] [--activities K] [--shape seq|par]

Starts its own redis-server on a free loopback port (no persistence), a worker
process, and a starter in this process. Each workflow runs K no-op activities
(sequentially or gathered in parallel). Reports the start rate, end-to-end
workflows/s and activities/s, and CPU microseconds per activity for the worker
and for redis-server. Figures are printed, not asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from orchestrator import Client  # noqa: E402
from orchestrator.devserver import EmbeddedRedis  # noqa: E402

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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workflows", type=int, default=2000)
    parser.add_argument("--activities", type=int, default=1)
    parser.add_argument("--shape", choices=("seq", "par"), default="seq")
    args = parser.parse_args()

    with EmbeddedRedis(prefer="redis-server") as server:
        url = server.url
        enqueue_s, ids = asyncio.run(_start_all(url, args.workflows, args.activities, args.shape))
        env = {**os.environ, "ORCHESTRATOR_REDIS_URL": url}
        redis_before = _redis_cpu(url)
        began = time.perf_counter()
        worker = subprocess.Popen(
            [
                sys.executable,
                os.environ.get("BENCH_WORKER", str(ROOT / "bench" / "bench_worker.py")),
            ],
            env=env,
            cwd=ROOT,
        )
        try:
            asyncio.run(_wait_all(url, ids))
            elapsed = time.perf_counter() - began
            worker_cpu = _cpu_seconds(worker.pid)
        finally:
            worker.terminate()
            worker.wait(timeout=30)
        redis_cpu = _redis_cpu(url) - redis_before

    n, k = args.workflows, args.activities
    activities = n * k
    print(f"workflows: {n}, activities per workflow: {k} ({args.shape})")
    print(f"start rate:            {n / enqueue_s:8.0f} workflows/s")
    print(
        f"drain (1 worker):      {n / elapsed:8.0f} workflows/s  "
        f"{activities / elapsed:8.0f} activities/s  ({elapsed:.2f} s, start-up included)"
    )
    print(f"worker CPU:            {worker_cpu / activities * 1e6:8.0f} us/activity")
    print(f"redis CPU:             {redis_cpu / activities * 1e6:8.0f} us/activity")


if __name__ == "__main__":
    main()
