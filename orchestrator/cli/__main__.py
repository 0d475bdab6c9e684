"""``python -m orchestrator.cli``: the ``orchestrator`` command."""

from . import main

main()
