"""The default registry: assembled here, once per process, and passed down from the command line (internal).

`new_registry` = the core's built-ins (`loading.load_builtins`) + the installed plugins (`PRIME_LOAD_PLUGINS`
restricts them), collected. `get_registry` is the process-wide one the CLI builds and hands to every command;
library functions that take ``registry=None`` fall back to it.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

from .loading import load_builtins, load_entry_points, plugin_filter
from .registry import Registry


def new_registry(load_plugins: bool = True) -> Registry:
    """A registry with the core built-ins and (unless told not to) the installed plugins, collected."""
    reg = Registry()
    load_builtins(reg)
    if load_plugins:
        load_entry_points(reg, plugin_filter())
    reg.collect()
    return reg


_DEFAULT: Registry | None = None

#: core commands that name every component they use (a checkpoint's or a config's names): the CLI gives them a
#: `LazyRegistry`, which imports a plugin only for a name the built-ins lack (issue 21: start-up)
LAZY_COMMANDS = frozenset({"sample", "eval", "idle-steps"})


@contextlib.contextmanager
def lazy_registry_for(command: str | None) -> Iterator[None]:
    """While ``command`` runs, the process-wide registry is a `LazyRegistry` when it is one of `LAZY_COMMANDS`
    (and none was built yet); afterwards it is forgotten, so a later caller in the same process (a test, a
    library user reading ``registry.components`` whole) gets the eager one. The CLI wraps each command in this."""
    global _DEFAULT
    if command not in LAZY_COMMANDS or _DEFAULT is not None:
        yield
        return
    from .lazy import lazy_registry

    _DEFAULT = lazy_registry()
    try:
        yield
    finally:
        _DEFAULT = None


def get_registry() -> Registry:
    """The process-wide registry, built on first use."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = new_registry()
    return _DEFAULT


def reset_registry() -> None:
    """Forget the process-wide registry (tests; after installing a plugin in-process)."""
    global _DEFAULT
    _DEFAULT = None
