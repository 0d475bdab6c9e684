"""``orchestrator workflow replay``: does changed workflow code still fit recorded histories?

Run it in CI before deploying workflow code: save the histories of a few runs with
``orchestrator workflow show -w ID -o json > ID.json``, then replay them against the
new code. A non-determinism error means the new code would break runs in flight.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ..replayer import Replayer, ReplayResult
from . import loading
from .options import Output, OutputFormat
from .render import print_json, print_table
from .reporting import describe_error, reported_errors


def workflow_replay(
    files: Annotated[
        list[Path],
        typer.Argument(
            metavar="FILE",
            exists=True,
            dir_okay=False,
            help="History files, as `workflow show -o json` prints them.",
        ),
    ],
    workflows: Annotated[
        str,
        typer.Option(
            "--workflows",
            metavar="MODULE[:ATTRIBUTE]",
            help="Where the workflow code is, as for `worker run`.",
        ),
    ],
    output: OutputFormat = Output.TABLE,
) -> None:
    """Check that the current workflow code still reproduces recorded histories.

    Exit status 0 when every history replays, 1 when the code diverges from one
    (a non-determinism error, printed on stderr).
    """
    with reported_errors():
        replayer = Replayer(loading.workflows_of(loading.load(workflows), workflows))
        results = [(path, replayer.check(path)) for path in files]
    failures = [(path, r.error) for path, r in results if r.error is not None]
    if output is Output.JSON:
        print_json([_replay_dict(path, result) for path, result in results])
    else:
        print_table(
            ["File", "Workflow Id", "Type", "Outcome"],
            [
                (path, r.workflow_id, r.workflow_type, "replayed" if r.ok else "NON-DETERMINISTIC")
                for path, r in results
            ],
        )
    for path, error in failures:
        typer.echo(f"error: {path}: {describe_error(error)}", err=True)
    if failures:
        raise typer.Exit(1)


def _replay_dict(path: Path, result: ReplayResult) -> dict[str, Any]:
    return {
        "file": str(path),
        "workflow_id": result.workflow_id,
        "workflow_type": result.workflow_type,
        "ok": result.ok,
        "error": None if result.error is None else describe_error(result.error),
    }
