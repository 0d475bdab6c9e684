"""Schedules: specs, catch-up plans, the client API, exactly-once firing, overlap policies."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from orchestrator import (
    Client,
    ConfigurationError,
    ScheduleAction,
    ScheduleAlreadyExistsError,
    ScheduleNotFoundError,
    ScheduleSpec,
    SerializationError,
)
from orchestrator.schedule_spec import FirePlan, plan_firing, workflow_id_for
from orchestrator.schedules import ScheduleDriver, _load, _State, server_now

import defs
from helpers import eventually, run, running_worker

OPTIONS: dict[str, Any] = dict(
    task_queue="schedules", workflows=defs.ALL_WORKFLOWS, activities=defs.ALL_ACTIVITIES
)
HELLO = ScheduleAction("Hello", task_queue="schedules", args=["sched"])
YEARLY = ScheduleSpec(cron="0 0 1 1 *")
EVERY_SECOND = ScheduleSpec(interval=1)
SECOND = timedelta(seconds=1)


def ms(iso: str) -> int:
    return round(datetime.fromisoformat(iso).timestamp() * 1000)


def gated(gate: str) -> ScheduleAction:
    """Starts a workflow that runs until the test sets ``gate:<gate>``."""
    return ScheduleAction("Gated", task_queue="schedules", args=[[gate]])


async def settled(client: Client, schedule_id: str) -> bool:
    """True once no start is pending: after a pause, nothing more will be started."""
    return await client.redis.hget(client.keys.schedule(schedule_id), "pending") == ""


async def run_hashes(client: Client) -> int:
    """How many runs exist in the namespace, whatever their workflow id."""
    pattern = f"{client.namespace}:*:run:*"
    return len([k async for k in client.redis.scan_iter(match=pattern) if k.count(":") == 3])


# -- fire times and catch-up plans ---------------------------------------------------


def test_interval_fires_at_multiples_of_itself_since_the_epoch() -> None:
    spec = ScheduleSpec(interval=timedelta(seconds=5))
    assert spec.next_after(ms("2026-12-04T17:30:02+00:00")) == ms("2026-12-04T17:30:05+00:00")
    assert spec.next_after(ms("2026-12-04T17:30:05+00:00")) == ms("2026-12-04T17:30:10+00:00")
    assert spec.latest_at_or_before(ms("2026-12-04T17:30:05+00:00")) == ms(
        "2026-12-04T17:30:05+00:00"
    )
    assert spec.latest_at_or_before(ms("2026-12-04T17:30:09.999+00:00")) == ms(
        "2026-12-04T17:30:05+00:00"
    )
    first = ms("2026-12-04T17:30:00+00:00")
    assert spec.count_between(first, first + 20_000) == 4
    assert spec.upcoming(first, 3) == [first, first + 5000, first + 10_000]
    assert ScheduleSpec(interval=2.5).interval_ms == 2500


def test_cron_fire_times() -> None:
    daily = ScheduleSpec(cron="30 17 * * *")
    at = ms("2026-12-04T17:30:00+00:00")
    assert daily.next_after(at - 500) == at
    assert daily.next_after(at) == ms("2026-12-05T17:30:00+00:00")
    assert daily.latest_at_or_before(at) == at
    assert daily.latest_at_or_before(ms("2026-12-05T17:29:59.999+00:00")) == at
    assert daily.count_between(at, ms("2026-12-07T17:30:00+00:00")) == 3
    assert daily.upcoming(at, 2) == [at, ms("2026-12-05T17:30:00+00:00")]
    # Six fields: seconds last.
    every_ten_seconds = ScheduleSpec(cron="* * * * * */10")
    assert every_ten_seconds.next_after(at + 1) == at + 10_000
    assert ScheduleSpec(cron="@hourly").next_after(at) == ms("2026-12-04T18:00:00+00:00")


def test_spec_validation() -> None:
    with pytest.raises(ConfigurationError, match="exactly one of cron and interval"):
        ScheduleSpec()
    with pytest.raises(ConfigurationError, match="exactly one of cron and interval"):
        ScheduleSpec(cron="* * * * *", interval=5)
    with pytest.raises(ConfigurationError, match="invalid cron expression 'every day'"):
        ScheduleSpec(cron="every day")
    with pytest.raises(ConfigurationError, match=r"invalid cron expression '61 \* \* \* \*'"):
        ScheduleSpec(cron="61 * * * *")
    with pytest.raises(ConfigurationError, match="at least 1 s"):
        ScheduleSpec(interval=0.5)
    with pytest.raises(ConfigurationError, match="timedelta or a number of seconds"):
        ScheduleSpec(interval="5")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="only the UTC timezone"):
        ScheduleSpec(cron="* * * * *", timezone="Europe/Paris")
    assert ScheduleSpec.from_dict(YEARLY.to_dict()) == YEARLY
    assert ScheduleSpec.from_dict(ScheduleSpec(interval=90).to_dict()) == ScheduleSpec(
        interval=timedelta(seconds=90)
    )


def test_catch_up_acts_once_on_the_latest_fire_time_due() -> None:
    every_ten = ScheduleSpec(interval=10)
    base = ms("2026-12-04T17:30:00+00:00")
    # On time: the one fire time due.
    assert plan_firing(every_ten, base, base + 5, 60_000) == FirePlan(base, 0, base + 10_000)
    # Down 35 s, within the window: only the latest fires, the three before are missed.
    assert plan_firing(every_ten, base, base + 35_000, 60_000) == FirePlan(
        base + 30_000, 3, base + 40_000
    )
    # The latest is older than the window: all four are missed, none fires.
    assert plan_firing(every_ten, base, base + 35_000, 4_000) == FirePlan(None, 4, base + 40_000)
    daily = ScheduleSpec(cron="0 9 * * *")
    day = ms("2026-12-04T09:00:00+00:00")
    three_days = 3 * 86_400_000
    assert plan_firing(daily, day, day + three_days + 30_000, 60_000) == FirePlan(
        day + three_days, 3, day + three_days + 86_400_000
    )


def test_workflow_ids_name_the_fire_time() -> None:
    at = ms("2026-12-04T17:30:00+00:00")
    assert workflow_id_for("report", at) == "report-2026-12-04T17:30:00Z"
    assert workflow_id_for("report", at + 250) == "report-2026-12-04T17:30:00.250Z"


# -- the client API ------------------------------------------------------------------


def test_create_list_describe_pause_unpause_delete(url: str) -> None:
    async def main() -> None:
        async with await Client.connect(url) as client:
            schedules = client.schedules
            await schedules.create("yearly", YEARLY, HELLO)
            action = ScheduleAction(
                defs.hello, task_queue="schedules", args=["x"], workflow_id_prefix="often-run"
            )
            await schedules.create(
                "often",
                ScheduleSpec(interval=60),
                action,
                overlap="allow_all",
                catchup_window=timedelta(minutes=5),
                paused=True,
                note="not yet",
            )
            with pytest.raises(ScheduleAlreadyExistsError, match="'yearly'"):
                await schedules.create("yearly", YEARLY, HELLO)

            listed = await schedules.list()
            assert [s.schedule_id for s in listed] == ["often", "yearly"]
            assert listed[0].paused and listed[0].next_fire_time is None
            next_year = datetime.now(UTC).year + 1
            assert listed[1].next_fire_time == datetime(next_year, 1, 1, tzinfo=UTC)
            assert listed[1].workflow_type == "Hello"

            yearly = await schedules.describe("yearly")
            assert yearly.spec == YEARLY
            assert yearly.action.workflow_type == "Hello"
            assert list(yearly.action.args) == ["sched"]
            assert yearly.action.workflow_id_prefix == "yearly"
            assert (yearly.overlap, yearly.catchup_window) == ("skip", timedelta(seconds=60))
            assert not yearly.paused
            assert [t.year for t in yearly.next_fire_times] == [next_year + i for i in range(5)]
            assert yearly.recent_actions == []
            assert (yearly.action_count, yearly.missed_count, yearly.skipped_count) == (0, 0, 0)

            often = await schedules.describe("often")
            assert (often.paused, often.note, often.next_fire_times) == (True, "not yet", [])
            assert often.overlap == "allow_all"
            assert often.catchup_window == timedelta(minutes=5)
            assert often.action.workflow_id_prefix == "often-run"

            await schedules.unpause("often", "go")
            often = await schedules.describe("often")
            assert (often.paused, often.note) == (False, "go")
            first = often.next_fire_times[0]
            assert first.second == 0 and first.microsecond == 0
            assert timedelta(0) < first - datetime.now(UTC) <= timedelta(seconds=61)

            await schedules.pause("yearly", "maintenance")
            yearly = await schedules.describe("yearly")
            assert (yearly.paused, yearly.note) == (True, "maintenance")

            await schedules.delete("yearly")
            assert [s.schedule_id for s in await schedules.list()] == ["often"]
            assert not await client.redis.exists(client.keys.schedule("yearly"))
            for call in (
                schedules.describe("yearly"),
                schedules.pause("yearly"),
                schedules.unpause("yearly"),
                schedules.trigger("yearly"),
                schedules.delete("yearly"),
            ):
                with pytest.raises(ScheduleNotFoundError, match="'yearly'"):
                    await call

    run(main())


def test_create_refuses_bad_arguments(url: str) -> None:
    async def main() -> None:
        async with await Client.connect(url) as client:
            schedules = client.schedules
            with pytest.raises(ConfigurationError, match="overlap must be one of"):
                await schedules.create("x", YEARLY, HELLO, overlap="sometimes")
            with pytest.raises(ConfigurationError, match="catchup_window must be positive"):
                await schedules.create("x", YEARLY, HELLO, catchup_window=0)
            with pytest.raises(ConfigurationError, match="schedule id"):
                await schedules.create("", YEARLY, HELLO)
            with pytest.raises(ConfigurationError, match="spec must be a ScheduleSpec"):
                await schedules.create("x", "* * * * *", HELLO)  # type: ignore[arg-type]
            with pytest.raises(ConfigurationError, match="task queue"):
                await schedules.create("x", YEARLY, ScheduleAction("Hello", task_queue=""))
            with pytest.raises(ConfigurationError, match="not a string"):
                await schedules.create(
                    "x", YEARLY, ScheduleAction("Hello", task_queue="q", args="abc")
                )
            with pytest.raises(SerializationError):
                await schedules.create(
                    "x", YEARLY, ScheduleAction("Hello", task_queue="q", args=[object()])
                )
            assert await schedules.list() == []

    run(main())


def test_trigger_starts_now_and_obeys_the_overlap_policy(url: str) -> None:
    async def main() -> None:
        async with await Client.connect(url) as client, running_worker(client, **OPTIONS):
            schedules = client.schedules
            await schedules.create("manual", YEARLY, gated("trig"), paused=True)
            # A paused schedule can still be triggered.
            first = await schedules.trigger("manual")
            assert first is not None and first.id.startswith("manual-")
            await eventually(lambda: client.redis.get("started:trig"))
            assert await schedules.trigger("manual") is None  # skipped: the first runs
            described = await schedules.describe("manual")
            assert (described.action_count, described.skipped_count) == (1, 1)
            assert [a.workflow_id for a in described.recent_actions] == [first.id]

            await client.redis.set("gate:trig", "1")
            await first.result(timeout=20)
            second = await schedules.trigger("manual")
            assert second is not None and second.id != first.id
            assert await second.result(timeout=20) == [
                "Hello first!",
                "gate trig opened",
                "Hello last!",
            ]

    run(main())


# -- firing: exactly once, overlap, catch-up, recovery -------------------------------


def test_two_workers_fire_each_instant_exactly_once(url: str) -> None:
    async def main() -> None:
        async with (
            await Client.connect(url) as client,
            await Client.connect(url) as other,
            running_worker(client, **OPTIONS),
            running_worker(other, **OPTIONS),
        ):
            await client.schedules.create("tick", EVERY_SECOND, HELLO, overlap="allow_all")

            async def fired_four() -> bool:
                return (await client.schedules.describe("tick")).action_count >= 4

            await eventually(fired_four)
            await client.schedules.pause("tick")
            await eventually(lambda: settled(client, "tick"))
            described = await client.schedules.describe("tick")
            for action in described.recent_actions:
                handle = client.get_workflow_handle(action.workflow_id)
                assert await handle.result(timeout=20) == "Hello sched!"

        actions = sorted(described.recent_actions, key=lambda a: a.fire_time)
        assert len(actions) == described.action_count
        assert len({a.workflow_id for a in actions}) == len(actions)
        gaps = {b.fire_time - a.fire_time for a, b in itertools.pairwise(actions)}
        assert gaps == {SECOND}
        assert described.missed_count == 0
        # One run per firing: a double start would have run Greet twice.
        assert int(await client.redis.get("count:Greet")) == len(actions)

    run(main())


def test_drivers_racing_on_one_fire_time_start_one_workflow(url: str) -> None:
    async def main() -> None:
        async with await Client.connect(url) as client:
            await client.schedules.create("race", EVERY_SECOND, HELLO)

            async def due() -> bool:
                state = await _load(client, "race")
                return state is not None and state.next_fire <= await server_now(client)

            await eventually(due)
            now = await server_now(client)
            # Straight to the compare-and-set, past the claim that would keep all but one out.
            drivers = [ScheduleDriver(client) for _ in range(5)]
            await asyncio.gather(*(d._drive("race", now) for d in drivers))
            described = await client.schedules.describe("race")
            assert described.action_count == 1
            (action,) = described.recent_actions
            assert await run_hashes(client) == 1
            pointer = await client.redis.hgetall(client.keys.workflow(action.workflow_id))
            assert pointer["run_id"] == action.run_id

    run(main())


def test_overlap_skip_and_allow_all(url: str) -> None:
    async def main() -> None:
        async with await Client.connect(url) as client, running_worker(client, **OPTIONS):
            schedules = client.schedules
            await schedules.create("skip", EVERY_SECOND, gated("ov-skip"))
            await schedules.create("all", EVERY_SECOND, gated("ov-all"), overlap="allow_all")

            async def all_fired_thrice() -> bool:
                return (await schedules.describe("all")).action_count >= 3

            await eventually(all_fired_thrice)
            skip = await schedules.describe("skip")
            assert skip.action_count == 1
            assert skip.skipped_count >= 1
            every = await schedules.describe("all")
            assert every.skipped_count == 0
            statuses = [
                (await client.get_workflow_handle(a.workflow_id).describe()).status
                for a in every.recent_actions
            ]
            assert statuses.count("RUNNING") >= 3

            for schedule_id in ("skip", "all"):
                await schedules.pause(schedule_id)
                await eventually(lambda s=schedule_id: settled(client, s))
            await client.redis.set("gate:ov-skip", "1")
            await client.redis.set("gate:ov-all", "1")
            for schedule_id in ("skip", "all"):
                for action in (await schedules.describe(schedule_id)).recent_actions:
                    await client.get_workflow_handle(action.workflow_id).result(timeout=20)

    run(main())


def test_overlap_buffer_one_starts_the_buffered_firing_when_the_run_closes(url: str) -> None:
    async def main() -> None:
        async with await Client.connect(url) as client, running_worker(client, **OPTIONS):
            schedules = client.schedules
            await schedules.create("buf", EVERY_SECOND, gated("ov-buf"), overlap="buffer_one")

            async def one_buffered_one_dropped() -> bool:
                return (await schedules.describe("buf")).skipped_count >= 1

            await eventually(one_buffered_one_dropped)
            described = await schedules.describe("buf")
            assert described.action_count == 1
            (first,) = described.recent_actions
            assert described.buffered_fire_time == first.fire_time + SECOND

            await client.redis.set("gate:ov-buf", "1")

            async def fired_twice() -> bool:
                return (await schedules.describe("buf")).action_count >= 2

            await eventually(fired_twice)
            await schedules.pause("buf")
            await eventually(lambda: settled(client, "buf"))
            described = await schedules.describe("buf")
            actions = sorted(described.recent_actions, key=lambda a: a.fire_time)
            assert actions[0] == first
            assert actions[1].fire_time == first.fire_time + SECOND  # the buffered one
            for action in actions:
                await client.get_workflow_handle(action.workflow_id).result(timeout=20)

    run(main())


def test_catch_up_after_downtime_fires_once_late(url: str) -> None:
    async def main() -> None:
        async with await Client.connect(url) as client:
            schedules = client.schedules
            await schedules.create("late", EVERY_SECOND, HELLO, overlap="allow_all")
            first_due = (await schedules.describe("late")).next_fire_times[0]
            await asyncio.sleep(3.3)  # no worker: three or four fire times pass
            worker_start = await server_now(client)
            async with running_worker(client, **OPTIONS):

                async def fired_thrice() -> bool:
                    return (await schedules.describe("late")).action_count >= 3

                await eventually(fired_thrice)
                await schedules.pause("late")
                await eventually(lambda: settled(client, "late"))
                described = await schedules.describe("late")
                for action in described.recent_actions:
                    await client.get_workflow_handle(action.workflow_id).result(timeout=20)

        actions = sorted(described.recent_actions, key=lambda a: a.fire_time)
        start = datetime.fromtimestamp(worker_start / 1000, tz=UTC)
        assert len([a for a in actions if a.fire_time < start]) <= 1
        assert actions[0].fire_time >= start - SECOND  # no run for the oldest fire times
        # Every fire time before the first run was counted as missed, and none after.
        assert described.missed_count == (actions[0].fire_time - first_due) // SECOND
        assert described.missed_count >= 2
        gaps = {b.fire_time - a.fire_time for a, b in itertools.pairwise(actions)}
        assert gaps == {SECOND}

    run(main())


class _Died(BaseException):
    """The driver's process ends here."""


