"""Finding and importing plugins (internal): the ``prime`` entry-point group, and the core's own built-ins.

`plugin_entry_points` lists what is installed without importing anything (name, module, distribution), so a
later version can resolve one entry point by the component it provides instead of importing them all (issue
21); `load_entry_points` imports them one at a time into a `Registry`, recording and skipping one that fails.
The built-ins are loaded by module name (`BUILTIN_PLUGINS`), like any entry point: the registry constructs none
itself, and nothing below ``prime_core.builtin`` imports it.
"""

from __future__ import annotations

import importlib
import importlib.metadata as md
import os
import traceback
from typing import Iterable

from .attribution import first_line
from .hookspecs import CORE_DISTRIBUTION, ENTRY_POINT_GROUP
#: the core's own plugin modules, loaded by name like entry points (plugin name → module)
BUILTIN_PLUGINS = {"prime-core": "prime_core.builtin"}


def plugin_filter() -> set[str] | None:
    """``PRIME_LOAD_PLUGINS`` (comma-separated entry-point names, empty for none) → the names to load;
    None when unset (load every plugin). The built-ins are always loaded."""
    env = os.environ.get("PRIME_LOAD_PLUGINS")
    return None if env is None else {n.strip() for n in env.split(",") if n.strip()}


def plugin_entry_points(only: Iterable[str] | None = None) -> list[md.EntryPoint]:
    """The installed ``prime`` entry points (not imported), restricted to ``only`` when given."""
    wanted = None if only is None else set(only)
    return [ep for ep in md.entry_points(group=ENTRY_POINT_GROUP) if wanted is None or ep.name in wanted]


def load_builtins(registry) -> None:
    """Add the core's built-in plugin(s) to ``registry`` (imported by module name)."""
    from ..__about__ import __version__

    for name, module in BUILTIN_PLUGINS.items():
        registry.add_plugin(importlib.import_module(module), name, CORE_DISTRIBUTION, __version__, builtin=True)


def load_entry_points(registry, only: Iterable[str] | None = None) -> None:
    """Import the ``prime`` entry points one by one into ``registry``: one that fails to import is recorded with
    its error and skipped; a second entry point of the same name is refused loudly (pluggy would drop it)."""
    seen: dict[str, str] = {}
    for ep in plugin_entry_points(only):
        dist = ep.dist.name if ep.dist else "?"
        version = ep.dist.version if ep.dist else "?"
        if ep.name in seen:
            registry.record_failure(f"{ep.name} ({dist})", ep.name, dist, version,
                                    f"entry-point name {ep.name!r} is also used by {seen[ep.name]}; skipped")
            continue
        seen[ep.name] = dist
        try:
            plugin = ep.load()
        except Exception as exc:  # a broken plugin must not break the CLI
            registry.record_failure(ep.name, ep.name, dist, version, first_line(exc), traceback.format_exc())
            continue
        registry.add_plugin(plugin, ep.name, dist, version)
