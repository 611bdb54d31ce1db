"""A registry that imports a plugin only when a command names one of its components (internal, issue 21).

Importing every installed plugin costs a command ≈ 0.3–0.5 s (their modules, and what those import) before it
does anything. `LazyRegistry` starts with the core's built-ins only and keeps the installed ``prime`` entry points
pending (listed from metadata, nothing imported):

- ``get(kind, name)`` of a **built-in** name answers at once: a built-in always keeps its name whatever else is
  installed (`Registry._register_callback`), so no plugin could change the answer;
- a name the built-ins lack: the entry points of the distribution a checkpoint records for it (``provided_by``,
  metadata "components") are imported, and the name is served if that distribution registers it; otherwise
  (no record, or not there) **every** pending plugin is loaded and the lookup is the eager registry's, so an
  unknown name's error and install hint are exactly those of a full load;
- ``names(kind)``, ``load_all()`` (``prime plugins``, shipped configs) load everything first.

`load_all` re-adds the entry points in their installed order even after a partial load, so the pluggy call order,
and with it which plugin keeps a name two plugins register, is the eager registry's. The one difference from an
eager load: a plugin the command never needs is not imported, so its import error or name clash is not warned
about on that command (``prime plugins`` still lists it). The CLI uses this registry for the commands in
`prime_core.plugin.default.LAZY_COMMANDS`; library callers get the eager one.
"""

from __future__ import annotations

from typing import Any, Mapping

from .loading import load_entry_points, plugin_entry_points, plugin_filter
from .registry import Registry


class LazyRegistry(Registry):
    """The built-ins now, an installed plugin when a component name needs it (see the module docstring)."""

    def __init__(self, only: set[str] | None = None) -> None:
        super().__init__()
        self._only = only  # PRIME_LOAD_PLUGINS' restriction, as for the eager registry
        self._loaded: list[str] = []  # entry-point names imported so far, in installed order
        self._complete = False

    # loading -----------------------------------------------------------------------------------------------
    def load_all(self) -> None:
        """Import every pending plugin; the entry points end up registered in installed order (as eagerly)."""
        if self._complete:
            return
        self._forget_entry_points()
        load_entry_points(self, self._only)
        self._complete = True

    def _load_distribution(self, distribution: str) -> bool:
        """Import the pending entry points of ``distribution``; False if it has none (or none left)."""
        names = [ep.name for ep in plugin_entry_points(self._only) if ep.dist and ep.dist.name == distribution]
        names = [n for n in names if n not in self._loaded]
        if not names:
            return False
        load_entry_points(self, names)
        self._loaded.extend(names)
        return True

    def _forget_entry_points(self) -> None:
        """Remove what a partial load added (plugins and recorded failures), keeping the built-ins."""
        for key, info in list(self.plugins.items()):
            if not info.builtin:
                self.remove_plugin(key)
        self._loaded = []

    # components out ----------------------------------------------------------------------------------------
    def names(self, kind: str) -> list[str]:
        self.load_all()
        return super().names(kind)

    def get(self, kind: str, name: str, *, provided_by: Mapping[str, Any] | None = None):
        """The component ``name``: a built-in at once; else from the recorded distribution; else after a full
        load (whose answer, or error, is the eager registry's)."""
        if self._complete:
            return super().get(kind, name, provided_by=provided_by)
        self.ensure_collected()
        found = self.components.get(kind, {}).get(name)
        if found is not None and found.builtin:
            return found
        dist = provided_by.get("distribution") if isinstance(provided_by, Mapping) else None
        if isinstance(dist, str):
            self._load_distribution(dist)  # nothing to do when it is loaded already
            self.ensure_collected()
            found = self.components.get(kind, {}).get(name)
            if found is not None and found.distribution == dist:
                return found
        self.load_all()
        return super().get(kind, name, provided_by=provided_by)


def lazy_registry() -> LazyRegistry:
    """The built-ins, collected; plugins pending (``PRIME_LOAD_PLUGINS`` restricts them as usual)."""
    from .loading import load_builtins

    reg = LazyRegistry(plugin_filter())
    load_builtins(reg)
    reg.collect()
    return reg

