"""The command line: each verb's normal output and its errors, through Typer's runner."""

from __future__ import annotations

import orjson
import pytest
from typer.testing import CliRunner

from orchestrator import Client
from orchestrator.cli import app
from orchestrator.devserver import free_port

import defs
from helpers import run, running_worker

runner = CliRunner()


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_start_describe_signal_terminate(url: str) -> None:
    code, out, _ = invoke(
        "workflow", "start", "-t", "Approval", "-w", "cli", "-q", "cli", "-i", "2"
    )
    assert code == 0 and "Started workflow cli run" in out
    code, out, _ = invoke("workflow", "signal", "-w", "cli", "--name", "approve", "-i", '"x"')
    assert code == 0 and "Signal approve sent" in out
    code, out, _ = invoke("workflow", "describe", "-w", "cli")
    assert code == 0 and orjson.loads(out)["status"] == "RUNNING"
    code, out, _ = invoke("workflow", "terminate", "-w", "cli", "--reason", "done testing")
    assert code == 0
    code, out, _ = invoke("workflow", "describe", "-w", "cli")
    assert orjson.loads(out)["status"] == "TERMINATED"
    code, out, _ = invoke("workflow", "show", "-w", "cli")
    events = [orjson.loads(line) for line in out.splitlines()]
    assert [e["type"] for e in events][-1] == "WorkflowExecutionTerminated"
    code, _, err = invoke("workflow", "terminate", "-w", "cli")
    assert code == 1 and err.startswith("error: ") and "already closed" in err


def test_start_wait_and_query_with_a_worker(url: str) -> None:
    async def main() -> None:
        async with (
            await Client.connect(url) as client,
            running_worker(
                client,
                task_queue="cli",
                workflows=defs.ALL_WORKFLOWS,
                activities=defs.ALL_ACTIVITIES,
            ),
        ):
            import asyncio

            code, out, _ = await asyncio.to_thread(
                invoke,
                "workflow",
                "start",
                "-t",
                "Hello",
                "-w",
                "w1",
                "-q",
                "cli",
                "-i",
                '"CLI"',
                "--wait",
            )
            assert code == 0 and '"Hello CLI!"' in out
            await asyncio.to_thread(
                invoke, "workflow", "start", "-t", "Approval", "-w", "w2", "-q", "cli", "-i", "1"
            )
            await asyncio.sleep(0.5)
            code, out, err = await asyncio.to_thread(
                invoke, "workflow", "query", "-w", "w2", "--name", "received"
            )
            assert code == 0, err
            assert orjson.loads(out) == []

    run(main())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["workflow", "describe", "-w", "nope"], "not found"),
        (["workflow", "start", "-t", "X", "-w", "y", "-q", "z", "-i", "{bad"], "not valid JSON"),
        (["workflow", "start", "-t", "X", "-w", "bad\nid", "-q", "z"], None),
        (["worker", "run", "nosuchmodule:attr", "-q", "x"], "cannot import"),
        (["worker", "run", "defs:ALL_WORKFLOWS", "-q", "x", "--log-level", "BOGUS"], None),
    ],
)
def test_errors_are_one_line_without_traceback(
    url: str, args: list[str], message: str | None
) -> None:
    code, _, err = invoke(*args)
    assert code == 1
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1
    assert "Traceback" not in err
    if message:
        assert message in err


def test_unreachable_redis_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCHESTRATOR_REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    code, _, err = invoke("workflow", "describe", "-w", "x")
    assert code == 1 and "cannot reach Redis" in err
