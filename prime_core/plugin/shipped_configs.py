"""Configs shipped inside distributions, reachable by name: ``prime run --config main``.

A distribution ships example configs as package data (TOML files inside its import package) and declares them
through the ``register_configs`` hook, like any other component::

    from importlib.resources import files

    @hookimpl
    def register_configs(register):
        register("main", files(__package__) / "configs" / "main.toml")

``register(name, resource, description=None)`` takes anything with ``read_text()`` (an
``importlib.resources`` traversable, a ``pathlib.Path``) or a path string; the description defaults to the
file's first comment line. The hook is called through the registry's hook caller on the loaded plugins only (a
plugin that failed to load ships nothing); listings show the built-ins first. A name shipped twice is a
`RegistryError` naming both distributions.

`load_config` resolves ``--config X`` as: an fsspec URL (``…://…``) or a path that exists → that file;
otherwise, a bare name (no ``/``, no ``.toml`` suffix) → the shipped config of that name.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import attrs

from ..errors import ConfigError, RegistryError
from .attribution import PluginFailure


@attrs.frozen
class ShippedConfig:
    name: str
    resource: Any
    distribution: str
    plugin: str
    description: str
    #: built-ins first in listings (0), then plugins (1)
    builtin_rank: int = attrs.field(default=1, eq=False)

    def read_text(self) -> str:
        if isinstance(self.resource, (str, os.PathLike)):
            with open(self.resource, encoding="utf-8") as fh:
                return fh.read()
        return self.resource.read_text(encoding="utf-8")

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "distribution": self.distribution, "plugin": self.plugin,
                "description": self.description}


def _first_comment(text: str) -> str:
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("#"):
            return line.lstrip("#").strip()
        if line:
            break
    return ""


def shipped_configs(registry=None) -> dict[str, ShippedConfig]:
    """Every config the loaded distributions ship, by name. The ``register_configs`` hook is called through the
    registry's hook caller (`Registry.call_hook`), like every hook, each ``register`` attributed to its plugin;
    a broken plugin (failed to load, a hook that raised) ships nothing, one with a skipped duplicate component
    still ships its configs."""
    if registry is None:
        from .default import get_registry

        registry = get_registry()
    registry.load_all()  # a name may be shipped by any installed plugin (and twice is an error)
    registry.ensure_collected()
    found: dict[str, ShippedConfig] = {}
    callable_plugins = {name for name, info in registry.plugins.items() if not info.broken}
    try:
        registry.call_hook("register_configs", lambda info: _config_callback(info, found), only=callable_plugins)
    except PluginFailure as failure:  # the registry names the plugin; the user sees the plugin's own error
        raise failure.exc from None
    return dict(sorted(found.items(), key=lambda kv: kv[1].builtin_rank))


def _config_callback(info, found: dict[str, ShippedConfig]):
    """The ``register(name, resource, description=None)`` that ``info``'s plugin receives."""

    def register(name: str, resource: Any, description: str | None = None) -> None:
        if not isinstance(name, str) or not name or "/" in name or name.endswith(".toml"):
            raise TypeError(f"{info.distribution}: config name {name!r} must be a bare name like 'main'")
        if name in found:  # named built-in first, whatever pluggy's call order
            first, second = ((info.distribution, found[name].distribution) if info.builtin
                             else (found[name].distribution, info.distribution))
            raise RegistryError(f"config {name!r} is shipped twice: by {first} and by {second}; uninstall one or "
                                f"rename it", kind="config", name=name, distribution=info.distribution)
        entry = ShippedConfig(name, resource, info.distribution, info.name, description or "",
                              0 if info.builtin else 1)
        if description is None:
            try:
                entry = attrs.evolve(entry, description=_first_comment(entry.read_text()))
            except OSError:
                pass
        found[name] = entry

    return register


def is_config_name(text: str) -> bool:
    """A bare name (``main``), as opposed to a path or a URL; an existing file of that name stays a path."""
    return ("/" not in text and os.sep not in text and "://" not in text and not text.endswith(".toml")
            and not os.path.isfile(text))


def get_shipped_config(name: str, registry=None) -> ShippedConfig:
    configs = shipped_configs(registry)
    try:
        return configs[name]
    except KeyError:
        from .distributions import distribution_hint

        known = ", ".join(sorted(configs)) or "none installed"
        hint = distribution_hint("config", name)
        raise ConfigError(f"unknown config {name!r} (not a file either)" + (f"; {hint}" if hint else "")
                          + f"; shipped configs: {known}; or give a path or fsspec URL") from None


def read_config_source(path: str) -> tuple[str, str]:
    """(TOML text, where it came from) for ``--config`` given a shipped name."""
    entry = get_shipped_config(path)
    return entry.read_text(), f"{entry.name} ({entry.distribution})"


# ------------------------------------------------------------------------------------------------ CLI
def cmd_config(args) -> int:
    if args.config_command == "list":
        rows = [c.to_json() for c in sorted(shipped_configs().values(), key=lambda c: c.name)]
        if args.json:
            print(json.dumps(rows, indent=2))
            return 0
        if not rows:
            print("no shipped configs (install a distribution that ships some, e.g. prime-plugin-text)")
        width = max((len(r["name"]) for r in rows), default=0)
        for r in rows:
            print(f"{r['name']:<{width}}  {r['distribution']:<20}  {r['description']}")
        return 0
    entry = get_shipped_config(args.name)
    sys.stdout.write(entry.read_text())
    return 0


def add_config_parser(sub) -> None:
    """``prime config list [--json]`` and ``prime config show NAME`` (called by the CLI's parser builder)."""
    sp = sub.add_parser("config", help="configs shipped with the installed distributions (list, show NAME)")
    csub = sp.add_subparsers(dest="config_command", required=True)
    lp = csub.add_parser("list", help="shipped configs: name, distribution, description")
    lp.add_argument("--json", action="store_true")
    lp.set_defaults(func=cmd_config)
    shp = csub.add_parser("show", help="print a shipped config's TOML (e.g. prime config show main > my.toml)")
    shp.add_argument("name")
    shp.set_defaults(func=cmd_config)
