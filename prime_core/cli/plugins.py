"""``prime plugins``: the installed plugins, their components and hooks (text or ``--json``)."""

from __future__ import annotations

import argparse
import json

from .. import cliargs
from ..errors import PrimeError
from .options import add_json, registry


def add_parser(sub: argparse._SubParsersAction) -> None:
    sp = sub.add_parser("plugins", help="list installed plugins and their components")
    sp.add_argument("--all", action="store_true", help="include the core's built-ins")
    add_json(sp)
    sp.add_argument("--hook", help="only plugins implementing this hook, e.g. register_schedules")
    sp.set_defaults(func=cmd_plugins)


def cmd_plugins(args) -> int:
    """List plugins and their components; exit 1 when any listed plugin is broken (the rest still listed)."""
    reg = registry()
    debug = cliargs.debug_enabled(args)
    if args.hook is not None and args.hook not in _hook_names():
        raise PrimeError(f"--hook {args.hook!r} is not a prime hook; hooks: {', '.join(_hook_names())}")
    rows = [info.to_json(debug) for info in reg.plugins.values() if args.all or not info.builtin]
    if args.hook:
        rows = [r for r in rows if args.hook in r["hooks"]]
    broken = 1 if any(r["error"] for r in rows) else 0
    if args.json:
        print(json.dumps(rows, indent=2))
        return broken
    if not rows:
        print("no plugins installed (use --all to include the built-ins)")
    for r in rows:
        status = f"  ERROR: {r['error']}" if r["error"] else ""
        print(f"{r['name']}  ({r['distribution']} {r['version']}){status}")
        for kind, names in sorted(r["components"].items()):
            print(f"    {kind:<10} {', '.join(names)}")
        if debug and r.get("traceback"):
            print("    " + r["traceback"].rstrip().replace("\n", "\n    "))
    return broken


def _hook_names() -> list[str]:
    """The hooks plugins can implement (`prime_core.plugin.hookspecs`), in the order they are declared."""
    from ..plugin import hookspecs

    return [name for name in vars(hookspecs) if name.startswith("register_")]
