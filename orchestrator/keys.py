"""Every Redis key name the orchestrator uses, built in this one module.

Layout (``ns`` is the namespace, ``{s}`` the hash tag of a shard):

    ns:meta                        hash    namespace settings (shard count)
    ns:{s}:wf:<workflow id>        hash    pointer to the workflow's current run
    ns:{s}:run:<run id>            hash    state of one run
    ns:{s}:run:<run id>:history    stream  the run's events, ids 0-1, 0-2, ...
    ns:{s}:run:<run id>:act:<seq>  hash    state of one scheduled activity
    ns:{s}:run:<run id>:children   hash    the run's child workflows: seq -> JSON state
    ns:{s}:q:<task queue>:wf       stream  workflow tasks of a task queue
    ns:{s}:q:<task queue>:act      stream  activity tasks of a task queue
    ns:{s}:timers                  zset    due times: retries, timeouts
    ns:{s}:vis:runs                hash    run id -> JSON summary, for listing
    ns:{s}:vis:start               zset    run ids by start time
    ns:{s}:vis:close               zset    closed run ids by close time
    ns:{s}:vis:open                zset    open run ids by start time
    ns:{s}:vis:status:<status>     zset    closed run ids of one status by start time
    ns:{s}:vis:type:<type>         zset    run ids of one workflow type by start time
    ns:{s}:vis:queue:<task queue>  zset    run ids of one task queue by start time
    ns:{s}:stats                   hash    counters of runs started and closed, by type
                                           and status (read by the metrics exporter)
    ns:{s}:q:<task queue>:query    stream  queries waiting for a worker of the queue
    ns:query:<request id>          list    the answer to one query, read once
    ns:workers:<task queue>        zset    worker ids by last heartbeat (ms)
    ns:task_queues                 set     task queues that have had a worker
    ns:{s}:task_queues             set     task queues runs were started on
    ns:{sched}:schedules           zset    schedule ids, scored by when a driver must look
    ns:{sched}:schedule:<id>       hash    a schedule's spec, action, policies and state
    ns:{sched}:schedule:<id>:recent
                                   list    its latest actions, newest first (JSON each)

A workflow lives on one shard, chosen by hashing its id. Everything a state
transition touches (the run, its history, its activities, the task streams it
feeds and the due-time set) shares the shard's hash tag, so each transition is
one Lua script on one slot and the layout runs unchanged on Redis Cluster.
A worker reads the streams of its task queue on every shard.

Schedules share one tag of their own, so listing them and finding the due ones
is one slot too. The workflows they start live on their own shards; see
``schedules.py`` for how a firing stays exactly-once across the two.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import NamedTuple

CONSUMER_GROUP = "workers"


class VisibilityKeys(NamedTuple):
    """A shard's run summaries and its indexes by time (see the layout above)."""

    runs: str
    start: str
    close: str
    open: str


@dataclass(frozen=True, slots=True)
class Keys:
    """Key builder for one namespace."""

    namespace: str = "default"
    shards: int = 1

    def shard_of(self, workflow_id: str) -> int:
        if self.shards == 1:
            return 0
        return zlib.crc32(workflow_id.encode()) % self.shards

    def _base(self, shard: int) -> str:
        return f"{self.namespace}:{{{shard}}}"

    def meta(self) -> str:
        return f"{self.namespace}:meta"

    def workflow(self, workflow_id: str) -> str:
        return f"{self._base(self.shard_of(workflow_id))}:wf:{workflow_id}"

    def run(self, workflow_id: str, run_id: str) -> str:
        return f"{self._base(self.shard_of(workflow_id))}:run:{run_id}"

    def history(self, workflow_id: str, run_id: str) -> str:
        return f"{self.run(workflow_id, run_id)}:history"

    def children(self, workflow_id: str, run_id: str) -> str:
        return f"{self.run(workflow_id, run_id)}:children"

    def activity(self, workflow_id: str, run_id: str, seq: int) -> str:
        return f"{self.run(workflow_id, run_id)}:act:{seq}"

    def workflow_tasks(self, task_queue: str, shard: int) -> str:
        return f"{self._base(shard)}:q:{task_queue}:wf"

    def activity_tasks(self, task_queue: str, shard: int) -> str:
        return f"{self._base(shard)}:q:{task_queue}:act"

    def visibility(self, shard: int) -> VisibilityKeys:
        base = self._base(shard)
        return VisibilityKeys(
            f"{base}:vis:runs", f"{base}:vis:start", f"{base}:vis:close", f"{base}:vis:open"
        )

    def stats(self, shard: int) -> str:
        """Counters kept by the scripts that start and close runs: ``started|<type>`` and
        ``closed|<type>|<status>``. Monotonic, so they survive retention's purges."""
        return f"{self._base(shard)}:stats"

    def visibility_for(self, workflow_id: str) -> VisibilityKeys:
        return self.visibility(self.shard_of(workflow_id))

    def closing_visibility(self, workflow_id: str, status: str) -> list[str]:
        """The visibility keys a script closing a run with ``status`` needs:
        summaries, close-time index, open-runs index, index of that status, counters."""
        shard = self.shard_of(workflow_id)
        vis = self.visibility(shard)
        return [
            vis.runs,
            vis.close,
            vis.open,
            self.visibility_by_status(shard, status),
            self.stats(shard),
        ]

    def visibility_by_type(self, shard: int, workflow_type: str) -> str:
        return f"{self._base(shard)}:vis:type:{workflow_type}"

    def visibility_by_status(self, shard: int, status: str) -> str:
        return f"{self._base(shard)}:vis:status:{status}"

    def visibility_by_queue(self, shard: int, task_queue: str) -> str:
        return f"{self._base(shard)}:vis:queue:{task_queue}"

    def query_tasks(self, task_queue: str, shard: int) -> str:
        return f"{self._base(shard)}:q:{task_queue}:query"

    def task_queues(self) -> str:
        """Every task queue a worker has served, so the exporter finds them without a scan."""
        return f"{self.namespace}:task_queues"

    def started_queues(self, shard: int) -> str:
        """Task queues runs of the shard were started on, so the exporter sees a backlog
        on a queue no worker ever served (a typo, a worker that never came up)."""
        return f"{self._base(shard)}:task_queues"

    def workers(self, task_queue: str) -> str:
        """Workers of a task queue, scored by their last heartbeat (ms)."""
        return f"{self.namespace}:workers:{task_queue}"

    def query_reply(self, request_id: str) -> str:
        return f"{self.namespace}:query:{request_id}"

    def timers(self, shard: int) -> str:
        return f"{self._base(shard)}:timers"

    def workflow_tasks_for(self, task_queue: str, workflow_id: str) -> str:
        return self.workflow_tasks(task_queue, self.shard_of(workflow_id))

    def activity_tasks_for(self, task_queue: str, workflow_id: str) -> str:
        return self.activity_tasks(task_queue, self.shard_of(workflow_id))

    def timers_for(self, workflow_id: str) -> str:
        return self.timers(self.shard_of(workflow_id))

    def schedules(self) -> str:
        return f"{self.namespace}:{{sched}}:schedules"

    def schedule(self, schedule_id: str) -> str:
        return f"{self.namespace}:{{sched}}:schedule:{schedule_id}"

    def schedule_recent(self, schedule_id: str) -> str:
        return f"{self.schedule(schedule_id)}:recent"
