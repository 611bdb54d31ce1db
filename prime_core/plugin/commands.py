"""Plugin commands: ``prime NAME …`` contributed by other distributions through the ``register_commands`` hook.

A distribution declares each command it adds as an entry point of the ``prime.commands`` group, e.g.
``images = "prime_plugin_images.commands"``: the entry point's name is the command, its module implements
``register_commands(commands)`` (see `prime_core.plugin.hookspecs`). ``prime --help`` lists these commands from the
installed distributions' metadata alone, importing no plugin module (and so no torch); a command's module is
imported only when that command runs, and its hook is called through pluggy's hook caller, so ``tryfirst``,
``trylast`` and wrappers behave as pluggy documents. A command that fails to load is one line naming its
distribution; the other commands are unaffected.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata as md
import sys

import attrs

from ..errors import PrimeError, first_line
from .attribution import PluginFailure
from .loading import plugin_entry_points, plugin_filter

COMMANDS_GROUP = "prime.commands"


@attrs.frozen
class CommandEntry:
    """One ``prime.commands`` entry point: the command's name, the module to import, who provides it."""

    name: str
    module: str
    distribution: str
    version: str


def _allowed_distributions() -> set[str] | None:
    """``PRIME_LOAD_PLUGINS`` restricts plugins by their ``prime`` entry-point names; a command belongs to the
    distribution, so it is offered when one of its distribution's plugins is allowed (None: no restriction)."""
    names = plugin_filter()
    if names is None:
        return None
    return {ep.dist.name for ep in plugin_entry_points(names) if ep.dist}


def discover(reserved: set[str]) -> list[CommandEntry]:
    """Installed command entry points, first one per name, skipping names the core itself defines."""
    allowed = _allowed_distributions()
    found: dict[str, CommandEntry] = {}
    for ep in md.entry_points(group=COMMANDS_GROUP):
        dist = ep.dist.name if ep.dist else "unknown"
        if allowed is not None and dist not in allowed:
            continue
        entry = CommandEntry(ep.name, ep.value.split(":")[0], dist, ep.dist.version if ep.dist else "unknown")
        clash = "prime-core" if ep.name in reserved else found[ep.name].distribution if ep.name in found else None
        if clash:
            print(f"warning: command {ep.name!r} of {dist} ignored: {clash} already provides it",
                  file=sys.stderr)
            continue
        found[ep.name] = entry
    return sorted(found.values(), key=lambda e: e.name)


def load(commands: argparse._SubParsersAction, entry: CommandEntry) -> None:
    """Import ``entry``'s module and call its ``register_commands`` hook on ``commands`` through the registry's
    hook caller (`Registry.call_hook`, as for every hook). The registry holds this one module only: running a
    command imports no other plugin."""
    from .registry import Registry

    try:
        module = importlib.import_module(entry.module)
        registry = Registry()
        registry.add_plugin(module, entry.name, entry.distribution, entry.version)
        info = registry.plugins[entry.name]
        if info.error:
            raise PrimeError(f"command {entry.name!r} of {entry.distribution} {entry.version} failed to load "
                             f"({info.error}); reinstall or upgrade {entry.distribution}")
        registry.call_hook("register_commands", lambda _info: commands, argument="commands")
    except Exception as exc:  # noqa: BLE001 — any failure of a third-party module is reported the same way
        if isinstance(exc, PrimeError):
            raise
        exc = getattr(exc, "exc", exc) if isinstance(exc, PluginFailure) else exc
        first = first_line(exc)
        raise PrimeError(f"command {entry.name!r} of {entry.distribution} {entry.version} failed to load "
                         f"({type(exc).__name__}: {first}); reinstall or upgrade {entry.distribution}") from None
    if entry.name not in commands.choices:
        raise PrimeError(f"{entry.distribution} declares the command {entry.name!r} (entry point in "
                         f"{COMMANDS_GROUP}) but its register_commands hook did not add it")


def invoked_command(argv: list[str]) -> str | None:
    """The sub-command named on the command line: the first word that is not an option."""
    return next((a for a in argv if not a.startswith("-")), None)


def attach(commands: argparse._SubParsersAction, argv: list[str]) -> None:
    """Add every plugin command to ``commands``: the invoked one for real, the others as listings only."""
    entries = discover(reserved=set(commands.choices))
    wanted = invoked_command(argv)
    for entry in entries:
        if entry.name == wanted:
            load(commands, entry)
    for entry in entries:
        if entry.name not in commands.choices:  # listed by `prime --help`; never parsed (not invoked)
            commands.add_parser(entry.name, help=f"[{entry.distribution}] see: prime {entry.name} --help",
                                add_help=False)
