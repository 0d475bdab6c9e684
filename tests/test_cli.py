"""The command line: each verb's normal output (table and JSON) and its errors, through Typer's
runner against the suite's real Redis. Commands that run until stopped (``server start-dev``,
``worker run``) run as processes and are stopped with a signal, as a person would.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from typer.testing import CliRunner

from orchestrator import Client
from orchestrator.cli import app
from orchestrator.cli.loading import WORKER_OPTIONS
from orchestrator.cli.options import format_duration, parse_duration
from orchestrator.cli.worker import plan_worker
from orchestrator.cli.workflow import ConflictPolicy, ReusePolicy
from orchestrator.client import CONFLICT_POLICIES, REUSE_POLICIES
from orchestrator.devserver import free_port
from orchestrator.errors import ConfigurationError
from orchestrator.keys import CONSUMER_GROUP, Keys

import defs
from helpers import eventually, run, running_worker

TESTS = Path(__file__).resolve().parent
runner = CliRunner()


def invoke(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), input=stdin)
    return result.exit_code, result.stdout, result.stderr


async def ainvoke(*args: str) -> tuple[int, str, str]:
    """``invoke`` from a test's event loop, which keeps serving the worker meanwhile."""
    return await asyncio.to_thread(invoke, *args)


def assert_one_line_error(err: str, message: str = "") -> None:
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    assert message in err


def events_in(out: str) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in out.splitlines()]


