"""Queue-level gauges, read from Redis at scrape time by one process for a namespace.

Backlog, consumer-group lag, pending entries and their age, timers waiting, runs
open, and the run counters the start and close scripts keep (``Keys.stats``) all
describe the namespace, not a worker: one exporter (``orchestrator metrics
serve``) reports them, so a scrape of N workers does not count them N times.

A scrape costs a fixed handful of round trips: one pipeline for every stream and
counter, plus a ZSCAN of the due-time set for its breakdown by kind, skipped when
the set is larger than ``timer_scan_limit``.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
import redis
import redis.exceptions
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from .connection import TRANSIENT, connect_sync
from .keys import CONSUMER_GROUP, Keys
from .metrics import PREFIX

if TYPE_CHECKING:
    from .client import Client

logger = logging.getLogger(__name__)

# A scrape reports a hung Redis as down (redis_up 0) after this long, well within
# Prometheus' scrape timeout, rather than letting the scrape itself time out.
SCRAPE_SOCKET_TIMEOUT = 5.0
# Worker heartbeats come every 5 s; a worker silent for longer than this is not counted.
WORKER_ALIVE_MS = 30_000
STREAM_LABELS = ["namespace", "task_queue", "task_kind"]
STREAM_CALLS = 3  # commands pipelined per stream: XLEN, XPENDING, XRANGE of the first entry


@dataclass(frozen=True, slots=True)
class _Stream:
    namespace: str
    task_queue: str
    task_kind: str
    key: str


def _entry_ms(entry_id: str) -> int:
    return int(entry_id.split("-", 1)[0])


class QueueCollector(Collector):
    """Reports the queues, timers and run counters of ``namespaces`` at every scrape.

    Task queues are those any worker has served (``Keys.task_queues``) plus
    ``task_queues``. ``shards`` maps a namespace to its shard count; it is read from
    Redis when not given.
    """

    def __init__(
        self,
        client: redis.Redis,
        namespaces: Sequence[str] = ("default",),
        *,
        task_queues: Iterable[str] = (),
        shards: dict[str, int] | None = None,
        timer_scan_limit: int = 100_000,
    ) -> None:
        self.redis = client
        self.namespaces = list(namespaces)
        self.task_queues = sorted(set(task_queues))
        self._shards = dict(shards or {})
        self.timer_scan_limit = timer_scan_limit
        self._unknown: set[str] = set()

    @classmethod
    def from_client(cls, client: Client) -> QueueCollector:
        """A collector on its own blocking connection to the client's server and namespace."""
        keys = client.keys
        redis_ = connect_sync(client.url, socket_timeout=SCRAPE_SOCKET_TIMEOUT)
        return cls(redis_, [keys.namespace], shards={keys.namespace: keys.shards})

    def describe(self) -> list[Any]:
        return []  # reading Redis to describe would make registering this block

    def collect(self) -> Iterator[Any]:
        began = time.perf_counter()
        up = GaugeMetricFamily(
            f"{PREFIX}_exporter_redis_up",
            "1 if the last scrape could read Redis, else 0.",
            labels=["namespace"],
        )
        try:
            families = list(self._collect())
        except (*TRANSIENT, redis.exceptions.RedisError) as exc:
            logger.warning("scrape could not read Redis: %s", exc)
            families, value = [], 0
        else:
            value = 1
        for namespace in self.namespaces:
            up.add_metric([namespace], value)
        yield up
        if not value:
            return
        yield from families
        yield GaugeMetricFamily(
            f"{PREFIX}_exporter_scrape_duration_seconds",
            "Time the last scrape spent reading Redis.",
            value=time.perf_counter() - began,
        )

    # -- reading Redis ------------------------------------------------------------------

    def _keys(self) -> list[Keys]:
        missing = [ns for ns in self.namespaces if ns not in self._shards]
        if missing:
            with self.redis.pipeline(transaction=False) as pipe:
                for ns in missing:
                    pipe.hget(Keys(ns).meta(), "shards")
                for ns, shards in zip(missing, pipe.execute(), strict=True):
                    if shards is not None:
                        self._shards[ns] = int(shards)
                    elif ns not in self._unknown:
                        # No client or worker has used it: a typo, or the wrong database.
                        self._unknown.add(ns)
                        logger.warning("namespace %r is unknown to this Redis so far", ns)
        return [Keys(ns, self._shards.get(ns, 1)) for ns in self.namespaces]

    def _queues(self, all_keys: list[Keys]) -> dict[str, list[str]]:
        """Queues workers served, queues runs were started on, and those asked for."""
        # One SMEMBERS per set, not SUNION: the sets live on different cluster slots.
        sets = {
            keys.namespace: [keys.task_queues()]
            + [keys.started_queues(shard) for shard in range(keys.shards)]
            for keys in all_keys
        }
        with self.redis.pipeline(transaction=False) as pipe:
            for names in sets.values():
                for name in names:
                    pipe.smembers(name)
            found = iter(pipe.execute())
        return {
            ns: sorted(set(self.task_queues).union(*(next(found) for _ in names)))
            for ns, names in sets.items()
        }

    def _collect(self) -> Iterator[Any]:
        all_keys = self._keys()
        queues = self._queues(all_keys)
        streams = [
            _Stream(keys.namespace, queue, kind, key)
            for keys in all_keys
            for queue in queues[keys.namespace]
            for shard in range(keys.shards)
            for kind, key in (
                ("workflow", keys.workflow_tasks(queue, shard)),
                ("activity", keys.activity_tasks(queue, shard)),
            )
        ]
        seconds, micros = self.redis.time()  # Redis's clock: entry ids and timers use it
        now_ms = int(seconds) * 1000 + int(micros) // 1000
        with self.redis.pipeline(transaction=False) as pipe:
            for stream in streams:  # STREAM_CALLS of them, in _QueueFigures.add's order
                pipe.xlen(stream.key)
                pipe.xpending(stream.key, CONSUMER_GROUP)
                pipe.xrange(stream.key, count=1)
            for keys in all_keys:
                for queue in queues[keys.namespace]:
                    pipe.zcount(keys.workers(queue), now_ms - WORKER_ALIVE_MS, "+inf")
                for shard in range(keys.shards):
                    pipe.zcard(keys.timers(shard))
                    pipe.zcount(keys.timers(shard), "-inf", now_ms)
                    pipe.zcard(keys.visibility(shard).open)
                    pipe.hgetall(keys.stats(shard))
            replies = pipe.execute(raise_on_error=False)
        split = STREAM_CALLS * len(streams)
        stream_replies, rest = replies[:split], replies[split:]
        yield from _stream_families(streams, stream_replies, now_ms)
        yield from self._namespace_families(all_keys, queues, rest)

    def _namespace_families(
        self, all_keys: list[Keys], queues: dict[str, list[str]], replies: list[Any]
    ) -> Iterator[Any]:
        f = _NamespaceFamilies()
        it = iter(replies)
        for keys in all_keys:
            ns = keys.namespace
            for queue in queues[ns]:
                f.workers.add_metric([ns, queue], _int(next(it)))
            waiting = due = open_runs = 0
            started: Counter[str] = Counter()
            closed: Counter[tuple[str, str]] = Counter()
            for _ in range(keys.shards):
                waiting += _int(next(it))
                due += _int(next(it))
                open_runs += _int(next(it))
                _add_stats(next(it), started, closed)
            f.timers_waiting.add_metric([ns], waiting)
            f.timers_due.add_metric([ns], due)
            f.open_runs.add_metric([ns], open_runs)
            for workflow_type, count in sorted(started.items()):
                f.started.add_metric([ns, workflow_type], count)
            for (workflow_type, status), count in sorted(closed.items()):
                f.closed.add_metric([ns, workflow_type, status], count)
            if waiting <= self.timer_scan_limit:
                for kind, count in sorted(self._timer_kinds(keys).items()):
                    f.timers_by_kind.add_metric([ns, kind], count)
        yield from f.all()

    def _timer_kinds(self, keys: Keys) -> Counter[str]:
        kinds: Counter[str] = Counter()
        for shard in range(keys.shards):
            for member, _ in self.redis.zscan_iter(keys.timers(shard), count=1000):
                kinds[orjson.loads(member)[0]] += 1
        return kinds


