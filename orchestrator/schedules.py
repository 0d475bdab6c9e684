"""Schedules: start a workflow on a cron expression or at a fixed interval.

    await client.schedules.create(
        "nightly-report",
        ScheduleSpec(cron="30 2 * * *"),
        ScheduleAction("Report", task_queue="reports", args=["daily"]),
    )

Workers drive schedules (``Worker(drive_schedules=True)``, the default), and
any number of them may: each fire time is acted on once. How:

1. A driver claims the due schedules (``schedules_due.lua``), reads each one
   and computes its next fire time in Python (``schedule_spec.py``), since Lua
   cannot parse cron.
2. ``schedule_advance.lua`` moves the schedule on only if its stored next fire
   time is still the one the driver saw due (compare-and-set), so a second
   driver acting on the same instant changes nothing. A firing that starts a
   workflow is recorded there as the schedule's pending action.
3. The workflow lives on the shard of its own id, in general another Redis
   Cluster slot than the schedule's, so the same script cannot start it. The
   start is idempotent instead: the workflow id is ``<prefix>-<fire time>`` and
   the start reuses a run of that id, open or closed. Whoever finds the action
   still pending (its driver died after step 2) starts it again, harmlessly.
4. ``schedule_action_done.lua`` clears the pending action and records it.

While the workflow the schedule last started is still running, the overlap
policy decides what a firing does: ``skip`` it (the default), ``buffer_one``
(start it once the running one closes; one firing at most waits) or
``allow_all``. After downtime, fire times older than the catch-up window are
counted as missed, and of those due only the latest is acted on: one late run,
never a burst. Times are UTC only.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson

from . import scripts
from .client import Client, WorkflowHandle, check_name
from .connection import is_transient
from .converter import dumps
from .errors import (
    ConfigurationError,
    OrchestratorError,
    ScheduleAlreadyExistsError,
    ScheduleNotFoundError,
    WorkflowAlreadyStartedError,
)
from .schedule_spec import (
    ScheduleSpec,
    format_fire_time,
    plan_firing,
    to_datetime,
    to_milliseconds,
    workflow_id_for,
)
from .workflow import WorkflowDefinition

logger = logging.getLogger(__name__)

OVERLAP_POLICIES = ("skip", "buffer_one", "allow_all")
DEFAULT_CATCHUP_WINDOW = 60.0
RECENT_ACTIONS = 10
UPCOMING_FIRE_TIMES = 5
DUE_BATCH = 100
# How often a driver re-reads a schedule that others keep changing under it.
MAX_RACES = 10


@dataclass(frozen=True, slots=True)
class ScheduleAction:
    """What a schedule does when it fires: start ``workflow`` (a function or its name).

    Each firing starts workflow id ``<workflow_id_prefix>-<fire time>`` (the
    prefix defaults to the schedule id), e.g. ``nightly-2026-12-04T02:30:00Z``.
    """

    workflow: Callable[..., Any] | str
    task_queue: str
    args: Sequence[Any] = ()
    workflow_id_prefix: str | None = None

    @property
    def workflow_type(self) -> str:
        if isinstance(self.workflow, str):
            return self.workflow
        return WorkflowDefinition.of(self.workflow).name

    def to_dict(self, schedule_id: str) -> dict[str, Any]:
        """The stored form, checked: names valid, arguments JSON, prefix resolved."""
        if isinstance(self.args, str | bytes):
            raise ConfigurationError("args must be a sequence of workflow arguments, not a string")
        prefix = self.workflow_id_prefix or schedule_id
        check_name(self.workflow_type, "workflow type")
        check_name(self.task_queue, "task queue")
        check_name(workflow_id_for(prefix, 0), "workflow id of a scheduled run")
        dumps(list(self.args))  # refuse what could not be sent at fire time
        return {
            "workflow_type": self.workflow_type,
            "task_queue": self.task_queue,
            "args": list(self.args),
            "workflow_id_prefix": prefix,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScheduleAction:
        return cls(
            workflow=data["workflow_type"],
            task_queue=data["task_queue"],
            args=tuple(data.get("args") or ()),
            workflow_id_prefix=data.get("workflow_id_prefix"),
        )


@dataclass(frozen=True, slots=True)
class ScheduleActionResult:
    """One workflow a schedule started."""

    fire_time: datetime
    workflow_id: str
    run_id: str


@dataclass(frozen=True, slots=True)
class ScheduleSummary:
    """A schedule as :meth:`ScheduleClient.list` shows it."""

    schedule_id: str
    spec: ScheduleSpec
    workflow_type: str
    paused: bool
    next_fire_time: datetime | None


@dataclass(frozen=True, slots=True)
class ScheduleDescription:
    """Everything about a schedule: its definition, its state and what it did lately."""

    schedule_id: str
    spec: ScheduleSpec
    action: ScheduleAction
    overlap: str
    catchup_window: timedelta
    paused: bool
    note: str
    next_fire_times: list[datetime]  # empty while paused
    recent_actions: list[ScheduleActionResult]  # newest first
    action_count: int
    missed_count: int  # fire times passed over after downtime (catch-up)
    skipped_count: int  # firings dropped by the overlap policy
    buffered_fire_time: datetime | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class _State:
    """A schedule's hash, parsed."""

    schedule_id: str
    spec: ScheduleSpec
    action: ScheduleAction
    overlap: str
    catchup_ms: int
    paused: bool
    note: str
    next_fire: int
    pending: str
    pending_fire: int
    buffered: int | None
    last_workflow_id: str
    actions: int
    missed: int
    skipped: int
    created_at: int

    @classmethod
    def parse(cls, raw: dict[str, str]) -> _State:
        return cls(
            schedule_id=raw["schedule_id"],
            spec=ScheduleSpec.from_dict(orjson.loads(raw["spec"])),
            action=ScheduleAction.from_dict(orjson.loads(raw["action"])),
            overlap=raw["overlap"],
            catchup_ms=int(raw["catchup_ms"]),
            paused=raw.get("paused") == "1",
            note=raw.get("note", ""),
            next_fire=int(raw["next_fire"]),
            pending=raw.get("pending", ""),
            pending_fire=int(raw.get("pending_fire") or 0),
            buffered=int(raw["buffered"]) if raw.get("buffered") else None,
            last_workflow_id=raw.get("last_workflow_id", ""),
            actions=int(raw.get("actions", 0)),
            missed=int(raw.get("missed", 0)),
            skipped=int(raw.get("skipped", 0)),
            created_at=int(raw.get("created_at", 0)),
        )

    @property
    def prefix(self) -> str:
        return self.action.workflow_id_prefix or self.schedule_id


