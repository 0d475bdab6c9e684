"""``orchestrator schedule ...``: create, inspect, pause and remove schedules."""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
from typing import Annotated, Any

import typer

from ..client import Client
from ..schedule_spec import ScheduleSpec
from ..schedules import (
    DEFAULT_CATCHUP_WINDOW,
    ScheduleAction,
    ScheduleDescription,
    ScheduleSummary,
)
from .options import (
    InputFiles,
    Inputs,
    Namespace,
    Output,
    OutputFormat,
    RedisUrl,
    format_duration,
    parse_duration,
    parse_inputs,
)
from .render import json_text, local_time, print_fields, print_json, print_table
from .reporting import run

schedule_app = typer.Typer(
    help="Start workflows on a cron expression or an interval.", no_args_is_help=True
)

ScheduleId = Annotated[str, typer.Option("--schedule-id", "-s", help="Schedule id.")]
Note = Annotated[str, typer.Option("--note", "--reason", help="Why, kept with the schedule.")]


class Overlap(StrEnum):
    """What a firing does while the schedule's last workflow still runs."""

    SKIP = "skip"
    BUFFER_ONE = "buffer_one"
    ALLOW_ALL = "allow_all"


def spec_text(spec: ScheduleSpec) -> str:
    if spec.cron is not None:
        return f"cron {spec.cron}"
    return f"every {format_duration(timedelta(milliseconds=spec.interval_ms))}"


def _spec_dict(spec: ScheduleSpec) -> dict[str, Any]:
    return {"cron": spec.cron, "interval_seconds": spec.interval_ms / 1000 or None}


@schedule_app.command("create")
def schedule_create(
    schedule_id: ScheduleId,
    workflow_type: Annotated[str, typer.Option("--type", "-t", help="Workflow type to start.")],
    task_queue: Annotated[str, typer.Option("--task-queue", "-q", help="Its task queue.")],
    cron: Annotated[
        str | None,
        typer.Option(help="Cron expression, UTC: '30 2 * * *', '@hourly'.", show_default=False),
    ] = None,
    interval: Annotated[
        str | None,
        typer.Option(help="Fixed interval instead of cron: 30s, 5m, 1h.", show_default=False),
    ] = None,
    workflow_id: Annotated[
        str | None,
        typer.Option(
            "--workflow-id",
            "-w",
            help="Prefix of the started workflows' ids (default: the schedule id).",
            show_default=False,
        ),
    ] = None,
    inputs: Inputs = None,
    input_files: InputFiles = None,
    overlap_policy: Annotated[
        Overlap, typer.Option(help="While the last workflow still runs.", case_sensitive=False)
    ] = Overlap.SKIP,
    catchup_window: Annotated[
        str,
        typer.Option(help="How late a firing may still happen after downtime."),
    ] = format_duration(timedelta(seconds=DEFAULT_CATCHUP_WINDOW)),
    paused: Annotated[bool, typer.Option("--paused", help="Create it paused.")] = False,
    note: Annotated[str, typer.Option("--note", help="A note kept with the schedule.")] = "",
    url: RedisUrl = None,
    namespace: Namespace = "default",
) -> None:
    """Create a schedule that starts a workflow on a cron expression or at an interval."""

    async def main() -> None:
        spec = ScheduleSpec(
            cron=cron, interval=None if interval is None else parse_duration(interval, "--interval")
        )
        action = ScheduleAction(
            workflow_type, task_queue, parse_inputs(inputs, input_files), workflow_id
        )
        window = parse_duration(catchup_window, "--catchup-window")
        async with await Client.connect(url, namespace=namespace) as client:
            await client.schedules.create(
                schedule_id,
                spec,
                action,
                overlap=overlap_policy.value,
                catchup_window=window,
                paused=paused,
                note=note,
            )
        typer.echo(f"Schedule {schedule_id} created ({spec_text(spec)})")

    run(main())


@schedule_app.command("list")
def schedule_list(
    output: OutputFormat = Output.TABLE,
    url: RedisUrl = None,
    namespace: Namespace = "default",
) -> None:
    """List the namespace's schedules."""

    async def main() -> list[ScheduleSummary]:
        async with await Client.connect(url, namespace=namespace) as client:
            return await client.schedules.list()

    summaries = run(main())
    if output is Output.JSON:
        print_json([_summary_dict(s) for s in summaries])
        return
    print_table(
        ["Schedule Id", "Spec", "Workflow Type", "State", "Next Fire Time"],
        [
            (
                s.schedule_id,
                spec_text(s.spec),
                s.workflow_type,
                "paused" if s.paused else "active",
                local_time(s.next_fire_time),
            )
            for s in summaries
        ],
    )


def _summary_dict(summary: ScheduleSummary) -> dict[str, Any]:
    return {
        "schedule_id": summary.schedule_id,
        "spec": _spec_dict(summary.spec),
        "workflow_type": summary.workflow_type,
        "paused": summary.paused,
        "next_fire_time": summary.next_fire_time,
    }