def _int(reply: Any) -> int:
    return 0 if isinstance(reply, Exception) or reply is None else int(reply)


def _add_stats(reply: Any, started: Counter[str], closed: Counter[tuple[str, str]]) -> None:
    if isinstance(reply, Exception):
        return
    for field, value in reply.items():
        kind, _, rest = field.partition("|")
        if kind == "started":
            started[rest] += int(value)
        elif kind == "closed":
            workflow_type, _, status = rest.rpartition("|")
            closed[(workflow_type, status)] += int(value)


class _NamespaceFamilies:
    def __init__(self) -> None:
        def gauge(name: str, doc: str, *labels: str) -> GaugeMetricFamily:
            return GaugeMetricFamily(f"{PREFIX}_{name}", doc, labels=["namespace", *labels])

        self.workers = gauge(
            "task_queue_workers", "Workers that heartbeated in the last 30 s.", "task_queue"
        )
        self.timers_waiting = gauge(
            "timers_waiting", "Entries in the due-time sets: timers, timeouts, retries."
        )
        self.timers_due = gauge(
            "timers_due",
            "Due-time entries already due but not yet fired; stays near 0 while workers run.",
        )
        self.timers_by_kind = gauge(
            "timers_waiting_by_kind",
            "Due-time entries by kind: retry (activity retries in backoff), timer (durable "
            "timers), stc/hb/s2s/s2c (activity timeouts), wf_timeout, wft_timeout, ...",
            "kind",
        )
        self.open_runs = gauge("workflows_open", "Runs started and not yet closed.")
        self.started = CounterMetricFamily(
            f"{PREFIX}_workflows_started",
            "Runs started (continue-as-new included), by workflow type.",
            labels=["namespace", "workflow_type"],
        )
        self.closed = CounterMetricFamily(
            f"{PREFIX}_workflows_closed",
            "Runs closed, by workflow type and status (COMPLETED, FAILED, CANCELED, "
            "TERMINATED, TIMED_OUT, CONTINUED_AS_NEW).",
            labels=["namespace", "workflow_type", "status"],
        )

    def all(self) -> list[Any]:
        return [
            self.workers,
            self.timers_waiting,
            self.timers_due,
            self.timers_by_kind,
            self.open_runs,
            self.started,
            self.closed,
        ]