def _wake(value: str | int) -> float:
    """A wake time from a script reply: ms, ``'inf'`` (paused), or ``''`` (nothing at all)."""
    return float(value) if value != "" else math.inf


async def _load(client: Client, schedule_id: str) -> _State | None:
    raw = await client.redis.hgetall(client.keys.schedule(schedule_id))
    return _State.parse(raw) if raw else None


async def server_now(client: Client) -> int:
    """The Redis server's clock in ms: the one clock every driver and client agrees on."""
    seconds, micros = await client.redis.time()
    return int(seconds) * 1000 + int(micros) // 1000


class ScheduleDriver:
    """Acts on the due schedules of a namespace; any number may run at once.

    A worker runs one in a loop (``Worker(drive_schedules=True)``). Firings
    are handled one schedule after another, so a burst of schedules due at the
    same instant is served in order, each start taking a few round trips.
    """

    def __init__(self, client: Client, *, identity: str = "", batch: int = DUE_BATCH) -> None:
        self.client = client
        self.identity = identity
        self.batch = batch

    async def run_once(self) -> float:
        """Act on every due schedule; return the seconds until one is next due (at most 1)."""
        reply = await scripts.SCHEDULES_DUE(
            self.client.redis, [self.client.keys.schedules()], [self.batch]
        )
        now, earliest, due = int(reply[0]), _wake(reply[1]), reply[2:]
        for schedule_id in due:
            earliest = min(earliest, await self._drive_safely(schedule_id, now))
        if len(due) == self.batch:
            return 0.0
        return min(1.0, max(0.0, (earliest - now) / 1000))

    async def trigger(self, schedule_id: str) -> str | None:
        """Fire the schedule now, whatever its spec, obeying its overlap policy.

        Returns the started workflow id, or None when the policy skipped or
        buffered the firing.
        """
        for _ in range(MAX_RACES):
            state = await _load(self.client, schedule_id)
            if state is None:
                raise ScheduleNotFoundError(f"schedule {schedule_id!r} not found")
            if state.pending:
                await self._complete(state, state.pending, state.pending_fire)
                continue
            now = await server_now(self.client)
            reply = await self._advance(state, "trigger", "", await self._decide(state), now)
            if reply[0] == "OK":
                if reply[1] == "start":
                    workflow_id = workflow_id_for(state.prefix, now)
                    await self._complete(state, workflow_id, now)
                    return workflow_id
                return None
            if reply[0] == "NOT_FOUND":
                raise ScheduleNotFoundError(f"schedule {schedule_id!r} not found")
        raise OrchestratorError(f"schedule {schedule_id!r} kept changing while triggering it")

    async def _drive_safely(self, schedule_id: str, now: int) -> float:
        # One broken schedule must not hold up the others; its claim brings it back later.
        try:
            return await self._drive(schedule_id, now)
        except Exception as exc:
            if is_transient(exc):
                raise
            logger.exception(
                "schedule %s could not be driven; trying again later",
                schedule_id,
                extra={"fields": self._fields()},
            )
            return math.inf

    async def _drive(self, schedule_id: str, now: int) -> float:
        """Do what the schedule's state calls for; return its wake time (ms) as left."""
        wake = math.inf
        for _ in range(MAX_RACES):
            state = await _load(self.client, schedule_id)
            if state is None:
                return math.inf
            if state.pending:
                # A start decided just now, or by a driver that died before doing it.
                wake = await self._complete(state, state.pending, state.pending_fire)
                continue
            if state.paused:
                return wake
            # A buffered firing goes first: firings start in the order of their fire times.
            if state.buffered is not None and await self._decide(state) == "start":
                reply = await self._advance(
                    state, "release", str(state.buffered), "start", state.buffered
                )
            elif state.next_fire <= now:
                reply = await self._fire(state, now)
            else:
                return wake
            if reply[0] == "OK":
                wake = _wake(reply[2])
        return wake

    async def _fire(self, state: _State, now: int) -> list[Any]:
        plan = plan_firing(state.spec, state.next_fire, now, state.catchup_ms)
        fire_time = plan.fire_time if plan.fire_time is not None else state.next_fire
        decision = "none" if plan.fire_time is None else await self._decide(state)
        reply = await self._advance(
            state, "fire", str(state.next_fire), decision, fire_time, plan.next_fire, plan.missed
        )
        if reply[0] == "OK":
            if plan.missed:
                logger.info(
                    "schedule %s missed %d fire time(s) before %s (catch-up window %.0f s)",
                    state.schedule_id,
                    plan.missed,
                    format_fire_time(fire_time),
                    state.catchup_ms / 1000,
                    extra={"fields": self._fields()},
                )
            self._log_firing(state, reply[1], fire_time)
        return reply

    async def _decide(self, state: _State) -> str:
        """What the overlap policy calls for now: ``start``, ``skip`` or ``buffer``."""
        if state.overlap == "allow_all" or not state.last_workflow_id:
            return "start"
        pointer = self.client.keys.workflow(state.last_workflow_id)
        if await self.client.redis.hget(pointer, "status") != "RUNNING":
            return "start"
        return "buffer" if state.overlap == "buffer_one" else "skip"

    async def _advance(
        self,
        state: _State,
        kind: str,
        seen: str,
        decision: str,
        fire_time: int,
        next_fire: int | None = None,
        missed: int = 0,
    ) -> list[Any]:
        workflow_id = workflow_id_for(state.prefix, fire_time) if decision == "start" else ""
        k = self.client.keys
        return await scripts.SCHEDULE_ADVANCE(
            self.client.redis,
            [k.schedule(state.schedule_id), k.schedules()],
            [
                state.schedule_id,
                kind,
                seen,
                state.last_workflow_id,
                decision,
                fire_time,
                workflow_id,
                "" if next_fire is None else next_fire,
                missed,
            ],
        )

    async def _complete(self, state: _State, workflow_id: str, fire_time: int) -> float:
        """Start the pending action's workflow, idempotently, and record it; return the wake."""
        action, k = state.action, self.client.keys
        try:
            handle = await self.client.start_workflow(
                action.workflow_type,
                *action.args,
                id=workflow_id,
                task_queue=action.task_queue,
                id_conflict_policy="use_existing",
                id_reuse_policy="reject_duplicate",
            )
            run_id = handle.run_id or ""
        except WorkflowAlreadyStartedError:
            # Its run exists and is closed: started by a driver that died before recording it.
            run_id = await self.client.redis.hget(k.workflow(workflow_id), "run_id") or ""
            if not run_id:
                raise  # not that: the id's runs kept changing; leave it pending, try again
        entry = dumps({"workflow_id": workflow_id, "run_id": run_id, "fire_time": fire_time})
        reply = await scripts.SCHEDULE_ACTION_DONE(
            self.client.redis,
            [k.schedule(state.schedule_id), k.schedules(), k.schedule_recent(state.schedule_id)],
            [state.schedule_id, workflow_id, entry, RECENT_ACTIONS],
        )
        if reply[0] != "OK":
            return math.inf
        logger.info(
            "schedule %s started workflow %s for fire time %s",
            state.schedule_id,
            workflow_id,
            format_fire_time(fire_time),
            extra={"fields": self._fields(action, workflow_id, run_id)},
        )
        return _wake(reply[1])

    def _log_firing(self, state: _State, outcome: str, fire_time: int) -> None:
        # A start is logged once it is done (by _complete), whoever completes it.
        messages = {
            "skip": "schedule %s skipped fire time %s: its last workflow %s is still running",
            "buffer": "schedule %s buffered fire time %s until its workflow %s closes",
        }
        if outcome in messages:
            logger.info(
                messages[outcome],
                state.schedule_id,
                format_fire_time(fire_time),
                state.last_workflow_id,
                extra={"fields": self._fields(state.action, state.last_workflow_id)},
            )

    def _fields(
        self, action: ScheduleAction | None = None, workflow_id: str = "", run_id: str = ""
    ) -> dict[str, Any]:
        fields: dict[str, Any] = {"namespace": self.client.namespace, "worker": self.identity}
        if action is not None:
            fields.update(
                task_queue=action.task_queue,
                workflow_type=action.workflow_type,
                workflow_id=workflow_id,
                run_id=run_id,
            )
        return fields


