"""``orchestrator task-queue describe``: what waits in a task queue, and who serves it.

A task queue is two Redis streams per shard (workflow tasks, activity tasks)
read by workers through one consumer group. Everything shown comes from the
streams themselves:

- backlog: XLEN, the tasks no worker has started yet (a started task leaves the
  stream);
- lag and pending: XINFO GROUPS, the entries never delivered to a worker, and those
  delivered but not yet started;
- pending per consumer: the XPENDING summary;
- workers: XINFO CONSUMERS, each worker's idle time since it last read the stream,
  which a polling worker renews at every poll (about once a second). Redis keeps a
  consumer after its worker has gone, so only those seen recently are listed.

Known gap: Redis 7.0 records a consumer only once it has been handed an entry, so a
worker that has never received a task from a stream is not listed for that stream.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from redis.exceptions import ResponseError

from ..client import Client, check_name
from ..keys import CONSUMER_GROUP
from .options import Namespace, Output, OutputFormat, RedisUrl
from .render import local_time, print_fields, print_json, print_table
from .reporting import run

task_queue_app = typer.Typer(help="Inspect task queues.", no_args_is_help=True)

DEFAULT_SEEN_WITHIN = 300.0


@dataclass(slots=True)
class Consumer:
    name: str
    pending: int
    idle_ms: int
    inactive_ms: int | None  # since its last successful read (Redis 7.2 and later)


@dataclass(slots=True)
class StreamState:
    shard: int
    kind: str  # "workflow" or "activity"
    key: str
    backlog: int
    lag: int | None  # None when Redis cannot tell (entries were deleted)
    pending: int
    last_delivered_id: str | None
    has_group: bool
    consumers: list[Consumer] = field(default_factory=list)
    pending_by_consumer: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class WorkerSeen:
    name: str
    kinds: list[str]
    pending: int
    idle_ms: int

    @property
    def last_seen_ms(self) -> int:
        return int(time.time() * 1000) - self.idle_ms


async def read_stream(client: Client, shard: int, kind: str, key: str) -> StreamState:
    """The state of one task stream and its consumer group."""
    redis = client.redis
    state = StreamState(shard, kind, key, await redis.xlen(key), None, 0, None, False)
    try:
        groups = await redis.xinfo_groups(key)
    except ResponseError:
        return state  # no such stream: nothing queued, no worker ever polled
    group = next((g for g in groups if g["name"] == CONSUMER_GROUP), None)
    if group is None:
        return state
    state.has_group = True
    state.lag = group.get("lag")
    state.pending = int(group.get("pending") or 0)
    state.last_delivered_id = group.get("last-delivered-id")
    summary = await redis.xpending(key, CONSUMER_GROUP)
    state.pending_by_consumer = {
        c["name"]: int(c["pending"]) for c in summary.get("consumers") or []
    }
    state.consumers = [
        Consumer(c["name"], int(c["pending"]), int(c["idle"]), c.get("inactive"))
        for c in await redis.xinfo_consumers(key, CONSUMER_GROUP)
    ]
    return state


def workers_seen(
    streams: list[StreamState], within_ms: int, heartbeats: dict[str, int] | None = None
) -> list[WorkerSeen]:
    """Workers that heartbeat or read any of the streams within ``within_ms``, newest first."""
    by_name: dict[str, WorkerSeen] = {}
    now = int(time.time() * 1000)
    for name, beat_ms in (heartbeats or {}).items():
        by_name[name] = WorkerSeen(name, [], 0, max(0, now - beat_ms))
    for stream in streams:
        for consumer in stream.consumers:
            seen = by_name.setdefault(
                consumer.name, WorkerSeen(consumer.name, [], 0, consumer.idle_ms)
            )
            if stream.kind not in seen.kinds:
                seen.kinds.append(stream.kind)
            seen.pending += consumer.pending
            seen.idle_ms = min(seen.idle_ms, consumer.idle_ms)
    recent = [w for w in by_name.values() if within_ms <= 0 or w.idle_ms <= within_ms]
    return sorted(recent, key=lambda w: (w.idle_ms, w.name))


@task_queue_app.command("describe")
def task_queue_describe(
    name: Annotated[str, typer.Argument(metavar="NAME", help="Task queue name.")],
    seen_within: Annotated[
        float,
        typer.Option(
            min=0,
            help="List the workers that polled within this many seconds (0: every one "
            "Redis remembers).",
        ),
    ] = DEFAULT_SEEN_WITHIN,
    output: OutputFormat = Output.TABLE,
    url: RedisUrl = None,
    namespace: Namespace = "default",
) -> None:
    """Show a task queue's backlog, lag and pending tasks per shard, and its workers."""

    async def main() -> tuple[list[StreamState], dict[str, int]]:
        check_name(name, "task queue")
        async with await Client.connect(url, namespace=namespace) as client:
            k = client.keys
            beats = await client.redis.zrange(k.workers(name), 0, -1, withscores=True)
            streams = []
            for shard in range(k.shards):
                for kind, key in (
                    ("workflow", k.workflow_tasks(name, shard)),
                    ("activity", k.activity_tasks(name, shard)),
                ):
                    streams.append(await read_stream(client, shard, kind, key))
            return streams, {worker: int(score) for worker, score in beats}

    streams, heartbeats = run(main())
    workers = workers_seen(streams, int(seen_within * 1000), heartbeats)
    if output is Output.JSON:
        print_json(
            {
                "task_queue": name,
                "namespace": namespace,
                "streams": [asdict(s) for s in streams],
                "workers": [
                    {**asdict(w), "last_seen": datetime.fromtimestamp(w.last_seen_ms / 1000, UTC)}
                    for w in workers
                ],
            }
        )
        return
    _print_tables(name, namespace, streams, workers, seen_within)


def _print_tables(
    name: str,
    namespace: str,
    streams: list[StreamState],
    workers: list[WorkerSeen],
    seen_within: float,
) -> None:
    print_fields(
        [
            ("Task Queue", name),
            ("Namespace", namespace),
            ("Backlog", sum(s.backlog for s in streams)),
            ("Pending", sum(s.pending for s in streams)),
        ]
    )
    print_table(
        ["Shard", "Kind", "Backlog", "Lag", "Pending", "Consumers", "Last Delivered"],
        [
            (
                s.shard,
                s.kind,
                s.backlog,
                _lag(s),
                s.pending,
                len(s.consumers),
                s.last_delivered_id,
            )
            for s in streams
        ],
        title="Streams",
    )
    pending_rows = [
        (s.shard, s.kind, consumer, count)
        for s in streams
        for consumer, count in sorted(s.pending_by_consumer.items())
    ]
    if pending_rows:
        print_table(["Shard", "Kind", "Consumer", "Pending"], pending_rows, title="Pending")
    window = f"in the last {seen_within:g} s" if seen_within > 0 else "ever"
    if not workers:
        typer.echo(f"No worker has polled task queue {name} {window}.")
        return
    print_table(
        ["Worker", "Reads", "Pending", "Last Seen", "Idle"],
        [
            (
                w.name,
                ", ".join(w.kinds),
                w.pending,
                local_time(w.last_seen_ms),
                f"{w.idle_ms / 1000:.1f} s",
            )
            for w in workers
        ],
        title=f"Workers seen {window}",
    )


def _lag(stream: StreamState) -> Any:
    if not stream.has_group:
        return "no group"
    return "unknown" if stream.lag is None else stream.lag