@dataclass(slots=True)
class _QueueFigures:
    """One task queue's figures for one kind of task, summed over its shards' streams."""

    backlog: int = 0
    lag: int = 0
    pending: int = 0
    oldest_age: float = 0.0
    oldest_pending_age: float = 0.0

    def add(self, length: Any, summary: Any, first: Any, now_ms: int) -> None:
        """Add one stream's XLEN, XPENDING summary and first entry (or their errors:
        a stream no worker has created a group for has no pending entries)."""
        in_pel = int(summary["pending"]) if isinstance(summary, dict) else 0
        self.backlog += _int(length)
        # Entries leave the stream when their attempt starts, so what remains is either
        # pending (delivered, not started) or not yet delivered. Counted here rather than
        # read from XINFO GROUPS, whose lag some Redis releases get wrong after deletions.
        self.lag += max(0, _int(length) - in_pel)
        self.pending += in_pel
        if first and not isinstance(first, Exception):
            self.oldest_age = max(self.oldest_age, (now_ms - _entry_ms(first[0][0])) / 1000)
        if in_pel and summary.get("min"):
            age = (now_ms - _entry_ms(summary["min"])) / 1000
            self.oldest_pending_age = max(self.oldest_pending_age, age)


def _stream_families(streams: list[_Stream], replies: list[Any], now_ms: int) -> Iterator[Any]:
    def gauge(name: str, doc: str) -> GaugeMetricFamily:
        return GaugeMetricFamily(f"{PREFIX}_task_queue_{name}", doc, labels=STREAM_LABELS)

    backlog = gauge("backlog", "Tasks queued and not yet started (delivered to a worker or not).")
    lag = gauge("lag", "Tasks not yet delivered to any worker (the consumer group's lag).")
    pending = gauge("pending", "Tasks delivered to a worker that has not started them yet.")
    oldest = gauge(
        "oldest_task_age_seconds", "Age of the oldest task not yet started (0 when none)."
    )
    oldest_pending = gauge(
        "oldest_pending_age_seconds",
        "Age of the oldest task delivered but not started (0 when none); a high value "
        "means a worker died holding it, until another reclaims it.",
    )
    figures: dict[tuple[str, str, str], _QueueFigures] = {}
    for i, stream in enumerate(streams):
        labels = (stream.namespace, stream.task_queue, stream.task_kind)
        figures.setdefault(labels, _QueueFigures()).add(
            *replies[STREAM_CALLS * i : STREAM_CALLS * (i + 1)], now_ms
        )
    for labels, f in figures.items():
        backlog.add_metric(list(labels), f.backlog)
        lag.add_metric(list(labels), f.lag)
        pending.add_metric(list(labels), f.pending)
        oldest.add_metric(list(labels), f.oldest_age)
        oldest_pending.add_metric(list(labels), f.oldest_pending_age)
    yield from (backlog, lag, pending, oldest, oldest_pending)