class _DiesAfterAdvancing(ScheduleDriver):
    """A driver whose process dies after recording a firing, before starting its workflow."""

    async def _complete(self, state: _State, workflow_id: str, fire_time: int) -> float:
        raise _Died


def test_a_driver_dying_mid_firing_is_completed_by_the_next_without_duplicate(url: str) -> None:
    async def main() -> None:
        async with await Client.connect(url) as client:
            schedules, k = client.schedules, client.keys
            await schedules.create("dies", EVERY_SECOND, HELLO)
            dying = _DiesAfterAdvancing(client)

            async def died() -> bool:
                try:
                    await dying.run_once()
                except _Died:
                    return True
                return False

            await eventually(died)
            # The firing is recorded as pending; no workflow was started.
            state = await _load(client, "dies")
            assert state is not None and state.pending
            workflow_id, fire_time = state.pending, state.pending_fire
            assert workflow_id == workflow_id_for("dies", fire_time)
            assert not await client.redis.exists(k.workflow(workflow_id))
            await schedules.pause("dies")  # no new firings; the pending start must still happen

            survivor = ScheduleDriver(client)

            async def completed() -> bool:
                await survivor.run_once()
                return await settled(client, "dies")

            await eventually(completed)
            described = await schedules.describe("dies")
            assert described.action_count == 1
            assert [a.workflow_id for a in described.recent_actions] == [workflow_id]
            run_id = await client.redis.hget(k.workflow(workflow_id), "run_id")
            assert run_id == described.recent_actions[0].run_id

            # The dead driver's start, repeated late, while the run is open and once it closed:
            # it neither starts a second run nor records a second action.
            late = ScheduleDriver(client)
            await late._complete(state, workflow_id, fire_time)
            async with running_worker(client, **OPTIONS):
                handle = client.get_workflow_handle(workflow_id)
                assert await handle.result(timeout=20) == "Hello sched!"
            await late._complete(state, workflow_id, fire_time)
            assert await client.redis.hget(k.workflow(workflow_id), "run_id") == run_id
            assert await run_hashes(client) == 1
            assert (await schedules.describe("dies")).action_count == 1

    run(main())


def test_worker_without_schedules_does_not_fire_them(url: str) -> None:
    async def main() -> None:
        async with await Client.connect(url) as client:
            await client.schedules.create("idle", EVERY_SECOND, HELLO)
            async with running_worker(client, drive_schedules=False, **OPTIONS):
                await asyncio.sleep(1.5)
            assert (await client.schedules.describe("idle")).action_count == 0

    run(main())