@schedule_app.command("describe")
def schedule_describe(
    schedule_id: ScheduleId,
    output: OutputFormat = Output.TABLE,
    url: RedisUrl = None,
    namespace: Namespace = "default",
) -> None:
    """Show a schedule: its spec and action, its state, its next and latest runs."""

    async def main() -> ScheduleDescription:
        async with await Client.connect(url, namespace=namespace) as client:
            return await client.schedules.describe(schedule_id)

    d = run(main())
    if output is Output.JSON:
        print_json(_description_dict(d))
        return
    print_fields(
        [
            ("Schedule Id", d.schedule_id),
            ("Spec", spec_text(d.spec)),
            ("Workflow Type", d.action.workflow_type),
            ("Task Queue", d.action.task_queue),
            ("Arguments", json_text(list(d.action.args))),
            ("Workflow Id Prefix", d.action.workflow_id_prefix),
            ("Overlap Policy", d.overlap),
            ("Catch-up Window", format_duration(d.catchup_window)),
            ("State", "paused" if d.paused else "active"),
            ("Note", d.note),
            ("Created", local_time(d.created_at)),
            ("Actions", d.action_count),
            ("Missed", d.missed_count),
            ("Skipped", d.skipped_count),
            ("Buffered", local_time(d.buffered_fire_time) if d.buffered_fire_time else None),
            ("Next Fire Times", "\n".join(map(local_time, d.next_fire_times))),
        ]
    )
    if d.recent_actions:
        print_table(
            ["Fire Time", "Workflow Id", "Run Id"],
            [(local_time(a.fire_time), a.workflow_id, a.run_id) for a in d.recent_actions],
            title="Recent actions",
        )


def _description_dict(d: ScheduleDescription) -> dict[str, Any]:
    return {
        "schedule_id": d.schedule_id,
        "spec": _spec_dict(d.spec),
        "action": d.action.to_dict(d.schedule_id),
        "overlap": d.overlap,
        "catchup_window_seconds": d.catchup_window.total_seconds(),
        "paused": d.paused,
        "note": d.note,
        "created_at": d.created_at,
        "next_fire_times": d.next_fire_times,
        "recent_actions": [
            {"fire_time": a.fire_time, "workflow_id": a.workflow_id, "run_id": a.run_id}
            for a in d.recent_actions
        ],
        "action_count": d.action_count,
        "missed_count": d.missed_count,
        "skipped_count": d.skipped_count,
        "buffered_fire_time": d.buffered_fire_time,
    }


def _update(verb: str, schedule_id: str, url: str | None, namespace: str, note: str = "") -> None:
    async def main() -> None:
        async with await Client.connect(url, namespace=namespace) as client:
            schedules = client.schedules
            if verb == "pause":
                await schedules.pause(schedule_id, note)
            elif verb == "unpause":
                await schedules.unpause(schedule_id, note)
            else:
                await schedules.delete(schedule_id)

    run(main())
    typer.echo(f"Schedule {schedule_id} {verb}d")


@schedule_app.command("pause")
def schedule_pause(
    schedule_id: ScheduleId,
    note: Note = "",
    url: RedisUrl = None,
    namespace: Namespace = "default",
) -> None:
    """Stop a schedule from firing until it is unpaused."""
    _update("pause", schedule_id, url, namespace, note)


@schedule_app.command("unpause")
def schedule_unpause(
    schedule_id: ScheduleId,
    note: Note = "",
    url: RedisUrl = None,
    namespace: Namespace = "default",
) -> None:
    """Let a paused schedule fire again, from its next fire time on."""
    _update("unpause", schedule_id, url, namespace, note)


@schedule_app.command("delete")
def schedule_delete(
    schedule_id: ScheduleId,
    url: RedisUrl = None,
    namespace: Namespace = "default",
) -> None:
    """Remove a schedule; the workflows it started are left alone."""
    _update("delete", schedule_id, url, namespace)


@schedule_app.command("trigger")
def schedule_trigger(
    schedule_id: ScheduleId,
    output: OutputFormat = Output.TABLE,
    url: RedisUrl = None,
    namespace: Namespace = "default",
) -> None:
    """Fire a schedule now, whatever its spec says; its overlap policy still applies."""

    async def main() -> str | None:
        async with await Client.connect(url, namespace=namespace) as client:
            handle = await client.schedules.trigger(schedule_id)
        return None if handle is None else handle.id

    workflow_id = run(main())
    if output is Output.JSON:
        print_json({"schedule_id": schedule_id, "workflow_id": workflow_id})
    elif workflow_id is None:
        typer.echo(
            f"Schedule {schedule_id} triggered; its overlap policy skipped or buffered the "
            "firing, since its last workflow is still running"
        )
    else:
        typer.echo(f"Schedule {schedule_id} triggered: started workflow {workflow_id}")
