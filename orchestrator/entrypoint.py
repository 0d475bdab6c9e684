"""Running a worker or starter program: expected errors end it with one line, not a traceback."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine
from typing import Any

from .errors import OrchestratorError


def run_program(main: Coroutine[Any, Any, Any]) -> None:
    """``asyncio.run(main)``; an :class:`OrchestratorError` prints ``error: ...`` and exits 1.

    An int that ``main`` returns is the exit status. Ctrl-C exits with status 130,
    quietly. Anything else is a bug and keeps its traceback.
    """
    try:
        result = asyncio.run(main)
    except OrchestratorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    if isinstance(result, int):
        raise SystemExit(result)
