"""How the registry calls a hook so that each registration is attributed to the plugin that made it (internal).

pluggy hands every implementation the same arguments, so it cannot give each plugin its own ``register``
callback. Each plugin is therefore registered with pluggy through an `AttributedPlugin` proxy whose functions
replace a `Registration` argument by the callback bound to that plugin (``Registration.bound(plugin)``) before
calling the plugin's code, and wrap whatever the plugin raises in `PluginFailure` naming it. pluggy still orders
the calls (``tryfirst``, ``trylast``, wrappers); the registry knows who registered what.
"""

from __future__ import annotations

import functools
import inspect
import traceback
from typing import Any, Callable


def first_line(exc: BaseException) -> str:
    """``Type: first line of the message`` (one line for a warning or a listing)."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


class PluginFailure(Exception):
    """Raised out of a hook call when one plugin's implementation raised: carries who and why."""

    def __init__(self, plugin: str, exc: BaseException):
        super().__init__(plugin, exc)
        self.plugin, self.exc = plugin, exc
        self.tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


class Registration:
    """The argument a hook call passes before attribution: ``bind(plugin_name)`` makes the per-plugin object
    (a ``register`` callback, or any other per-plugin argument such as the commands group)."""

    def __init__(self, bind: Callable[[str], Any]):
        self.bound = bind

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("register(…) was called outside a hook call of a plugin added with Registry.add_plugin, "
                        "so the plugin that made it is unknown; add the plugin with add_plugin")


def _bind(args: tuple, plugin: str) -> tuple:
    return tuple(a.bound(plugin) if isinstance(a, Registration) else a for a in args)


def attributed(func, plugin: str):
    """``func`` (a hook implementation) with `Registration` arguments bound to ``plugin`` and any exception it
    raises wrapped in `PluginFailure` naming ``plugin``. A generator function (a hook wrapper) stays one, as
    pluggy requires, and delegates with ``yield from`` so send/throw reach the plugin's generator unchanged."""
    if inspect.isgeneratorfunction(func):
        @functools.wraps(func)
        def wrapper(*args):
            try:
                return (yield from func(*_bind(args, plugin)))
            except PluginFailure:  # another plugin's failure thrown through this wrapper by pluggy
                raise
            except Exception as exc:
                raise PluginFailure(plugin, exc) from exc
    else:
        @functools.wraps(func)
        def wrapper(*args):
            try:
                return func(*_bind(args, plugin))
            except Exception as exc:
                raise PluginFailure(plugin, exc) from exc
    return wrapper


class AttributedPlugin:
    """What pluggy registers in place of a plugin object: the same hook implementations (with their
    ``@hookimpl`` options, which `functools.wraps` copies) wrapped by `attributed`."""

    def __init__(self, plugin: object, name: str, project: str):
        self._plugin, self._names = plugin, []
        for attr in dir(plugin):
            func = getattr(plugin, attr, None)
            if callable(func) and hasattr(func, f"{project}_impl"):
                setattr(self, attr, attributed(func, name))
                self._names.append(attr)

    def __repr__(self) -> str:
        return f"<prime plugin {self._plugin!r}>"
