"""Run the hello-world workflow end to end: ``python -m orchestrator.demo``.

Uses the Redis named by ORCHESTRATOR_REDIS_URL, or else starts an embedded one. Then it starts
the sample worker (workers/hello_world.py) in the background and runs the sample starter
(starters/hello_world.py), whose output is the workflow's result. The worker's output goes to
stderr, so stdout carries only what the starter prints. The exit status is the starter's.

ORCHESTRATOR_DEMO_DIR replaces the repository root as the place the two scripts are looked up,
which lets tests run the demo against stand-in scripts.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from orchestrator.devserver import EmbeddedRedis, EmbeddedRedisError
from orchestrator.errors import OrchestratorError

logger = logging.getLogger(__name__)

REDIS_URL_ENV = "ORCHESTRATOR_REDIS_URL"
DEMO_DIR_ENV = "ORCHESTRATOR_DEMO_DIR"
WORKER_SCRIPT = Path("workers", "hello_world.py")
STARTER_SCRIPT = Path("starters", "hello_world.py")

STARTER_TIMEOUT_SECONDS = 60.0
WORKER_STOP_SECONDS = 15.0
STARTER_STOP_SECONDS = 5.0
POLL_SECONDS = 0.1

# The directory holding the orchestrator package: the repository root in a checkout.
PACKAGE_PARENT = Path(__file__).resolve().parent.parent
STDERR_FD = 2


class DemoError(OrchestratorError):
    """Raised when the demo cannot run to the end; the message is the one line shown."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo and return the exit status: the starter's, or non-zero on failure."""
    timeout = _parse_args(argv).timeout
    # Turning SIGTERM into KeyboardInterrupt lets the cleanup below run, so neither the worker
    # nor the embedded Redis outlives the demo when it is stopped from outside.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        return _run(timeout)
    except (DemoError, EmbeddedRedisError, OSError) as exc:
        _say(f"failed: {exc}")
        return 1
    except KeyboardInterrupt:
        _say("interrupted; the worker and Redis were stopped")
        return 130


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m orchestrator.demo",
        description="Run the hello-world workflow end to end and print its result.",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=STARTER_TIMEOUT_SECONDS,
        help="seconds to wait for the workflow result (default: %(default)g)",
    )
    return parser.parse_args(argv)


def _run(timeout: float) -> int:
    root = _demo_dir()
    worker_script = _script(root, WORKER_SCRIPT)
    starter_script = _script(root, STARTER_SCRIPT)

    # The stack unwinds in reverse: starter, then worker, then Redis, which the others need.
    with contextlib.ExitStack() as stack:
        env = _child_env(_redis_url(stack))
        worker = _spawn("worker", worker_script, root, env, stdout=STDERR_FD)
        stack.callback(_stop, worker, "worker", WORKER_STOP_SECONDS)
        starter = _spawn("starter", starter_script, root, env, stdout=None)
        stack.callback(_stop, starter, "starter", STARTER_STOP_SECONDS)
        return _wait_for_starter(starter, worker, timeout)


def _demo_dir() -> Path:
    override = os.environ.get(DEMO_DIR_ENV)
    return Path(override).resolve() if override else PACKAGE_PARENT


def _script(root: Path, relative: Path) -> Path:
    path = root / relative
    if not path.is_file():
        raise DemoError(f"{path} not found (set {DEMO_DIR_ENV} to use another directory)")
    return path


def _redis_url(stack: contextlib.ExitStack) -> str:
    url = os.environ.get(REDIS_URL_ENV)
    if url:
        _say(f"using Redis at {url} (from {REDIS_URL_ENV})")
        return url

    server = stack.enter_context(EmbeddedRedis())
    _say(f"using an embedded Redis ({server.kind}) at {server.url}")
    return server.url


def _child_env(redis_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env[REDIS_URL_ENV] = redis_url
    # The samples must import the same orchestrator package as this process, installed or not.
    env["PYTHONPATH"] = os.pathsep.join(
        part for part in (str(PACKAGE_PARENT), env.get("PYTHONPATH", "")) if part
    )
    # Unbuffered, so the children's lines appear in order with ours and none are lost when the
    # worker is stopped with a signal.
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _spawn(
    name: str, script: Path, root: Path, env: dict[str, str], stdout: int | None
) -> subprocess.Popen[bytes]:
    command = [sys.executable, str(script)]
    logger.debug("starting the %s: %s", name, " ".join(command))
    try:
        process = subprocess.Popen(
            command, cwd=root, env=env, stdin=subprocess.DEVNULL, stdout=stdout
        )
    except OSError as exc:
        raise DemoError(f"could not start the {name} ({script}): {exc}") from exc
    logger.debug("the %s runs as pid %d", name, process.pid)
    return process


def _wait_for_starter(
    starter: subprocess.Popen[bytes], worker: subprocess.Popen[bytes], timeout: float
) -> int:
    deadline = time.monotonic() + timeout
    while (status := starter.poll()) is None:
        # Without a worker the workflow never finishes; say so now rather than at the timeout.
        if worker.poll() is not None:
            raise DemoError(f"the worker exited with status {_exit_status(worker.returncode)}")
        if time.monotonic() > deadline:
            raise DemoError(f"no workflow result within {timeout:g} s; the starter was stopped")
        time.sleep(POLL_SECONDS)

    status = _exit_status(status)
    if status != 0:
        _say(f"the starter exited with status {status}")
    return status


def _stop(process: subprocess.Popen[bytes], name: str, grace_seconds: float) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(grace_seconds)
    except subprocess.TimeoutExpired:
        _say(f"the {name} did not stop within {grace_seconds:g} s of SIGTERM; killing it")
        process.kill()
        process.wait()


def _exit_status(returncode: int) -> int:
    # Popen reports death by signal N as -N; shells report it as 128 + N.
    return 128 - returncode if returncode < 0 else returncode


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _say(message: str) -> None:
    print(f"demo: {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
