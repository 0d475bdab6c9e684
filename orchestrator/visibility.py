"""Listing and counting workflow runs, from the indexes the state scripts keep.

Each shard keeps a summary per run and two indexes (by start time, by close
time). A page walks the chosen index newest first on every shard, applies the
filters inside Redis, and merges the shards' pages; its cursor is the (time, run
id) of the last run returned, so pages never repeat or skip a run.
"""

from __future__ import annotations

import base64
import heapq
import itertools
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson

from . import scripts
from .converter import dumps
from .errors import ConfigurationError

if TYPE_CHECKING:
    from .client import Client

STATUSES = (
    "RUNNING",
    "COMPLETED",
    "FAILED",
    "CANCELED",
    "TERMINATED",
    "TIMED_OUT",
    "CONTINUED_AS_NEW",
)
SCAN_LIMIT = 10_000_000  # a page stops when full; this only bounds a runaway walk


@dataclass(frozen=True, slots=True)
class WorkflowExecution:
    """One run as listed: its identity, status and times."""

    workflow_id: str
    run_id: str
    workflow_type: str
    task_queue: str
    status: str
    start_time: datetime
    close_time: datetime | None

    @classmethod
    def from_summary(cls, summary: dict[str, Any]) -> WorkflowExecution:
        close = summary.get("close_time")
        return cls(
            summary["workflow_id"],
            summary["run_id"],
            summary["workflow_type"],
            summary["task_queue"],
            summary["status"],
            _time(summary["start_time"]),
            _time(close) if close else None,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "workflow_id": self.workflow_id,
            "run_id": self.run_id,
            "workflow_type": self.workflow_type,
            "task_queue": self.task_queue,
            "status": self.status,
            "start_time": self.start_time.isoformat(),
            "close_time": self.close_time.isoformat() if self.close_time else None,
        }


@dataclass(frozen=True, slots=True)
class WorkflowPage:
    executions: list[WorkflowExecution]
    next_page_token: str | None


@dataclass(frozen=True, slots=True)
class ListFilter:
    """Which runs to list: all given conditions must hold."""

    status: str | None = None
    workflow_type: str | None = None
    task_queue: str | None = None
    started_after: datetime | None = None
    started_before: datetime | None = None
    closed_after: datetime | None = None
    closed_before: datetime | None = None

    def __post_init__(self) -> None:
        if self.status is not None and self.status not in STATUSES:
            raise ConfigurationError(f"status must be one of {', '.join(STATUSES)}")

    def unmet_by(self, index: _Index) -> bool:
        """Whether some filter still needs checking on each run of ``index``."""
        active = {
            name
            for name in ("status", "workflow_type", "task_queue")
            if getattr(self, name) is not None
        }
        start_bounds = self.by_close and (self.started_after or self.started_before)
        return bool(active - index.implies) or bool(start_bounds)

    @property
    def by_close(self) -> bool:
        """Closed-time bounds walk the close-time index (newest closed first)."""
        return self.closed_after is not None or self.closed_before is not None

    def score_range(self) -> tuple[str, str]:
        low, high = (
            (self.closed_after, self.closed_before)
            if self.by_close
            else (self.started_after, self.started_before)
        )
        return (_ms(high) if high else "+inf", _ms(low) if low else "-inf")

    def script_filters(self) -> bytes:
        filters: dict[str, Any] = {
            k: v
            for k, v in (
                ("status", self.status),
                ("workflow_type", self.workflow_type),
                ("task_queue", self.task_queue),
            )
            if v is not None
        }
        if self.by_close:  # start bounds are then checked on each summary
            if self.started_after:
                filters["start_min"] = int(_ms(self.started_after))
            if self.started_before:
                filters["start_max"] = int(_ms(self.started_before))
        return dumps(filters)


def _ms(value: datetime) -> str:
    if value.tzinfo is None:
        raise ConfigurationError("times must carry a time zone (e.g. datetime.now(UTC))")
    return str(int(value.timestamp() * 1000))


def _time(ms: int | float) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def _encode_token(score: str, run_id: str) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([score, run_id])).decode()


def _decode_token(token: str) -> tuple[str, str]:
    try:
        score, run_id = orjson.loads(base64.urlsafe_b64decode(token))
        return str(score), str(run_id)
    except (ValueError, TypeError):
        raise ConfigurationError("not a page token of this listing") from None


