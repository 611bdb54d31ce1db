"""``prime conformance``: the suites as a ``prime`` sub-command, added through ``register_commands``."""

from __future__ import annotations

from prime_core import hookimpl


@hookimpl
def register_commands(commands):
    from .runner import add_arguments

    add_arguments(commands.add_parser(
        "conformance", help="run the conformance suites on a plugin's components (pytest)",
        description="Run prime-conformance's suites (pytest + hypothesis) on one plugin's components or all."))
