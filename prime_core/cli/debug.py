"""``--debug`` on every command: ``prime --debug CMD …`` and ``prime CMD [SUB] … --debug`` both show the traceback
of an error (`prime_core.cliargs.run_command`)."""

from __future__ import annotations

import argparse

from .. import cliargs


def add_debug(sub: argparse._SubParsersAction) -> None:
    """Add --debug to every sub-command (recursively, plugins' groups too) that lacks it; SUPPRESS keeps a
    ``prime --debug CMD`` intact."""
    for sp in sub.choices.values():
        if not any("--debug" in a.option_strings for a in sp._actions):
            sp.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=cliargs.DEBUG_HELP)
        for action in sp._actions:
            if isinstance(action, argparse._SubParsersAction):
                add_debug(action)