@pytest.fixture
def tokyo_time(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The local zone is Asia/Tokyo (no daylight saving: always JST) for the test."""
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


WORKER = dict(task_queue="cli", workflows=defs.ALL_WORKFLOWS, activities=defs.ALL_ACTIVITIES)


# -- workflow verbs ----------------------------------------------------------------------------


def test_start_describe_signal_show_terminate(url: str) -> None:
    code, out, _ = invoke(
        "workflow", "start", "-t", "Approval", "-w", "cli", "-q", "cli", "-i", "2"
    )
    assert code == 0 and out.startswith("Started workflow cli run ")
    code, out, _ = invoke("workflow", "signal", "-w", "cli", "--name", "approve", "-i", '"ann"')
    assert code == 0 and "Signal approve sent to workflow cli" in out

    code, out, _ = invoke("workflow", "describe", "-w", "cli")
    assert code == 0
    for label, value in [("Type", "Approval"), ("Task Queue", "cli"), ("Status", "RUNNING")]:
        assert any(line.split() == [*label.split(), value] for line in out.splitlines()), out
    assert "WorkflowExecutionSignaled" in out  # the latest event
    code, out, _ = invoke("workflow", "describe", "-w", "cli", "-o", "json")
    described = orjson.loads(out)
    assert described["status"] == "RUNNING" and described["history_length"] == 2
    assert described["last_event"]["attrs"] == {"name": "approve", "input": ["ann"]}

    code, out, _ = invoke("workflow", "terminate", "-w", "cli", "--reason", "done testing")
    assert code == 0 and "Workflow cli terminated" in out
    code, out, _ = invoke("workflow", "show", "-w", "cli")
    rows = [line.split() for line in out.splitlines()[1:]]
    assert [row[0] for row in rows] == ["1", "2", "3"]
    assert rows[-1][4:6] == ["WorkflowExecutionTerminated", 'reason="done']
    code, out, _ = invoke("workflow", "show", "-w", "cli", "-o", "json")
    events = orjson.loads(out)["events"]
    assert [e["type"] for e in events][-1] == "WorkflowExecutionTerminated"

    code, _, err = invoke("workflow", "terminate", "-w", "cli")
    assert code == 1
    assert_one_line_error(err, "already closed")


def test_times_are_local_with_the_zone_in_tables_and_utc_in_json(
    url: str, tokyo_time: None
) -> None:
    invoke("workflow", "start", "-t", "Hello", "-w", "tz", "-q", "nobody")
    _, out, _ = invoke("workflow", "describe", "-w", "tz")
    start_line = next(line for line in out.splitlines() if line.startswith("Start Time"))
    assert start_line.split()[-1] == "JST"
    _, out, _ = invoke("workflow", "describe", "-w", "tz", "-o", "json")
    start = orjson.loads(out)["start_time"]
    assert start.endswith("+00:00")
    # The table's local time is the JSON's UTC time, nine hours later.
    utc_hour = int(start[11:13])
    assert int(start_line.split()[-2][:2]) == (utc_hour + 9) % 24


def test_inputs_repeat_come_from_files_and_stdin(url: str, tmp_path: Path) -> None:
    invoke("workflow", "start", "-t", "T", "-w", "two", "-q", "q", "-i", "1", "-i", '{"b": [2]}')
    first, second = tmp_path / "first.json", tmp_path / "second.json"
    first.write_text('"from a file"')
    second.write_text("[1, 2]")
    invoke("workflow", "start", "-t", "T", "-w", "files", "-q", "q")
    invoke("workflow", "terminate", "-w", "files")
    code, _, err = invoke(
        "workflow", "start", "-t", "T", "-w", "files", "-q", "q",
        "--input-file", str(first), "--input-file", str(second),
    )  # fmt: skip
    assert code == 0, err
    code, _, err = invoke(
        "workflow", "start", "-t", "T", "-w", "stdin", "-q", "q", "--input-file", "-",
        stdin='{"piped": true}',
    )  # fmt: skip
    assert code == 0, err

    def started_input(workflow_id: str) -> list[Any]:
        _, out, _ = invoke("workflow", "show", "-w", workflow_id, "-o", "json")
        return orjson.loads(out)["events"][0]["attrs"]["input"]

    assert started_input("two") == [1, {"b": [2]}]
    assert started_input("files") == ["from a file", [1, 2]]
    assert started_input("stdin") == [{"piped": True}]

    code, _, err = invoke("workflow", "start", "-t", "T", "-q", "q", "-i", "1", "-i", "{nope")
    assert code == 1
    assert_one_line_error(err, "--input #2 is not valid JSON")
    code, _, err = invoke(
        "workflow", "start", "-t", "T", "-q", "q", "-i", "1", "--input-file", str(first)
    )
    assert_one_line_error(err, "not both")
    code, _, err = invoke("workflow", "start", "-t", "T", "-q", "q", "--input-file", "missing")
    assert code == 1
    assert_one_line_error(err, "cannot read input file missing")


def test_start_json_and_a_new_uuid_when_no_id_is_given(url: str) -> None:
    code, out, _ = invoke("workflow", "start", "-t", "Hello", "-q", "nobody", "-o", "json")
    started = orjson.loads(out)
    assert code == 0 and len(started["workflow_id"]) == 36 and started["run_id"]
    code, _, err = invoke(
        "workflow", "start", "-t", "Hello", "-q", "nobody", "-w", started["workflow_id"]
    )
    assert code == 1
    assert_one_line_error(err, "already started")
    code, out, _ = invoke(
        "workflow", "start", "-t", "Hello", "-q", "nobody", "-w", started["workflow_id"],
        "--id-conflict-policy", "use_existing", "-o", "json",
    )  # fmt: skip
    assert code == 0 and orjson.loads(out)["run_id"] == started["run_id"]


def test_execute_shows_progress_then_prints_the_result(url: str) -> None:
    async def main() -> None:
        async with await Client.connect(url) as client, running_worker(client, **WORKER):
            code, out, err = await ainvoke(
                "workflow", "execute", "-t", "Sleeper", "-q", "cli", "-w", "ex", "-i", "0.5"
            )
            assert code == 0, err
            assert [" ".join(line.split()) for line in out.splitlines()] == [
                "Workflow Id ex",
                "Status COMPLETED",
                'Result "Hello after sleep!"',
            ]
            # stderr: what was started, then the run's steps as they happen, with the time.
            assert err.startswith("Started workflow ex run ")
            steps = err.splitlines()[1:]
            assert all(line.startswith("[") and " s] " in line for line in steps), err
            assert any("TimerStarted (fires at " in line for line in steps), err

            code, out, err = await ainvoke(
                "workflow", "execute", "-t", "Hello", "-q", "cli", "-i", '"JSON"', "-o", "json"
            )
            assert code == 0 and orjson.loads(out) == "Hello JSON!"

            code, out, _ = await ainvoke(
                "workflow", "start", "-t", "Hello", "-q", "cli", "-w", "w", "-i", '"W"', "--wait"
            )
            assert code == 0 and '"Hello W!"' in out
            code, out, _ = await ainvoke("workflow", "result", "-w", "w", "-o", "json")
            assert orjson.loads(out) == "Hello W!"
            code, out, _ = await ainvoke("workflow", "result", "-w", "w")
            assert "COMPLETED" in out and '"Hello W!"' in out

            code, out, err = await ainvoke(
                "workflow", "execute", "-t", "Unhandled", "-q", "cli", "-w", "bad", "-i", '"boom"'
            )
            assert code == 1 and out == ""
            # The progress lines, then the error as the last line.
            assert err.splitlines()[-1] == "error: workflow 'bad' failed: RuntimeError: boom"

    run(main())


def test_query_cancel_and_no_worker_for_a_query(url: str) -> None:
    async def main() -> None:
        async with await Client.connect(url) as client:
            await client.start_workflow("Approval", 3, id="lonely", task_queue="nobody")
            code, _, err = await ainvoke(
                "workflow", "query", "-w", "lonely", "--name", "received", "--timeout", "0.3"
            )
            assert code == 1
            assert_one_line_error(err, "no worker answered query 'received'")

            async with running_worker(client, **WORKER):
                await client.start_workflow("Approval", 2, id="q", task_queue="cli")
                await ainvoke("workflow", "signal", "-w", "q", "--name", "approve", "-i", '"a"')
                code, out, err = await ainvoke("workflow", "query", "-w", "q", "--name", "received")
                assert code == 0, err
                assert "Query" in out and '["a"]' in out
                code, out, _ = await ainvoke(
                    "workflow", "query", "-w", "q", "--name", "count_with", "-i", "10", "-o", "json"
                )
                assert orjson.loads(out) == 11

                code, out, _ = await ainvoke("workflow", "cancel", "-w", "q", "--reason", "enough")
                assert code == 0 and "Cancellation requested for workflow q" in out
                handle = client.get_workflow_handle("q")
                await eventually(lambda: _status_is(handle, "CANCELED"))
                code, _, err = await ainvoke("workflow", "result", "-w", "q")
                assert code == 1
                assert_one_line_error(err, "workflow 'q' canceled")

    run(main())


async def _status_is(handle: Any, status: str) -> bool:
    return (await handle.describe()).status == status


def test_show_follow_streams_events_until_the_run_closes(url: str) -> None:
    async def follow_while_acting(output: str) -> str:
        """Follow a run in a thread while this loop signals and then terminates it."""
        async with await Client.connect(url) as client:
            handle = await client.start_workflow("Approval", 5, task_queue="nobody", id=output)
            following = asyncio.create_task(
                ainvoke("workflow", "show", "-w", output, "--follow", "-o", output)
            )
            await asyncio.sleep(0.3)
            assert not following.done()  # still following the open run
            await handle.signal("approve", "late")
            await asyncio.sleep(0.2)
            await handle.terminate("stop following")
            code, out, err = await asyncio.wait_for(following, 10)
            assert code == 0, err
            return out

    # One at a time: Typer's runner swaps sys.stdout, so two at once would mix their output.
    out = run(follow_while_acting("table"))
    rows = [line.split() for line in out.splitlines()[1:] if line.strip()]
    assert [(row[0], row[4]) for row in rows] == [
        ("1", "WorkflowExecutionStarted"),
        ("2", "WorkflowExecutionSignaled"),
        ("3", "WorkflowExecutionTerminated"),
    ]
    out = run(follow_while_acting("json"))
    assert [(e["id"], e["type"]) for e in events_in(out)][1:] == [
        (2, "WorkflowExecutionSignaled"),
        (3, "WorkflowExecutionTerminated"),
    ]
    # A closed run: its history, and the command ends at once.
    code, out, _ = invoke("workflow", "show", "-w", "json", "-f", "-o", "json")
    assert code == 0 and len(events_in(out)) == 3


# -- workflow replay ---------------------------------------------------------------------------

CHANGED_HELLO = """
from orchestrator import activity, workflow

@activity.defn(name="Shout")
def shout(name: str) -> str:
    return name.upper()

@workflow.defn(name="Hello")
async def hello(name: str) -> str:
    return await workflow.execute_activity(shout, name, start_to_close_timeout=10)
"""


def test_replay_passes_for_the_same_code_and_fails_for_changed_code(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def main() -> None:
        async with await Client.connect(url) as client, running_worker(client, **WORKER):
            await client.execute_workflow("Hello", "R", id="replay-me", task_queue="cli")

    run(main())
    history_file = tmp_path / "history.json"
    _, out, _ = invoke("workflow", "show", "-w", "replay-me", "-o", "json")
    history_file.write_text(out)
    changed = tmp_path / "changed_hello.py"
    changed.write_text(CHANGED_HELLO)
    monkeypatch.chdir(TESTS)  # `defs` is found in the current directory, as `python -m` would

    code, out, err = invoke("workflow", "replay", str(history_file), "--workflows", "defs")
    assert code == 0 and err == ""
    assert "replay-me" in out and "replayed" in out

    code, out, err = invoke("workflow", "replay", str(history_file), "--workflows", str(changed))
    assert code == 1 and "NON-DETERMINISTIC" in out
    assert_one_line_error(err, "ActivityTaskScheduled(seq=1, activity_type='Greet')")
    assert "'Shout'" in err

    code, out, _ = invoke(
        "workflow", "replay", str(history_file), "--workflows", f"{changed}:hello", "-o", "json"
    )
    (outcome,) = orjson.loads(out)
    assert code == 1 and outcome["ok"] is False and "Shout" in outcome["error"]

    code, _, err = invoke("workflow", "replay", str(changed), "--workflows", "defs")
    assert code == 1
    assert_one_line_error(err, "history is not valid JSON")
    code, _, err = invoke("workflow", "replay", str(history_file), "--workflows", "defs:greet")
    assert code == 1
    assert_one_line_error(err, "names no workflows")


# -- schedules ---------------------------------------------------------------------------------


def test_schedule_verbs(url: str) -> None:
    code, out, err = invoke(
        "schedule", "create", "-s", "every", "-t", "Hello", "-q", "nobody",
        "--interval", "1h", "-i", '"sched"', "--overlap-policy", "allow_all",
    )  # fmt: skip
    assert code == 0 and "Schedule every created (every 1h)" in out, err
    code, out, _ = invoke(
        "schedule", "create", "-s", "nightly", "-t", "Report", "-q", "nobody",
        "--cron", "30 2 * * *", "--paused", "--note", "not yet",
    )  # fmt: skip
    assert code == 0

    code, out, _ = invoke("schedule", "list")
    rows = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    assert "every 1h" in rows["every"] and "active" in rows["every"]
    assert "cron 30 2 * * *" in rows["nightly"] and "paused" in rows["nightly"]
    _, out, _ = invoke("schedule", "list", "-o", "json")
    listed = {s["schedule_id"]: s for s in orjson.loads(out)}
    assert listed["every"]["spec"] == {"cron": None, "interval_seconds": 3600.0}
    assert listed["nightly"]["next_fire_time"] is None

    code, out, _ = invoke("schedule", "trigger", "-s", "every")
    assert code == 0 and "started workflow every-" in out
    code, out, _ = invoke("schedule", "trigger", "-s", "every", "-o", "json")
    triggered = orjson.loads(out)["workflow_id"]
    assert triggered.startswith("every-")

    code, out, _ = invoke("schedule", "describe", "-s", "every")
    assert "Overlap Policy" in out and "allow_all" in out and '["sched"]' in out
    assert "Recent actions" in out and triggered in out
    _, out, _ = invoke("schedule", "describe", "-s", "every", "-o", "json")
    described = orjson.loads(out)
    assert described["action_count"] == 2 and len(described["next_fire_times"]) == 5
    assert described["recent_actions"][0]["workflow_id"] == triggered

    assert invoke("schedule", "pause", "-s", "every", "--reason", "upkeep")[1].strip() == (
        "Schedule every paused"
    )
    _, out, _ = invoke("schedule", "describe", "-s", "every", "-o", "json")
    assert orjson.loads(out)["paused"] is True and orjson.loads(out)["note"] == "upkeep"
    assert invoke("schedule", "unpause", "-s", "nightly")[0] == 0
    _, out, _ = invoke("schedule", "describe", "-s", "nightly", "-o", "json")
    assert orjson.loads(out)["paused"] is False

    assert invoke("schedule", "delete", "-s", "every")[1].strip() == "Schedule every deleted"
    code, _, err = invoke("schedule", "describe", "-s", "every")
    assert code == 1
    assert_one_line_error(err, "schedule 'every' not found")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ([], "exactly one of cron and interval"),
        (["--cron", "* * * * *", "--interval", "5s"], "exactly one of cron and interval"),
        (["--interval", "5 parsecs"], "--interval must be a duration"),
        (["--cron", "bogus"], "invalid cron expression"),
        (["--interval", "1m", "--catchup-window", "0s"], "catchup_window must be positive"),
    ],
)
def test_schedule_create_errors(url: str, options: list[str], message: str) -> None:
    code, _, err = invoke("schedule", "create", "-s", "x", "-t", "T", "-q", "q", *options)
    assert code == 1
    assert_one_line_error(err, message)


# -- task queues -------------------------------------------------------------------------------


def test_task_queue_describe(url: str) -> None:
    keys = Keys()
    r = redis.Redis.from_url(url, decode_responses=True)
    workflow_stream, activity_stream = keys.workflow_tasks("tq", 0), keys.activity_tasks("tq", 0)
    # Three workflow tasks queued, one of them read by worker-a but not started yet; one
    # activity task that worker-b read and started (which acknowledges and deletes it).
    for n in range(3):
        r.xadd(workflow_stream, {"w": f"wf-{n}", "r": "run"})
    r.xgroup_create(workflow_stream, CONSUMER_GROUP, id="0")
    r.xgroup_create(activity_stream, CONSUMER_GROUP, id="0", mkstream=True)
    r.xreadgroup(CONSUMER_GROUP, "worker-a", {workflow_stream: ">"}, count=1)
    r.xadd(activity_stream, {"w": "wf-0", "r": "run"})
    [[_, [(started, _)]]] = r.xreadgroup(CONSUMER_GROUP, "worker-b", {activity_stream: ">"})
    r.xack(activity_stream, CONSUMER_GROUP, started)
    r.xdel(activity_stream, started)
    r.close()

    code, out, err = invoke("task-queue", "describe", "tq")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[2].split() == ["Backlog", "3"] and lines[3].split() == ["Pending", "1"]
    row = next(line.split() for line in lines if line.split()[:2] == ["0", "workflow"])
    assert row[2:6] == ["3", "2", "1", "1"]  # backlog, lag, pending, consumers
    assert any(line.split() == ["0", "workflow", "worker-a", "1"] for line in lines)
    workers_table = lines[lines.index(_title(lines, "Workers")) :]
    workers = [line.split()[0] for line in workers_table if line.strip()]
    assert "worker-a" in workers and "worker-b" in workers

    _, out, _ = invoke("task-queue", "describe", "tq", "-o", "json")
    described = orjson.loads(out)
    workflow, activity = described["streams"]
    assert (workflow["backlog"], workflow["lag"], workflow["pending"]) == (3, 2, 1)
    assert workflow["pending_by_consumer"] == {"worker-a": 1}
    assert (activity["backlog"], activity["pending"]) == (0, 0)
    assert activity["consumers"][0]["name"] == "worker-b"
    by_name = {w["name"]: w for w in described["workers"]}
    assert by_name["worker-a"]["kinds"] == ["workflow"] and by_name["worker-a"]["pending"] == 1
    assert by_name["worker-b"]["pending"] == 0 and by_name["worker-b"]["idle_ms"] < 60_000

    code, out, _ = invoke("task-queue", "describe", "never-used")
    assert code == 0 and "No worker has polled task queue never-used" in out
    assert "no group" in out


def _title(lines: list[str], start: str) -> str:
    return next(line for line in lines if line.startswith(start))


def test_task_queue_describe_lists_a_running_worker(url: str) -> None:
    async def main() -> None:
        async with await Client.connect(url) as client, running_worker(client, **WORKER) as w:
            await client.execute_workflow("Hello", "TQ", id="tq", task_queue="cli")
            _, out, _ = await ainvoke("task-queue", "describe", "cli", "-o", "json")
            workers = orjson.loads(out)["workers"]
            assert [(x["name"], sorted(x["kinds"])) for x in workers] == [
                (w.identity, ["activity", "workflow"])
            ]

    run(main())


# -- worker run --------------------------------------------------------------------------------

WORKER_MODULE = """
from orchestrator import activity, workflow

@activity.defn(name="Up")
def up(text: str) -> str:
    return text.upper()

@workflow.defn(name="UpWorkflow")
async def up_workflow(text: str) -> str:
    return await workflow.execute_activity(up, text, start_to_close_timeout=5)

OPTIONS = {"workflows": [up_workflow], "activities": [up], "task_queue": "from-dict",
           "max_concurrent_activities": 7}

def make_options():
    return dict(OPTIONS, task_queue="from-factory")

def needs_an_argument(x):
    return OPTIONS

BAD = {"workflows": [up_workflow], "max_activities": 3}
NOT_DECORATED = [print]
"""


@pytest.fixture
def worker_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "cli_worker_module.py"
    path.write_text(WORKER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    return path


def test_worker_plans_from_modules_dicts_factories_and_flags(worker_module: Path) -> None:
    module = "cli_worker_module"
    plan = plan_worker(module, {"task_queue": "q"})
    assert [f.__name__ for f in plan.options["workflows"]] == ["up_workflow"]
    assert [f.__name__ for f in plan.options["activities"]] == ["up"]

    plan = plan_worker(f"{module}:OPTIONS", {"task_queue": None, "metrics_port": 9100})
    assert plan.options["task_queue"] == "from-dict" and plan.options["metrics_port"] == 9100
    assert plan.options["max_concurrent_activities"] == 7
    # A flag (or its environment variable) wins over the dict.
    flags = {"task_queue": "flag", "max_concurrent_activities": 2, "identity": None}
    plan = plan_worker(f"{module}:OPTIONS", flags)
    assert plan.options["task_queue"] == "flag" and plan.options["max_concurrent_activities"] == 2
    assert "identity" not in plan.options
    assert plan_worker(f"{module}:make_options", {}).options["task_queue"] == "from-factory"
    assert plan_worker(str(worker_module), {"task_queue": "q"}).options["activities"]
    assert plan_worker(f"{module}:up_workflow", {"task_queue": "q"}).options["activities"] == []

    for spec, message in [
        (module, "no task queue"),
        (f"{module}:BAD", "unknown Worker option(s) 'max_activities'"),
        (f"{module}:NOT_DECORATED", "neither a workflow.defn nor an activity.defn"),
        (f"{module}:needs_an_argument", "cannot be called without arguments"),
        (f"{module}:nothing", "has no attribute 'nothing'"),
        ("no_such_module_here", "cannot import 'no_such_module_here'"),
        ("json", "no functions decorated"),
        ("missing/file.py", "no such file"),
    ]:
        with pytest.raises(
            ConfigurationError, match=message.replace("(", r"\(").replace(")", r"\)")
        ):
            plan_worker(spec, {})
    assert "max_concurrent_activities" in WORKER_OPTIONS and "client" not in WORKER_OPTIONS


def test_worker_run_reads_its_flags_from_the_environment_and_stops_on_sigterm(
    env: dict[str, str], processes: list[subprocess.Popen[str]], url: str, tmp_path: Path
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    worker_env = {
        **env,
        "ORCHESTRATOR_TASK_QUEUE": "env-queue",
        "ORCHESTRATOR_IDENTITY": "env-worker",
        "ORCHESTRATOR_LOG_LEVEL": "debug",
        "ORCHESTRATOR_MAX_CONCURRENT_ACTIVITIES": "3",
        "ORCHESTRATOR_METRICS_PORT": str(port),
        "ORCHESTRATOR_METRICS_HOST": "127.0.0.1",
    }
    # A file, not a pipe: nobody reads a pipe while the test runs, and DEBUG lines would fill it.
    log = tmp_path / "worker.log"
    with log.open("w") as output:
        proc = subprocess.Popen(
            [sys.executable, "-m", "orchestrator.cli", "worker", "run", "defs"],
            cwd=TESTS,
            env=worker_env,
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
        )
    processes.append(proc)
    code, out, err = invoke(
        "workflow", "execute", "-t", "Hello", "-q", "env-queue", "-w", "env",
        "-i", '"env"', "-o", "json", "--timeout", "20",
    )  # fmt: skip
    assert code == 0 and orjson.loads(out) == "Hello env!", err
    _, out, _ = invoke("workflow", "show", "-w", "env", "-o", "json")
    workers = {e["attrs"].get("worker") for e in orjson.loads(out)["events"]}
    assert "env-worker" in workers

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 0, log.read_text()
    logged = log.read_text()
    assert f"serving /metrics, /healthz and /readyz on http://127.0.0.1:{port}" in logged
    assert " DEBUG " in logged and "worker stopped" in logged


@pytest.mark.parametrize(
    ("args", "env", "code", "message"),
    [
        (["no_such_module:attr", "-q", "x"], {}, 1, "cannot import"),
        (["defs", "-q", "x", "--log-level", "BOGUS"], {}, 2, "Invalid value for '--log-level'"),
        (
            ["defs", "-q", "x"],
            {"ORCHESTRATOR_MAX_CONCURRENT_ACTIVITIES": "0"},
            2,
            "Invalid value for '--max-concurrent-activities'",
        ),
        (["defs", "-q", "x", "--metrics-port", "70000"], {}, 2, "--metrics-port"),
    ],
)
def test_worker_run_errors(
    url: str,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    env: dict[str, str],
    code: int,
    message: str,
) -> None:
    monkeypatch.chdir(TESTS)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    exit_code, _, err = invoke("worker", "run", *args)
    assert exit_code == code
    assert_one_line_error(err, message)


# -- server start-dev --------------------------------------------------------------------------


def start_dev(
    *args: str, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[str], list[str]]:
    """``server start-dev`` as a process, and what it printed until it said how to stop it."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchestrator.cli", "server", "start-dev", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    lines = [proc.stdout.readline()]
    while lines[-1] and "Ctrl-C" not in lines[-1]:
        lines.append(proc.stdout.readline())
    return proc, [line.rstrip("\n") for line in lines]


def stop(proc: subprocess.Popen[str], sig: int) -> tuple[str, str]:
    """Send ``sig``; the rest of stdout, and stderr, once it exited with status 0."""
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    return out, err


def test_start_dev_keeps_data_in_its_folder_across_restarts(
    redis_server_binary: str, tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    port, data = free_port(), tmp_path / "data"
    proc, printed = start_dev("--port", str(port), "--data-dir", str(data))
    processes.append(proc)
    url = f"redis://127.0.0.1:{port}/0"
    assert printed == [
        f"Dev server (redis-server, data kept in {data}) listening at {url}",
        "Use it from other shells with:",
        f"  export ORCHESTRATOR_REDIS_URL={url}",
        "Press Ctrl-C to stop it.",
    ]
    with redis.Redis.from_url(url) as r:
        r.set("kept", "yes")
    out, _ = stop(proc, signal.SIGINT)
    assert out == "Dev server stopped.\n"
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()

    proc, _ = start_dev("--port", str(port), "--db-file", str(data))
    processes.append(proc)
    with redis.Redis.from_url(url) as r:
        assert r.get("kept") == b"yes"
    stop(proc, signal.SIGTERM)


def test_start_dev_falls_back_to_fakeredis_in_memory(
    tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    no_redis_server = {**os.environ, "PATH": str(tmp_path)}
    proc, printed = start_dev("--data-dir", str(tmp_path / "ignored"), env=no_redis_server)
    processes.append(proc)
    assert printed[0].startswith("Dev server (fakeredis, data kept in memory, lost on stop)")
    with redis.Redis.from_url(printed[0].split()[-1]) as r:
        assert r.ping()
    _, err = stop(proc, signal.SIGTERM)
    assert err.strip() == (
        f"warning: redis-server is not on PATH: data is kept in memory only, "
        f"not in {tmp_path / 'ignored'}"
    )


def test_start_dev_on_a_taken_port_is_one_line(redis_url: str) -> None:
    taken = redis.Redis.from_url(redis_url).connection_pool.connection_kwargs["port"]
    code, _, err = invoke("server", "start-dev", "--port", str(taken))
    assert code == 1
    assert_one_line_error(err, f"port {taken} on 127.0.0.1 is already in use")


# -- errors, help and completion ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["workflow", "describe", "-w", "nope"], 1, "workflow 'nope' not found"),
        (["workflow", "show", "-w", "nope", "--follow"], 1, "workflow 'nope' not found"),
        (["workflow", "result", "-w", "nope"], 1, "workflow 'nope' not found"),
        (["workflow", "signal", "-w", "nope", "--name", "s"], 1, "workflow 'nope' not found"),
        (["workflow", "cancel", "-w", "nope"], 1, "workflow 'nope' not found"),
        (["workflow", "start", "-t", "X", "-w", "y", "-q", "z", "-i", "{bad"], 1, "not valid JSON"),
        (["workflow", "signal", "-w", "x", "--name", "s", "-i", "[1,"], 1, "not valid JSON"),
        (["workflow", "start", "-t", "X", "-w", "bad\nid", "-q", "z"], 1, "control characters"),
        (["workflow", "start", "-t", "X", "-q", "z", "--run-timeout", "soon"], 1, "--run-timeout"),
        (["workflow", "start", "-t", "X"], 2, "Missing option '--task-queue'"),
        (["workflow", "describe", "-w", "x", "-o", "yaml"], 2, "Invalid value for '--output'"),
        (["workflow", "nosuchverb"], 2, "No such command 'nosuchverb'"),
        (["task-queue", "describe", "bad queue "], 1, "surrounding spaces"),
    ],
)
def test_errors_are_one_line_without_traceback(
    url: str, args: list[str], code: int, message: str
) -> None:
    exit_code, out, err = invoke(*args)
    assert exit_code == code and out == ""
    assert_one_line_error(err, message)


def test_unreachable_redis_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCHESTRATOR_REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    code, _, err = invoke("workflow", "describe", "-w", "x")
    assert code == 1
    assert_one_line_error(err, "cannot reach Redis")
    code, _, err = invoke("schedule", "list")
    assert_one_line_error(err, "cannot reach Redis")


@pytest.fixture
def password_user(redis_url: str) -> Iterator[str]:
    """A URL template for a Redis user with a password (s3cret) on the session's server."""
    admin = redis.Redis.from_url(redis_url)
    admin.acl_setuser(
        "cli-user", enabled=True, passwords=["+s3cret"], keys=["*"], channels=["*"],
        commands=["+@all"],
    )  # fmt: skip
    try:
        yield redis_url.replace("redis://", "redis://cli-user:{password}@")
    finally:
        admin.acl_deluser("cli-user")
        admin.close()


def test_wrong_password_is_one_line_and_never_shows_the_password(password_user: str) -> None:
    wrong = password_user.format(password="wr0ng-pass")
    code, _, err = invoke("workflow", "describe", "-w", "x", "--redis-url", wrong)
    assert code == 1
    assert_one_line_error(err, "refused the credentials")
    assert "wr0ng-pass" not in err and "cli-user:***@" in err
    right = password_user.format(password="s3cret")
    code, _, err = invoke("workflow", "describe", "-w", "x", "--redis-url", right)
    assert_one_line_error(err, "workflow 'x' not found")  # connected: only the id is unknown


def test_verbose_lets_the_traceback_through(url: str) -> None:
    result = runner.invoke(app, ["--verbose", "workflow", "describe", "-w", "nope"])
    assert result.exit_code == 1
    assert type(result.exception).__name__ == "WorkflowNotFoundError"


def test_help_and_shell_completion() -> None:
    code, out, _ = invoke("--help")
    assert code == 0
    for group in ("server", "worker", "workflow", "schedule", "task-queue", "metrics"):
        assert group in out
    assert "--install-completion" in out
    code, out, _ = invoke("--show-completion", "bash")
    assert code == 0 and "complete" in out and "_COMPLETE" in out
    out = runner.invoke(app, ["worker", "run", "--help"], env={"COLUMNS": "250"}).stdout
    words = " ".join(out.replace("│", " ").split())
    assert "ORCHESTRATOR_METRICS_PORT" in words and "ORCHESTRATOR_LOG_FORMAT" in words
    code, out, _ = invoke("workflow")  # a bare group shows its verbs
    assert "execute" in out and "replay" in out


# -- small parts -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("90s", 90), ("1m30s", 90), ("2h", 7200), ("1d", 86400), ("250ms", 0.25)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text, "x") == timedelta(seconds=seconds)
    assert parse_duration(format_duration(timedelta(seconds=seconds)), "x").total_seconds() == (
        seconds
    )


def test_policy_choices_match_the_client() -> None:
    assert tuple(p.value for p in ConflictPolicy) == CONFLICT_POLICIES
    assert tuple(p.value for p in ReusePolicy) == REUSE_POLICIES


def test_workflow_list_and_count(url: str) -> None:
    import orjson as _orjson
    from typer.testing import CliRunner as _Runner

    from orchestrator.cli import app as _app

    async def seed() -> None:
        async with await Client.connect(url) as client:
            for i in range(7):
                await client.start_workflow(
                    "Approval" if i % 2 else "Gated", 1, id=f"list-{i}", task_queue="cli"
                )

    run(seed())
    runner_ = _Runner()
    result = runner_.invoke(_app, ["workflow", "count", "-o", "json"])
    assert result.exit_code == 0 and _orjson.loads(result.stdout) == {"count": 7}
    result = runner_.invoke(_app, ["workflow", "count", "-t", "Gated"])
    assert result.exit_code == 0 and result.stdout.strip() == "4"
    result = runner_.invoke(_app, ["workflow", "list", "--page-size", "5", "-o", "json"])
    first = _orjson.loads(result.stdout)
    assert len(first["executions"]) == 5 and first["next_page_token"]
    result = runner_.invoke(
        _app,
        [
            "workflow",
            "list",
            "--page-size",
            "5",
            "-o",
            "json",
            "--next-page-token",
            first["next_page_token"],
        ],
    )
    second = _orjson.loads(result.stdout)
    ids = {e["workflow_id"] for e in first["executions"] + second["executions"]}
    assert len(ids) == 7 and second["next_page_token"] is None
    result = runner_.invoke(_app, ["workflow", "list", "-s", "running"])
    assert result.exit_code == 0 and "list-6" in result.stdout
    result = runner_.invoke(_app, ["workflow", "list", "--started-after", "yesterday"])
    assert result.exit_code == 1 and "not an ISO time" in result.stderr


def test_task_queue_lists_an_idle_worker_from_its_heartbeat(url: str) -> None:
    async def main() -> None:
        async with (
            await Client.connect(url) as client,
            running_worker(client, task_queue="idle-queue", workflows=defs.ALL_WORKFLOWS) as worker,
        ):
            await asyncio.sleep(0.3)  # the first heartbeat is sent at start
            code, out, err = await ainvoke("task-queue", "describe", "idle-queue", "-o", "json")
            assert code == 0, err
            names = [w["name"] for w in orjson.loads(out)["workers"]]
            assert worker.identity in names

    run(main())


def test_start_with_use_existing_says_it_found_the_running_run(url: str) -> None:
    code, out, _ = invoke("workflow", "start", "-t", "Approval", "-w", "ue", "-q", "cli", "-i", "1")
    assert code == 0 and out.startswith("Started workflow ue run")
    code, out, _ = invoke(
        "workflow",
        "start",
        "-t",
        "Approval",
        "-w",
        "ue",
        "-q",
        "cli",
        "-i",
        "1",
        "--id-conflict-policy",
        "use_existing",
    )
    assert code == 0 and out.startswith("Workflow ue is already running: run")
