"""``prime images train-classifier|fd``: the image plugin's commands, added through ``register_commands``."""

from __future__ import annotations

from prime_core import hookimpl


@hookimpl
def register_commands(commands):
    from .cli import add_subcommands

    images = commands.add_parser("images", help="image tools: the FD-FMNIST feature network, Fréchet distances, FID")
    add_subcommands(images.add_subparsers(dest="images_command", required=True, metavar="COMMAND"))