async def list_workflows(
    client: Client, where: ListFilter, page_size: int = 100, next_page_token: str | None = None
) -> WorkflowPage:
    if not 1 <= page_size <= 1000:
        raise ConfigurationError("page_size must be between 1 and 1000")
    high, low = where.score_range()
    cursor = ""
    if next_page_token:
        high, cursor = _decode_token(next_page_token)
    indexes = await _choose_indexes(client, where)
    replies = await _per_shard(client, where, indexes, high, low, cursor, page_size)
    entries = heapq.merge(
        *[_entries(reply) for reply in replies], key=lambda e: (float(e[0]), e[1]), reverse=True
    )
    page = list(itertools.islice(entries, page_size))
    executions = [WorkflowExecution.from_summary(orjson.loads(raw)) for _, _, raw in page]
    token = None
    if len(page) == page_size:
        score, run_id, _ = page[-1]
        token = _encode_token(score, run_id)
    return WorkflowPage(executions, token)


async def count_workflows(client: Client, where: ListFilter) -> int:
    high, low = where.score_range()
    indexes = await _choose_indexes(client, where)
    if all(not where.unmet_by(index) for index in indexes):
        # The indexes alone answer: count their entries in the time range.
        async with client.redis.pipeline(transaction=False) as pipe:
            for index in indexes:
                pipe.zcount(index.key, low, high)
            return sum(await pipe.execute())
    replies = await _per_shard(client, where, indexes, high, low, "", 0)
    return sum(int(reply[0]) for reply in replies)


@dataclass(frozen=True, slots=True)
class _Index:
    """One shard's index to walk, and the filters that membership in it already implies."""

    key: str
    implies: frozenset[str]


def _candidates(client: Client, shard: int, where: ListFilter) -> list[_Index]:
    keys = client.keys
    vis = keys.visibility(shard)
    if where.by_close:
        return [_Index(vis.close, frozenset())]
    if where.status == "RUNNING":
        found = [_Index(vis.open, frozenset({"status"}))]
    elif where.status:
        found = [_Index(keys.visibility_by_status(shard, where.status), frozenset({"status"}))]
    else:
        found = [_Index(vis.start, frozenset())]
    if where.workflow_type:
        found.append(
            _Index(
                keys.visibility_by_type(shard, where.workflow_type), frozenset({"workflow_type"})
            )
        )
    if where.task_queue:
        found.append(
            _Index(keys.visibility_by_queue(shard, where.task_queue), frozenset({"task_queue"}))
        )
    return found


async def _choose_indexes(client: Client, where: ListFilter) -> list[_Index]:
    """Per shard, the smallest index that can serve the filters: the walk is shortest there."""
    per_shard = [_candidates(client, shard, where) for shard in range(client.keys.shards)]
    if all(len(candidates) == 1 for candidates in per_shard):
        return [candidates[0] for candidates in per_shard]
    async with client.redis.pipeline(transaction=False) as pipe:
        for candidates in per_shard:
            for index in candidates:
                pipe.zcard(index.key)
        sizes = iter(await pipe.execute())
    chosen = []
    for candidates in per_shard:
        sized = [(next(sizes), i, index) for i, index in enumerate(candidates)]
        chosen.append(min(sized)[2])
    return chosen


async def _per_shard(
    client: Client,
    where: ListFilter,
    indexes: list[_Index],
    high: str,
    low: str,
    cursor: str,
    page_size: int,
) -> list[Any]:
    calls = []
    for shard, index in enumerate(indexes):
        runs = client.keys.visibility(shard).runs
        calls.append(
            (
                scripts.LIST_WORKFLOWS,
                [runs, index.key],
                [high, low, cursor, page_size, where.script_filters(), SCAN_LIMIT],
            )
        )
    results = await scripts.run_pipeline(client.redis, calls)
    for result in results:
        if isinstance(result, Exception):
            raise result
    return results


def _entries(reply: list[Any]) -> list[tuple[str, str, str]]:
    """(score, run id, summary JSON) of one shard's page, newest first."""
    values = reply[3:]
    return [
        (values[i], orjson.loads(values[i + 1])["run_id"], values[i + 1])
        for i in range(0, len(values), 2)
    ]
