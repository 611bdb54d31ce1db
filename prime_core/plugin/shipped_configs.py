"""Configs shipped inside distributions, reachable by name: ``prime run --config main``.

A distribution ships example configs as package data (TOML files inside its import package) and declares them
through the ``register_configs`` hook, like any other component::

    from importlib.resources import files

    @hookimpl
    def register_configs(register):
        register("main", files(__package__) / "configs" / "main.toml")

``register(name, resource, description=None)`` takes anything with ``read_text()`` (an
``importlib.resources`` traversable, a ``pathlib.Path``) or a path string; the description defaults to the
file's first comment line. The hook is called for the core's built-ins first, then for plugins in discovery order,
on the registry's loaded plugins only (a plugin that failed to import ships nothing). A name shipped twice is a
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


@attrs.frozen
class ShippedConfig:
    name: str
    resource: Any
    distribution: str
    plugin: str
    description: str

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
    """Every config the loaded distributions ship, by name (built-ins first, then plugins in discovery order)."""
    if registry is None:
        from .registry import get_registry

        registry = get_registry()
    impls = {impl.plugin_name: impl for impl in registry.pm.hook.register_configs.get_hookimpls()}
    found: dict[str, ShippedConfig] = {}
    for plugin_name, info in registry.plugins.items():
        impl = impls.get(plugin_name)
        if impl is None or info.error:
            continue

        def register(name: str, resource: Any, description: str | None = None, _info=info) -> None:
            if not isinstance(name, str) or not name or "/" in name or name.endswith(".toml"):
                raise TypeError(f"{_info.distribution}: config name {name!r} must be a bare name like 'main'")
            if name in found:
                raise RegistryError(f"config {name!r} is shipped twice: by {found[name].distribution} and by "
                                    f"{_info.distribution}; uninstall one or rename it",
                                    kind="config", name=name, distribution=_info.distribution)
            entry = ShippedConfig(name, resource, _info.distribution, _info.name, description or "")
            if description is None:
                try:
                    entry = attrs.evolve(entry, description=_first_comment(entry.read_text()))
                except OSError:
                    pass
            found[name] = entry

        try:
            impl.function(register)  # pluggy's implementation (the registry wraps it: positional arguments)
        except Exception as exc:  # the registry wraps a plugin's exception to name the plugin: raise the original
            raise getattr(exc, "exc", exc) from None
    return found


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
