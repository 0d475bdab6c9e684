"""The sample pairs in workers/ and starters/: signals, timers, child workflows, cancellation.

Each test runs the sample's worker and its starter as two processes against the session's
Redis, checks every line the starter prints, then stops the worker with SIGTERM and expects
it to exit cleanly.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from orchestrator import Client

from helpers import run, spawn

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
RUN_ID = r"[0-9a-f-]{36}"


def run_starter(env: dict[str, str], sample: str) -> list[str]:
    """Run ``starters/<sample>.py`` to its end; return its output lines, expecting status 0."""
    done = subprocess.run(
        [sys.executable, f"starters/{sample}.py"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.splitlines()


def without_run_ids(lines: list[str]) -> list[str]:
    return [re.sub(RUN_ID, "<run id>", line) for line in lines]


def stop(worker: subprocess.Popen[str]) -> None:
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=15) == 0


def wait_for_text(path: Path, text: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in path.read_text():
        assert time.monotonic() < deadline, f"{text!r} not in {path.name} within {timeout} s"
        time.sleep(0.05)


def test_signals_sample(env: dict[str, str], processes: list[Any], tmp_path: Path) -> None:
    worker = spawn(processes, env, "workers/signals.py", log=tmp_path / "worker.log")
    lines = run_starter(env, "signals")

    # Three orders, in the order the starter handles them: approved, rejected, expired.
    a, b, c = dict.fromkeys(re.findall(r"order-[0-9a-f]{6}", "\n".join(lines)))
    shipped = f"parcel for {a} handed to the courier"
    assert without_run_ids(lines) == [
        f"Signal-with-start: started {a} (run <run id>), approved by manager",
        f"Status of {a}: PENDING, approved by manager (1 of 2)",
        f"Signalled {a}: approved by finance",
        f"Result: {a} approved by manager, finance; {shipped}",
        f"Status of {a}: APPROVED, approved by manager, finance (2 of 2); {shipped}",
        f"Signalled {b}: rejected by finance",
        f"Result: {b} rejected by finance: over budget",
        f"Started {c}; nobody decides",
        f"Result: {c} expired: no decision within 1 s",
    ]
    stop(worker)


def test_timers_sample_survives_a_worker_killed_during_the_sleep(
    env: dict[str, str], processes: list[Any], tmp_path: Path
) -> None:
    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
    first = spawn(processes, env, "workers/timers.py", log=first_log)
    starter = subprocess.Popen(
        [sys.executable, "starters/timers.py"],
        cwd=ROOT,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        # The reminder's 2 s timer is recorded: kill the worker, start another.
        wait_for_text(first_log, "timer started (2.000 s)")
        first.kill()
        first.wait(timeout=10)
        second = spawn(processes, env, "workers/timers.py", log=second_log)
        out, err = starter.communicate(timeout=60)
    finally:
        if starter.poll() is None:
            starter.kill()
            starter.communicate()
    assert starter.returncode == 0, out + err

    clock = r"\+ ?(\d+\.\d\d) s  \d\d:\d\d:\d\d\.\d{3} UTC  "
    lines = out.splitlines()
    assert len(lines) == 6, out
    assert re.fullmatch(
        rf"Started workflow WorkflowID reminder-[0-9a-f]{{8}} RunID {RUN_ID}", lines[0]
    )
    steps = [
        "started; sleeping 2 s",
        "timer fired",
        "reminder sent: stand up and stretch",
        "0.2 s lookup won the race: the calendar is free at 10:00",
        "5 s lookup lost the race against 1 s; going on",
    ]
    offsets = []
    for line, step in zip(lines[1:], steps, strict=True):
        match = re.fullmatch(clock + re.escape(step), line)
        assert match is not None, f"{line!r} is not step {step!r}"
        offsets.append(float(match[1]))
    assert offsets[0] == 0.0
    assert offsets[1] >= 2.0  # the sleep lasted its 2 s, however long the worker was away
    assert offsets[4] - offsets[3] >= 0.99  # the slow lookup was given its full 1 s

    # The second worker, not the killed one, sent the reminder.
    assert "activity_type=SendReminder" not in first_log.read_text()
    assert "activity_type=SendReminder" in second_log.read_text()
    stop(second)


def test_children_sample(env: dict[str, str], processes: list[Any], tmp_path: Path) -> None:
    worker = spawn(processes, env, "workers/children.py", log=tmp_path / "worker.log")
    lines = run_starter(env, "children")
    assert len(lines) == 7, lines

    match = re.fullmatch(
        rf"Started workflow WorkflowID (thumbnails-[0-9a-f]{{8}}) RunID {RUN_ID}", lines[0]
    )
    assert match is not None, lines[0]
    batch = match[1]
    thumbnails = "thumbs/cat-128.jpg thumbs/dog-128.jpg thumbs/owl-128.jpg"
    # The child's failure is its activity's error, worded by the library around the reason.
    (failed,) = [line for line in lines if line.startswith("corrupt.png: failed: ")]
    assert failed.endswith("CorruptImage: corrupt.png is not a readable image")
    assert lines[1:] == [
        "cat.jpg: thumbs/cat-128.jpg",
        "dog.jpg: thumbs/dog-128.jpg",
        failed,
        "owl.jpg: thumbs/owl-128.jpg",
        "3 succeeded, 1 failed",
        f"Contact sheet: contact sheet of 3 thumbnails: {thumbnails}",
    ]

    # Each child is a workflow of its own, closed as it ended.
    async def statuses() -> dict[str, str]:
        async with await Client.connect(env["ORCHESTRATOR_REDIS_URL"]) as client:
            return {
                child: (await client.get_workflow_handle(f"{batch}-{child}").describe()).status
                for child in ("cat.jpg", "dog.jpg", "corrupt.png", "owl.jpg", "contact-sheet")
            }

    assert run(statuses()) == {
        "cat.jpg": "COMPLETED",
        "dog.jpg": "COMPLETED",
        "corrupt.png": "FAILED",
        "owl.jpg": "COMPLETED",
        "contact-sheet": "COMPLETED",
    }
    stop(worker)


def test_cancellation_sample(env: dict[str, str], processes: list[Any], tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    worker = spawn(processes, env, "workers/cancellation.py", log=log)
    lines = run_starter(env, "cancellation")
    assert len(lines) == 5, lines

    job = re.findall(r"backup-[0-9a-f]{8}", lines[0])[0]
    copied = re.fullmatch(r"CopyFiles canceled after (\d+) of 1000 files", lines[3])
    assert copied is not None, lines
    assert 0 < int(copied[1]) < 1000
    # In history order: the copy stopped before the cleanup ran (WAIT_CANCELLATION_COMPLETED).
    assert without_run_ids(lines) == [
        f"Started workflow WorkflowID {job} RunID <run id>",
        "Cancellation requested",
        "Final status: CANCELED",
        f"CopyFiles canceled after {copied[1]} of 1000 files",
        f"RemovePartialCopy completed: removed the partial copy of {job}",
    ]
    assert f"{job}: copy cancelled after {copied[1]} of 1000 files" in log.read_text()
    stop(worker)
