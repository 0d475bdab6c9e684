"""How the command line reports errors: one line on stderr and a non-zero exit status.

An expected error (Redis unreachable, an unknown workflow id, malformed JSON) prints
``error: <what went wrong>`` and exits 1; a usage error (a missing option) prints the
same kind of line and exits 2. ``orchestrator --verbose ...`` lets the traceback through.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Coroutine, Iterator
from contextvars import ContextVar
from typing import Any, TypeVar

import redis.exceptions
import typer
from typer.core import TyperGroup

from ..errors import OrchestratorError

try:  # recent Typer releases bundle their own copy of Click
    from typer._click.exceptions import ClickException
except ImportError:  # older ones depend on Click itself
    from click.exceptions import ClickException  # type: ignore[no-redef, import-not-found]

T = TypeVar("T")

# Set by the root command's --verbose for the command that runs after it.
verbose: ContextVar[bool] = ContextVar("verbose", default=False)


def one_line(text: str) -> str:
    return " ".join(text.split())


def describe_error(exc: BaseException) -> str:
    """The one-line message for an error a command ran into."""
    if isinstance(exc, OrchestratorError):
        text = str(exc)
    elif isinstance(exc, redis.exceptions.RedisError):
        text = f"Redis: {exc}"
    elif isinstance(exc, TimeoutError):
        text = str(exc) or "timed out"
    elif isinstance(exc, OSError):
        text = str(exc)
    else:
        text = f"unexpected {type(exc).__name__}: {exc} (--verbose shows the traceback)"
    return one_line(text) or type(exc).__name__


@contextlib.contextmanager
def reported_errors() -> Iterator[None]:
    """Turn an error into ``error: ...`` on stderr and exit status 1; Ctrl-C exits 130 quietly."""
    try:
        yield
    except (typer.Exit, typer.Abort):
        raise
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    except Exception as exc:
        if verbose.get():
            raise
        typer.echo(f"error: {describe_error(exc)}", err=True)
        raise typer.Exit(1) from None


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine, its errors reported as one line."""
    with reported_errors():
        return asyncio.run(coro)


def warn(message: str) -> None:
    typer.echo(f"warning: {message}", err=True)


def note(message: str) -> None:
    """A line for the person at the terminal, on stderr so that stdout stays parseable."""
    typer.echo(message, err=True)


class OneLineErrorsGroup(TyperGroup):
    """The root command, reporting usage errors (a missing option, a bad value) in one line too.

    Typer would print a usage block and a framed message; a script reading stderr, or a
    person, is better served by the same ``error: ...`` line every other error gets.
    """

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            outcome = super().main(*args, standalone_mode=False, **kwargs)
        except ClickException as exc:
            sys.exit(_report_usage_error(exc))
        except typer.Abort:
            typer.echo("error: aborted", err=True)
            sys.exit(1)
        # Without standalone mode Click returns the exit status of a typer.Exit.
        sys.exit(outcome if isinstance(outcome, int) else 0)


def _report_usage_error(exc: ClickException) -> int:
    if type(exc).__name__ == "NoArgsIsHelpError":
        # A bare group: its help is the answer (Typer's rich help has printed it already).
        if exc.format_message().strip():
            typer.echo(exc.format_message(), err=True)
        return exc.exit_code
    ctx = getattr(exc, "ctx", None)
    hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
    typer.echo(f"error: {one_line(exc.format_message())}{hint}", err=True)
    return exc.exit_code