class ScheduleClient:
    """Create, list, describe, pause, unpause, trigger and delete schedules.

    Reached as ``client.schedules``. Every method taking an id raises
    :class:`ScheduleNotFoundError` when there is no such schedule.
    """

    def __init__(self, client: Client) -> None:
        self.client = client

    async def create(
        self,
        schedule_id: str,
        spec: ScheduleSpec,
        action: ScheduleAction,
        *,
        overlap: str = "skip",
        catchup_window: timedelta | float = DEFAULT_CATCHUP_WINDOW,
        paused: bool = False,
        note: str = "",
    ) -> None:
        """Create a schedule; :class:`ScheduleAlreadyExistsError` if the id is taken."""
        check_name(schedule_id, "schedule id")
        if not isinstance(spec, ScheduleSpec):
            raise ConfigurationError("spec must be a ScheduleSpec")
        if overlap not in OVERLAP_POLICIES:
            raise ConfigurationError(
                f"overlap must be one of {', '.join(OVERLAP_POLICIES)} (got {overlap!r})"
            )
        window_ms = to_milliseconds(catchup_window, "catchup_window")
        if window_ms <= 0:
            raise ConfigurationError("catchup_window must be positive")
        stored_action = dumps(action.to_dict(schedule_id))

        first_fire = spec.next_after(await server_now(self.client))
        k = self.client.keys
        reply = await scripts.SCHEDULE_CREATE(
            self.client.redis,
            [k.schedule(schedule_id), k.schedules()],
            [
                schedule_id,
                dumps(spec.to_dict()),
                stored_action,
                overlap,
                window_ms,
                first_fire,
                "1" if paused else "0",
                note,
            ],
        )
        if reply[0] == "EXISTS":
            raise ScheduleAlreadyExistsError(f"schedule {schedule_id!r} already exists")

    async def list(self) -> list[ScheduleSummary]:
        """Every schedule of the namespace, by id."""
        redis, k = self.client.redis, self.client.keys
        ids = sorted(await redis.zrange(k.schedules(), 0, -1))
        async with redis.pipeline(transaction=False) as pipe:
            for schedule_id in ids:
                pipe.hgetall(k.schedule(schedule_id))
            raws = await pipe.execute()
        summaries = []
        for raw in raws:
            if not raw:
                continue  # deleted since the set was read
            state = _State.parse(raw)
            summaries.append(
                ScheduleSummary(
                    schedule_id=state.schedule_id,
                    spec=state.spec,
                    workflow_type=state.action.workflow_type,
                    paused=state.paused,
                    next_fire_time=None if state.paused else to_datetime(state.next_fire),
                )
            )
        return summaries

    async def describe(self, schedule_id: str) -> ScheduleDescription:
        """The schedule's definition and state, its next fire times and latest actions."""
        redis, k = self.client.redis, self.client.keys
        async with redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(k.schedule(schedule_id))
            pipe.lrange(k.schedule_recent(schedule_id), 0, -1)
            raw, recent = await pipe.execute()
        if not raw:
            raise ScheduleNotFoundError(f"schedule {schedule_id!r} not found")
        state = _State.parse(raw)
        upcoming = [] if state.paused else state.spec.upcoming(state.next_fire, UPCOMING_FIRE_TIMES)
        actions = [orjson.loads(entry) for entry in recent]
        return ScheduleDescription(
            schedule_id=schedule_id,
            spec=state.spec,
            action=state.action,
            overlap=state.overlap,
            catchup_window=timedelta(milliseconds=state.catchup_ms),
            paused=state.paused,
            note=state.note,
            next_fire_times=[to_datetime(ms) for ms in upcoming],
            recent_actions=[
                ScheduleActionResult(to_datetime(a["fire_time"]), a["workflow_id"], a["run_id"])
                for a in actions
            ],
            action_count=state.actions,
            missed_count=state.missed,
            skipped_count=state.skipped,
            buffered_fire_time=None if state.buffered is None else to_datetime(state.buffered),
            created_at=to_datetime(state.created_at),
        )

    async def pause(self, schedule_id: str, note: str = "") -> None:
        """Stop firing until :meth:`unpause`; a start already decided still happens."""
        await self._update(schedule_id, "pause", note)

    async def unpause(self, schedule_id: str, note: str = "") -> None:
        """Fire again from the next fire time on; those that passed while paused are not made up."""
        await self._update(schedule_id, "unpause", note)

    async def delete(self, schedule_id: str) -> None:
        """Remove the schedule; the workflows it started are left alone.

        A start decided just before (the driver between its two steps) may
        still happen; it is then recorded nowhere.
        """
        await self._update(schedule_id, "delete", "")

    async def trigger(self, schedule_id: str) -> WorkflowHandle | None:
        """Start the action now, whatever the spec says, obeying the overlap policy.

        Works on a paused schedule too. Returns a handle on the started
        workflow, or None when the overlap policy skipped or buffered it.
        """
        workflow_id = await ScheduleDriver(self.client).trigger(schedule_id)
        return None if workflow_id is None else self.client.get_workflow_handle(workflow_id)

    async def _update(self, schedule_id: str, op: str, note: str) -> None:
        next_fire = ""
        if op == "unpause":
            state = await _load(self.client, schedule_id)
            if state is None:
                raise ScheduleNotFoundError(f"schedule {schedule_id!r} not found")
            next_fire = str(state.spec.next_after(await server_now(self.client)))
        k = self.client.keys
        reply = await scripts.SCHEDULE_UPDATE(
            self.client.redis,
            [k.schedule(schedule_id), k.schedules(), k.schedule_recent(schedule_id)],
            [schedule_id, op, note, next_fire],
        )
        if reply[0] == "NOT_FOUND":
            raise ScheduleNotFoundError(f"schedule {schedule_id!r} not found")
