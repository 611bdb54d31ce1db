"""The ``prime`` command line: plugins, train, run, sample, eval, idle-steps — and every command that installed
distributions add through the ``register_commands`` hook (`prime_core.plugin.commands`: export, images, text,
conformance, …). This module only assembles the parser from each command group's ``add_parser(sub)`` (the
registration sits next to its handler: `plugins`, `train`, `sample`, `evaluate`, `idle_steps`; the options several
commands share are defined once in `options`) and runs the chosen handler.

argparse, not click: every program of the project (``prime``, ``python -m export.onnx``, the plugins' commands)
shares one parser class with the one-line error promise (`prime_core.cliargs.Parser`), it costs no dependency,
and plugins receive the sub-command group exactly as llm's plugins receive its click group.

User errors (bad config, unknown component, bad checkpoint, ids out of range) print one line to stderr and exit
with code 2, without a traceback (``--debug`` or ``PRIME_DEBUG=1`` adds it); exit 1 means a bug.
"""

from __future__ import annotations

import argparse
import sys

from .. import cliargs
from . import evaluate, idle_steps, plugins, sample, train
from .debug import add_debug

EXIT_USAGE = cliargs.EXIT_USAGE

#: The core's command groups, in the order ``prime --help`` lists them (then ``config``, then plugins' commands).
GROUPS = (plugins, train, sample, evaluate, idle_steps)


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The whole command line: the core's commands, then the plugins' (the invoked one is loaded for real)."""
    from ..plugin.commands import attach
    from ..plugin.shipped_configs import add_config_parser

    p = cliargs.Parser(prog="prime", description="Partial-masking discrete diffusion (MDM-Prime).")
    p.add_argument("--debug", action="store_true", help=cliargs.DEBUG_HELP)
    sub = p.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        group.add_parser(sub)
    add_config_parser(sub)  # prime config list / show NAME
    attach(sub, sys.argv[1:] if argv is None else list(argv))  # plugin commands (register_commands hook)
    add_debug(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)

    def run() -> int:  # building the parser loads the invoked plugin command, which may fail: one line too
        args = build_parser(argv).parse_args(argv)
        from ..plugin.default import lazy_registry_for

        with lazy_registry_for(args.command):  # sample, eval, idle-steps: plugins only for the names used
            return args.func(args)

    return cliargs.run_command("prime", run, argparse.Namespace(debug="--debug" in argv))
