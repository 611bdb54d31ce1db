"""``prime text evaluate``: the text plugin's commands, added through ``register_commands``."""

from __future__ import annotations

from prime_core import hookimpl


@hookimpl
def register_commands(commands):
    from . import evaluate

    text = commands.add_parser("text", help="text tools: sample quality and speed of a text checkpoint")
    sub = text.add_subparsers(dest="text_command", required=True, metavar="COMMAND")
    doc = evaluate.__doc__.strip().splitlines()[0]
    evaluate.add_arguments(sub.add_parser("evaluate", help=doc, description=doc))
